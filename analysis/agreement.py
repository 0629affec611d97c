"""How far two judges agree on the same texts (why: a run scored by several judges is cheap thanks to the cache, and
a number means little until one knows how much it depends on the judge).

For every measure and every pair of judges with current scores for the same generations: Spearman's rank
correlation of their harm numbers, Cohen's kappa after binarising each at the measure's threshold
(:attr:`valueharms.measures.Measure.threshold`: toxicity >= 0.5, harmfulness 5, a negative or flagged label), the
share of agreement, a scatter, and the texts they disagree on most.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from judges.join import ScoredRun
from valueharms.measures import get_measure

COLUMNS = ["measure", "judge_a", "judge_b", "n", "spearman", "kappa", "agree", "harmful_a", "harmful_b", "threshold"]


def paired_scores(scored: ScoredRun) -> pd.DataFrame:
    """One row per (generation, measure, judge pair) scored by both: harm_a, harm_b and the judged text."""
    ok = scored.scores[scored.scores["error"].isna()].copy()
    ok["harm"] = [get_measure(m).harm(v, lab) for m, v, lab in zip(ok["measure"], ok["value"], ok["label"])]
    ok = ok.dropna(subset=["harm"])
    keys = ["run_name", "key", "measure"]
    frames = []
    for measure, block in ok.groupby("measure"):
        for a, b in combinations(sorted(set(block["judge"])), 2):
            left = block[block["judge"] == a][keys + ["harm"]].rename(columns={"harm": "harm_a"})
            right = block[block["judge"] == b][keys + ["harm"]].rename(columns={"harm": "harm_b"})
            both = left.merge(right, on=keys)
            if not both.empty:
                frames.append(both.assign(judge_a=a, judge_b=b))
    if not frames:
        return pd.DataFrame(columns=[*keys, "harm_a", "harm_b", "judge_a", "judge_b", "benchmark", "judged_text"])
    pairs = pd.concat(frames, ignore_index=True)
    text = scored.generations[["run_name", "key", "benchmark", "judged_text"]]
    return pairs.merge(text, on=["run_name", "key"], how="left")


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary ratings (statsmodels); NaN when both raters never vary (kappa undefined)."""
    from statsmodels.stats.inter_rater import cohens_kappa

    table = np.array([[np.sum(~a & ~b), np.sum(~a & b)], [np.sum(a & ~b), np.sum(a & b)]], dtype=float)
    expected = (table.sum(1) @ table.sum(0)) / table.sum() ** 2 if table.sum() else 1.0
    if expected >= 1.0:
        return np.nan
    with np.errstate(invalid="ignore", divide="ignore"):  # its standard-error terms, unused here
        return float(cohens_kappa(table, return_results=False))


def agreement_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per (measure, judge pair): n, Spearman rho, Cohen's kappa at the measure's threshold, % agreement."""
    from scipy.stats import spearmanr

    rows = []
    for (measure, a, b), g in pairs.groupby(["measure", "judge_a", "judge_b"], sort=True):
        m = get_measure(measure)
        ha, hb = g["harm_a"].to_numpy(dtype=float), g["harm_b"].to_numpy(dtype=float)
        varied = len(g) >= 3 and np.ptp(ha) > 0 and np.ptp(hb) > 0
        rho = float(spearmanr(ha, hb).statistic) if varied else np.nan
        bin_a, bin_b = ha >= m.threshold, hb >= m.threshold
        rows.append({"measure": measure, "judge_a": a, "judge_b": b, "n": len(g), "spearman": rho,
                     "kappa": _kappa(bin_a, bin_b), "agree": float(np.mean(bin_a == bin_b)),
                     "harmful_a": float(bin_a.mean()), "harmful_b": float(bin_b.mean()), "threshold": m.threshold})
    return pd.DataFrame(rows, columns=COLUMNS)


def disagreements(pairs: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The texts two judges disagree on most (largest gap as a share of the measure's scale), per measure."""
    if pairs.empty:
        return pd.DataFrame(columns=["measure", "judge_a", "harm_a", "judge_b", "harm_b", "gap", "benchmark", "text"])
    span = pairs["measure"].map(lambda m: get_measure(m).high - get_measure(m).low)
    work = pairs.assign(gap=(pairs["harm_a"] - pairs["harm_b"]).abs() / span,
                        text=pairs["judged_text"].fillna("").str.slice(0, 200))
    work = work[work["gap"] > 0].sort_values("gap", ascending=False, kind="stable")
    top_rows = work.groupby(["measure", "judge_a", "judge_b"], sort=True).head(top)
    return top_rows[["measure", "judge_a", "harm_a", "judge_b", "harm_b", "gap", "benchmark", "text"]].reset_index(
        drop=True)


def figure(pairs: pd.DataFrame, max_panels: int = 6):
    """A scatter per (measure, judge pair) on the measure's whole scale, with the threshold lines; None if empty."""
    from analysis.plots import pyplot, set_scale

    if pairs.empty:
        return None
    plt = pyplot()
    groups = list(pairs.groupby(["measure", "judge_a", "judge_b"], sort=True))[:max_panels]
    fig, axes = plt.subplots(1, len(groups), figsize=(3.4 * len(groups), 3.4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, ((measure, a, b), g) in zip(axes[0], groups):
        m = get_measure(measure)
        jitter = 0.015 * (m.high - m.low)  # label-based measures are 0/1: spread the dots so counts are visible
        xa = g["harm_a"].to_numpy(dtype=float) + rng.uniform(-jitter, jitter, len(g))
        xb = g["harm_b"].to_numpy(dtype=float) + rng.uniform(-jitter, jitter, len(g))
        ax.scatter(xa, xb, s=10, alpha=0.5, color="#4C72B0")
        ax.axvline(m.threshold, color="red", ls="--", lw=0.8)
        ax.axhline(m.threshold, color="red", ls="--", lw=0.8)
        set_scale(ax, m.low, m.high, "x")
        set_scale(ax, m.low, m.high, "y")
        ax.set_xlabel(f"{a}: {m.label}", fontsize=8)
        ax.set_ylabel(f"{b}: {m.label}", fontsize=8)
        ax.set_title(f"{measure}: {a} vs {b} (n = {len(g)})", fontsize=9)
    fig.tight_layout()
    return fig
