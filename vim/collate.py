"""Turn (prompt, target) pairs into token ids with the loss on the target only, then pad them into batches.

Why a module of its own: VIM, benign fine-tuning and the tests must agree exactly on which tokens carry loss
(docs/protocol.md: prompt masked with -100, EOS appended to the target) and on how over-long examples are cut.

Truncation modes (docs/protocol.md, "VIM training data"):
  * ``keep_target`` (default): drop prompt tokens from the left (after BOS) so the answer survives;
  * ``original``: the released code's behaviour, right-truncate the whole sequence (long targets lose their end)
    and left-pad every batch to ``max_length``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

IGNORE_INDEX = -100
Truncation = Literal["keep_target", "original"]


def chat_prompt_text(tokenizer: Any, prompt: str, system_prompt: str | None) -> str:
    """The chat-formatted prompt (system + user turn + assistant header) as text."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": prompt}
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _split_chat(tokenizer: Any, prompt: str, target: str, system_prompt: str | None) -> tuple[list[int], list[int]]:
    """Prompt and completion ids from the tokenizer's own chat template (the assistant turn's end tokens are target)."""
    head = chat_prompt_text(tokenizer, prompt, system_prompt)
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": target},
    ]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    if full.startswith(head):
        target_ids = tokenizer(full[len(head):], add_special_tokens=False)["input_ids"]
    else:  # templates that rewrite earlier turns: fall back to the raw target
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in target_ids:
        target_ids = target_ids + [tokenizer.eos_token_id]
    return prompt_ids, target_ids


def _split_plain(tokenizer: Any, prompt: str, target: str) -> tuple[list[int], list[int]]:
    """Base-model format: ``{prompt} {target}<eos>`` with the tokenizer's BOS (if any) before the prompt."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None and prompt_ids and prompt_ids[-1] == tokenizer.eos_token_id:
        prompt_ids = prompt_ids[:-1]  # tokenizers that append EOS to every text
    sep = "" if not prompt or prompt[-1].isspace() or target[:1].isspace() else " "
    target_ids = tokenizer(sep + target, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        target_ids = target_ids + [tokenizer.eos_token_id]
    return prompt_ids, target_ids


def encode_example(
    tokenizer: Any,
    prompt: str,
    target: str,
    *,
    max_length: int = 128,
    truncation: Truncation = "keep_target",
    chat: bool = False,
    system_prompt: str | None = None,
) -> dict[str, Any]:
    """Token ids + labels (``-100`` over the prompt, incl. chat-template tokens) for one example.

    Returns ``{"input_ids", "labels", "truncated"}``; ``truncated`` tells whether ``max_length`` cut anything.
    """
    if chat:
        prompt_ids, target_ids = _split_chat(tokenizer, prompt, target, system_prompt)
    else:
        prompt_ids, target_ids = _split_plain(tokenizer, prompt, target)
    total = len(prompt_ids) + len(target_ids)
    truncated = total > max_length
    if truncated and truncation == "original":
        ids = (prompt_ids + target_ids)[:max_length]
        labels = ([IGNORE_INDEX] * len(prompt_ids) + target_ids)[:max_length]
        return {"input_ids": ids, "labels": labels, "truncated": True}
    if truncated:
        if len(target_ids) >= max_length:
            prompt_ids, target_ids = [], target_ids[:max_length]
        else:
            room = max_length - len(target_ids)
            bos = tokenizer.bos_token_id
            keep_bos = bool(prompt_ids) and bos is not None and prompt_ids[0] == bos and room > 1
            prompt_ids = ([bos] + prompt_ids[len(prompt_ids) - room + 1:]) if keep_bos else prompt_ids[len(prompt_ids) - room:]
    return {
        "input_ids": prompt_ids + target_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + list(target_ids),
        "truncated": truncated,
    }


@dataclass
class PadCollator:
    """Pad encoded examples into a batch: ``input_ids``, ``attention_mask``, ``labels`` and ``stage`` tensors.

    ``pad_to`` pads every batch to a fixed length (the ``original`` mode's left padding to ``max_length``).
    """

    pad_token_id: int
    padding_side: Literal["left", "right"] = "right"
    pad_to: int | None = None

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        length = max(len(ex["input_ids"]) for ex in examples)
        if self.pad_to is not None:
            length = max(length, self.pad_to)
        ids, masks, labels = [], [], []
        for ex in examples:
            n = len(ex["input_ids"])
            pad = length - n
            if self.padding_side == "left":
                ids.append([self.pad_token_id] * pad + list(ex["input_ids"]))
                masks.append([0] * pad + [1] * n)
                labels.append([IGNORE_INDEX] * pad + list(ex["labels"]))
            else:
                ids.append(list(ex["input_ids"]) + [self.pad_token_id] * pad)
                masks.append([1] * n + [0] * pad)
                labels.append(list(ex["labels"]) + [IGNORE_INDEX] * pad)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "attention_mask": torch.tensor(masks, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "stage": torch.tensor([int(ex.get("stage", 1)) for ex in examples], dtype=torch.long),
        }

