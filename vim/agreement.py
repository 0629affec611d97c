"""Stage-2 validation metrics: does the adapter give the profile's 1-6 answer to the agreement questions?

Why not the validation loss alone: the loss mixes the wording of the answer with its score. Here every stage-2
validation example is answered six times, once per score s (``Because I think {value} is {expression_s}, my answer is
{s}.``, the exact training target for s); the model's answer is the candidate with the highest total log-likelihood
(the answer it is most likely to produce, with no free-text parsing), compared with the profile's target score.
Six teacher-forced forwards per example, no generation: the cheapest faithful way. Logged per epoch as
``val/agreement_accuracy`` and ``val/agreement_mae`` (torchmetrics).
"""

from __future__ import annotations

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
    """Sum of log p(label token) over the non-masked positions of each row."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels, ignore_index=-100,
                                            reduction="none")
    return -nll.sum(1)


@torch.no_grad()
def predict_scores(forward: Callable[[dict[str, torch.Tensor]], Any], items: Sequence[dict[str, Any]],
                   pad_token_id: int, device: torch.device, batch_items: int = 4) -> torch.Tensor:
    """The most likely score (1-6) for each item; ``forward`` maps a padded batch to an output with ``.logits``."""
    collate = PadCollator(pad_token_id=pad_token_id)
    preds = []
    for start in range(0, len(items), batch_items):
        chunk = items[start:start + batch_items]
        batch = collate([c for item in chunk for c in item["candidates"]])
        batch = {k: v.to(device) for k, v in batch.items() if k != "stage"}
        scores = sequence_logprob(forward(batch).logits, batch["labels"]).view(len(chunk), 6)
        preds.append(scores.argmax(dim=1).cpu() + 1)
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
