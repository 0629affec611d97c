"""Padding-free packed batches for LoRA training: many examples flattened into ONE row, no attention mask.

Why: VIM examples are short and vary a lot in length, so right-padded batches spend most of their FLOPs on pad
tokens. Packing concatenates a batch into a ``[1, T]`` row whose ``position_ids`` restart at 0 for every example;
transformers reads the restarts and keeps the examples apart:

* ``flash_attention_2/3`` (CUDA): varlen kernels from ``position_ids`` (no mask is ever built, O(T) memory);
* ``sdpa`` / ``eager`` / ``flex_attention`` (CPU and CUDA): ``masking_utils.find_packed_sequence_indices`` turns
  the restarts into a block-diagonal causal mask (checked by ``tests/test_packing.py`` on CPU).

PITFALL (transformers 5.x): the packed-sequence detection only runs when the forward has NO KV cache, and a
model whose ``config.use_cache`` is True builds one even in training, silently letting examples attend to each
other. Call :func:`prepare_model_for_packing` (sets ``use_cache=False``) or pass ``use_cache=False`` to forward.

The first label of every example is -100, so no token is trained to predict the next example's first token; the
loss (transformers' mean over target tokens) therefore equals the padded batch's loss.
The flattening itself is transformers' ``DataCollatorWithFlattening``; this module adds the per-batch token budget.
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Sequence

from vim.collate import IGNORE_INDEX, PadCollator, Truncation


def prepare_model_for_packing(model: Any) -> Any:
    """Turn off the KV cache in training forwards so transformers detects packed rows from ``position_ids``."""
    seen = set()
    for module in model.modules() if hasattr(model, "modules") else [model]:
        config = getattr(module, "config", None)
        if config is not None and id(config) not in seen and hasattr(config, "use_cache"):
            seen.add(id(config))
            config.use_cache = False
    return model


class PackedCollator:
    """Collate tokenized examples (``input_ids``, ``labels`` lists; -100 over the prompt) into one packed row.

    Returns ``input_ids``, ``labels``, ``position_ids`` (all ``[1, T]`` long tensors), ``num_examples`` (int) and
    ``stage`` (``[1]`` tensor) when every example has the same ``stage``. No ``attention_mask``, on purpose.

    Args:
        tokenizer: kept for interface parity with the padding collator (packing needs no pad token).
        max_tokens: when set, a batch longer than this raises (the token-budget sampler should prevent it).
        flash_kwargs: also return ``cu_seq_lens_*``/``max_length_*`` for flash-attention varlen kernels.
        pad_to_multiple_of: append one filler segment (pad ids, labels -100, its own positions) so the row length
            is a multiple of this: compiled kernels (flex_attention) then see few distinct shapes.
    """

    def __init__(self, tokenizer: Any = None, max_tokens: int | None = None, *, flash_kwargs: bool = False,
                 pad_to_multiple_of: int | None = None) -> None:
        from transformers import DataCollatorWithFlattening

        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.pad_to_multiple_of = pad_to_multiple_of
        self._flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX,
                                                   return_flash_attn_kwargs=flash_kwargs, return_tensors="pt")

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if not examples:
            raise ValueError("PackedCollator got an empty batch")
        total = sum(len(ex["input_ids"]) for ex in examples)
        if self.max_tokens is not None and total > self.max_tokens:
            raise ValueError(f"packed batch has {total} tokens > max_tokens={self.max_tokens}; "
                             "use TokenBudgetBatchSampler with the same budget")
        features = []
        for ex in examples:
            if len(ex["labels"]) != len(ex["input_ids"]):
                raise ValueError("each example needs labels as long as its input_ids")
            features.append({"input_ids": list(ex["input_ids"]), "labels": list(ex["labels"])})
        filler = -total % self.pad_to_multiple_of if self.pad_to_multiple_of else 0
        if filler:
            pad_id = getattr(self.tokenizer, "pad_token_id", None) or 0
            features.append({"input_ids": [pad_id] * filler, "labels": [IGNORE_INDEX] * filler})
        batch = dict(self._flatten(features))
        batch["num_examples"] = len(examples)
        stages = {int(ex.get("stage", 1)) for ex in examples}
        if len(stages) == 1:
            import torch

            batch["stage"] = torch.tensor([stages.pop()], dtype=torch.long)
        return batch


def pack_budget(lengths: Sequence[int], max_tokens: int, order: Sequence[int] | None = None) -> list[list[int]]:
    """Greedy first-fit of example indices (in ``order``) into batches of at most ``max_tokens`` tokens.

    An example longer than the budget gets a batch of its own (it is never silently dropped).
    """
    if max_tokens <= 0:
        raise ValueError("max_tokens must be positive")
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in (order if order is not None else range(len(lengths))):
        n = int(lengths[i])
        if current and used + n > max_tokens:
            batches.append(current)
            current, used = [], 0
        current.append(int(i))
        used += n
    if current:
        batches.append(current)
    return batches


class TokenBudgetBatchSampler:
    """A ``batch_sampler`` whose batches hold at most ``max_tokens`` tokens (use with ``PackedCollator``).

    Examples are shuffled (per epoch, seeded), then grouped into length-sorted chunks of ``sort_window`` examples
    so packs fill up well while the order stays random; batches themselves are shuffled too.
    """

    def __init__(self, lengths: Sequence[int], max_tokens: int, *, shuffle: bool = True, seed: int = 0,
                 sort_window: int = 1024) -> None:
        self.lengths = [int(n) for n in lengths]
        self.max_tokens = int(max_tokens)
        self.shuffle = shuffle
        self.seed = seed
        self.sort_window = max(1, sort_window)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
            windows = [order[i:i + self.sort_window] for i in range(0, len(order), self.sort_window)]
            order = [i for w in windows for i in sorted(w, key=self.lengths.__getitem__)]
        batches = pack_budget(self.lengths, self.max_tokens, order)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())


def make_collator(tokenizer: Any, *, truncation: Truncation = "keep_target", max_length: int = 128,
                  packing: bool = False) -> Any:
    """The batch collator for a run: padding (right, or left to ``max_length`` in ``original`` mode) or packing."""
    if packing:
        return PackedCollator(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if truncation == "original":
        return PadCollator(pad_id, padding_side="left", pad_to=max_length)
    return PadCollator(pad_id, padding_side="right")
