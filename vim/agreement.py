"""Stage-2 validation metrics: does the adapter give the profile's 1-6 answer to the agreement questions?

Why not the validation loss alone: the loss mixes the wording of the answer with its score. Here every stage-2
validation example is answered six times, once per score s (``Because I think {value} is {expression_s}, my answer is
{s}.``, the exact training target for s); the model's answer is the candidate with the highest total log-likelihood
(the answer it is most likely to produce, with no free-text parsing), compared with the profile's target score.
No generation: the prompt (the long part) runs once per example and its KV cache serves the six short answers
(:func:`candidate_logprobs`; equal to six full teacher-forced passes, tested). Logged per epoch as
``val/agreement_accuracy`` and ``val/agreement_mae`` (torchmetrics).
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Sequence

import torch

from vim.collate import PadCollator
from vim.data import EXPRESSIONS, STAGE2_TARGET

_SCORE = re.compile(r"my answer is ([1-6])\.\s*$")


def target_score(target: str) -> int | None:
    """The 1-6 score a stage-2 target states (None when the text is not a stage-2 answer)."""
    match = _SCORE.search(target)
    return int(match.group(1)) if match else None


def candidates(value: str) -> list[str]:
    """The six possible answers for ``value``, score 1 to 6, worded exactly as the training targets."""
    return [STAGE2_TARGET.format(value=value.lower(), expression=EXPRESSIONS[s - 1], score=s) for s in range(1, 7)]


def build_items(rows: Sequence[dict[str, Any]], encode: Callable[[str, str], dict[str, Any]],
                limit: int | None) -> list[dict[str, Any]]:
    """Encoded candidates + target score for the first ``limit`` stage-2 rows (rows without a value are skipped)."""
    items = []
    for row in rows:
        value, score = (row.get("meta") or {}).get("value"), target_score(row["target"])
        if not value or score is None:
            continue
        encoded = [encode(row["prompt"], text) for text in candidates(value)]
        items.append({"candidates": [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in encoded],
                      "target": score})
        if limit is not None and len(items) >= limit:
            break
    return items


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label token) over the non-masked positions of each row (labels aligned with the inputs)."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels, ignore_index=-100,
                                            reduction="none")
    return -nll.sum(1)


def shared_prompt_length(cands: Sequence[dict[str, Any]]) -> int:
    """Tokens every candidate shares at the start with no loss on them (the prompt); 0 when truncation differed."""
    first = cands[0]
    n = 0
    limit = min(len(c["input_ids"]) for c in cands)
    while n < limit and all(c["labels"][n] == -100 and c["input_ids"][n] == first["input_ids"][n] for c in cands):
        n += 1
    return n


def _cache_argument(model: Any) -> str:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def full_logprobs(model: Callable[..., Any], items: Sequence[dict[str, Any]], pad_token_id: int,
                  device: torch.device) -> torch.Tensor:
    """``[len(items), 6]`` log-likelihoods of the candidates, each as one full teacher-forced sequence."""
    batch = PadCollator(pad_token_id=pad_token_id)([c for item in items for c in item["candidates"]])
    out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                use_cache=False)
    return sequence_logprob(out.logits, batch["labels"].to(device)).view(len(items), 6)


def candidate_logprobs(model: Callable[..., Any], items: Sequence[dict[str, Any]], pad_token_id: int,
                       device: torch.device) -> torch.Tensor:
    """``[len(items), 6]`` log-likelihoods: the shared prompts run once (left-padded), their cache repeated six times
    for the answers. Falls back to :func:`full_logprobs` when truncation left the candidates no common prompt."""
    lengths = [shared_prompt_length(item["candidates"]) for item in items]
    if min(lengths) == 0:
        return full_logprobs(model, items, pad_token_id, device)
    prompts = [item["candidates"][0]["input_ids"][:n] for item, n in zip(items, lengths)]
    head = PadCollator(pad_token_id, padding_side="left")([{"input_ids": p, "labels": p} for p in prompts])
    prompt_mask = head["attention_mask"].to(device)
    out = model(input_ids=head["input_ids"].to(device), attention_mask=prompt_mask,
                position_ids=(prompt_mask.cumsum(1) - 1).clamp(min=0), use_cache=True)
    name = _cache_argument(model)  # transformers 5 renamed past_key_values to cache
    cache = getattr(out, name)
    cache.batch_repeat_interleave(6)
    tails = PadCollator(pad_token_id)([{"input_ids": c["input_ids"][n:], "labels": c["labels"][n:]}
                                       for item, n in zip(items, lengths) for c in item["candidates"]])
    labels, cont_mask = tails["labels"].to(device), tails["attention_mask"].to(device)
    starts = torch.tensor(lengths, device=device).repeat_interleave(6)
    positions = starts[:, None] + torch.arange(cont_mask.shape[1], device=device)[None, :]
    nxt = model(input_ids=tails["input_ids"].to(device),
                attention_mask=torch.cat([prompt_mask.repeat_interleave(6, dim=0), cont_mask], dim=1),
                position_ids=positions, use_cache=True, **{name: cache})
    # the first answer token is predicted by the prompt's last position, the others by the answer's own positions
    logits = torch.cat([out.logits[:, -1:].repeat_interleave(6, dim=0), nxt.logits[:, :-1]], dim=1).float()
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    return (-nll.sum(1)).view(len(items), 6)


@torch.no_grad()
def predict_scores(model: Callable[..., Any], items: Sequence[dict[str, Any]], pad_token_id: int,
                   device: torch.device, batch_items: int = 8) -> torch.Tensor:
    """The most likely score (1-6) for each item; ``model`` is the (peft) causal LM."""
    preds = [candidate_logprobs(model, items[i:i + batch_items], pad_token_id, device).argmax(dim=1).cpu() + 1
             for i in range(0, len(items), batch_items)]
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def shard(items: Sequence[dict[str, Any]], rank: int, world: int) -> tuple[list[dict[str, Any]], int]:
    """Rank ``rank``'s share, padded so every rank runs the same number of forwards (FSDP needs lockstep).

    Returns the padded list and how many of its items are real.
    """
    mine = list(items[rank::world])
    per_rank = -(-len(items) // world) if items else 0
    real = len(mine)
    while len(mine) < per_rank:
        mine.append(items[0])
    return mine, real
