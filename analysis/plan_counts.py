"""Training-data counts for ``valueharms plan``: examples and tokens per stage for every distribution of a study,
computed without writing the 154 data folders (the examples are the ones ``prepare`` writes, split the same way).

Why exact and not estimated: the stage-1 positives/negatives and the split sizes decide how many optimizer steps a
fit takes; token counts (with the study's tokenizer where available) decide the GPU time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

from valueharms.values import VALUES, ValueProfile
from vim.agreement import candidates
from vim.data import (SPLITS, Argument, is_positive, split_items, stage1_example, stage2_example, stage2_values,
                      stochastic_round)


@dataclass
class TokenLengths:
    """Token counts of every distinct text the examples are made of (a distribution only picks among them)."""

    s1_pos: list[int]  # per argument: prompt + target (+ EOS) as a positive example
    s1_neg: list[int]
    s2_prompt: dict[str, list[int]]  # per split, per argument
    s2_target: dict[tuple[str, int], int]  # (value, score) -> target tokens (+ EOS)


def _lengths(tokenizer: Any, texts: list[str], special: bool) -> list[int]:
    out: list[int] = []
    for start in range(0, len(texts), 2048):
        out += [len(ids) for ids in tokenizer(texts[start:start + 2048], add_special_tokens=special)["input_ids"]]
    return out


def token_lengths(tokenizer: Any, arguments: Sequence[Argument], survey: dict[str, Sequence[Argument]]) -> TokenLengths:
    """Tokenize each distinct prompt/target once (BOS on the prompt as the tokenizer adds it, EOS after the target),
    worded by the builders ``prepare`` uses."""
    p, t = {}, {}
    for positive in (True, False):
        examples = [stage1_example(a, positive, "train") for a in arguments]
        p[positive] = _lengths(tokenizer, [e["prompt"] for e in examples], True)
        t[positive] = _lengths(tokenizer, [" " + e["target"] for e in examples], False)
    s2_prompt = {split: _lengths(tokenizer, [stage2_example(a, VALUES[0], 1, split)["prompt"]  # value-free prompt
                                             for a in survey.get(split, [])], True) for split in SPLITS}
    t2 = {v: _lengths(tokenizer, [" " + c for c in candidates(v)], False) for v in VALUES}
    return TokenLengths([a + b + 1 for a, b in zip(p[True], t[True])], [a + b + 1 for a, b in zip(p[False], t[False])],
                        s2_prompt, {(v, s): t2[v][s - 1] + 1 for v in VALUES for s in range(1, 7)})


def stage1_split_tokens(arguments: Sequence[Argument], profile: ValueProfile, threshold: float, seed: int,
                        lengths: TokenLengths, max_length: int) -> dict[str, dict[str, int]]:
    """Per split: examples, positives, tokens (full, and as trained: cut at ``max_length``) and over-long examples,
    split exactly as ``build_stage1`` does."""
    scores = profile.as_dict()
    pos = [i for i, a in enumerate(arguments) if is_positive(a, scores, threshold)]
    pos_set = set(pos)
    neg = [i for i in range(len(arguments)) if i not in pos_set]
    rng = random.Random(seed)
    out = {s: {"examples": 0, "positive": 0, "tokens": 0, "trained_tokens": 0, "over_max_length": 0} for s in SPLITS}
    for side, positive in ((pos, True), (neg, False)):
        for split, idx in split_items(side, rng).items():
            row = out[split]
            row["examples"] += len(idx)
            row["positive"] += len(idx) if positive else 0
            per = lengths.s1_pos if positive else lengths.s1_neg
            row["tokens"] += sum(per[i] for i in idx)
            row["trained_tokens"] += sum(min(per[i], max_length) for i in idx)
            row["over_max_length"] += sum(per[i] > max_length for i in idx)
    return out


def stage2_split_tokens(survey: dict[str, Sequence[Argument]], profile: ValueProfile, seed: int,
                        lengths: TokenLengths, max_length: int) -> dict[str, dict[str, int]]:
    """Per split: examples, tokens and over-long examples, with the rounding draws ``build_stage2`` makes."""
    rng = random.Random(seed)
    scores = profile.as_dict()
    out = {}
    for split in SPLITS:
        row = {"examples": 0, "tokens": 0, "trained_tokens": 0, "over_max_length": 0}
        for i, a in enumerate(survey.get(split, [])):
            for v in stage2_values(a):
                score = min(max(stochastic_round(scores[v], rng), 1), 6)
                row["examples"] += 1
                n = lengths.s2_prompt[split][i] + lengths.s2_target[(v, score)]
                row["tokens"] += n
                row["trained_tokens"] += min(n, max_length)
                row["over_max_length"] += n > max_length
        out[split] = row
    return out


def distribution_counts(arguments: Sequence[Argument], survey: dict[str, Sequence[Argument]],
                        profiles: Sequence[ValueProfile], *, threshold: float, seed: int,
                        lengths: TokenLengths, max_length: int) -> dict[str, dict]:
    """``name -> {"stage1": per split, "stage2": per split}`` for every profile."""
    from valueharms.progress import progress

    out: dict[str, dict] = {}
    for profile in progress(profiles, desc="plan: count", unit="dist"):
        out[profile.name] = {"stage1": stage1_split_tokens(arguments, profile, threshold, seed, lengths, max_length),
                             "stage2": stage2_split_tokens(survey, profile, seed, lengths, max_length)}
    return out


def totals(counts: dict[str, dict], stage: str, split: str, key: str) -> int:
    return sum(c[stage][split][key] for c in counts.values())
