"""The report's header: what was measured, by which judge, and whether the numbers are evidence.

Why: a reader must know before any table that a quickstart-size run (a few prompts, a few adapters, a heuristic
judge) only shows the pipeline works. The verdict is computed from the run, never assumed.
"""

from __future__ import annotations

import pandas as pd

from judges.join import judge_label

#: Below these sizes a run is a smoke test, not evidence (the paper: 154 adapters, thousands of prompts).
MIN_ADAPTERS = 12  # the full value regression needs more adapters than values + 1
MIN_PROMPTS = 100  # per benchmark and condition
PAPER_LABEL = "paper (Llama-2-7B, Perspective / regard / GPT-4o)"

JUDGE_LIMITS = {
    "offline": (
        "The offline judge is a stand-in that runs without keys, downloads or network: toxicity is the "
        "probability from a profanity classifier (alt-profanity-check, a linear SVM over word n-grams), and "
        "regard, harmfulness and flags come from small hand-written lexicons plus refusal and compliance cues. "
        "It catches swear words and insults, misses implicit toxicity, stereotypes, sarcasm, negation and "
        "harmful-but-polite instructions, and cannot tell whether instructions are dangerous. Its numbers are NOT "
        "comparable with Perspective, the regard classifier or GPT-4o (the judges behind the paper's numbers)."),
    "detoxify": ("Detoxify is a local toxicity classifier; its scores correlate with Perspective's but are not the "
                 "same scale, so RTP numbers are not directly comparable with the paper's."),
}


def evidence_reasons(frame: pd.DataFrame, judges: dict[str, str | None]) -> list[str]:
    """Why this run is NOT evidence (empty: it is large enough and judged by model/API judges)."""
    reasons = []
    if any(j == "offline" for j in judges.values()):
        reasons.append("judged (in part) by the offline heuristic judge")
    vim = frame.loc[frame["condition_kind"] == "vim", "condition"].nunique()
    if vim < MIN_ADAPTERS:
        reasons.append(f"{vim} VIM adapter(s): fewer than {MIN_ADAPTERS}, too few for the value regression")
    prompts = frame[frame["mitigation"] == "none"].groupby(["benchmark", "condition"])["prompt_id"].nunique()
    if len(prompts) and prompts.min() < MIN_PROMPTS:
        worst = prompts.groupby(level=0).min()
        listed = ", ".join(f"{b}: {n}" for b, n in worst.items() if n < MIN_PROMPTS)
        reasons.append(f"fewer than {MIN_PROMPTS} prompts per condition ({listed})")
    return reasons


def header(frame: pd.DataFrame, judges: dict[str, str | None], *, compare_level: float, metric_level: float,
           bias_rule: str | float) -> dict:
    """Model, adapter count, judge per measure (with its limits), CI levels, bias rule and the evidence verdict."""
    base = sorted({str(b) for b in frame["base_model"].dropna()}) if "base_model" in frame else []
    kinds = frame.groupby("condition_kind")["condition"].nunique().to_dict()
    used = sorted({j for j in judges.values() if j})
    reasons = evidence_reasons(frame, judges)
    verdict = ("NOT evidence: " + "; ".join(reasons) + ". These numbers show that the pipeline runs end to end; "
               "they say nothing about value alignment or its harms.") if reasons else (
        "Large enough to read as evidence, within the limits of the judges named here.")
    return {
        "model": ", ".join(base) or "unknown (generation records carry no base_model)",
        "adapters": int(kinds.get("vim", 0)), "benign": int(kinds.get("benign", 0)),
        "icl": int(kinds.get("icl", 0)),
        "judges": judge_label(judges),
        "judge_limits": [JUDGE_LIMITS[j] for j in used if j in JUDGE_LIMITS],
        "evidence": not reasons, "verdict": verdict,
        "levels": (f"Comparison, mitigation and slope CIs: {compare_level:.0%}; benchmark metric CIs (metrics.csv, "
                   f"HolisticBiasR groups): {metric_level:.1%} (the study's setting)."),
        "bias_rule": str(bias_rule), "paper_label": PAPER_LABEL,
    }
