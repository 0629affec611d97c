"""Effect of the paper's §5 mitigations (safety prompt, value-suppression prompt, both) as paired deltas.

A delta pairs the same prompt under the same condition (same adapter, or vanilla/ICL) with and without
the mitigation: ``delta = harm(mitigated) - harm(input only)``. Per (group, benchmark, category,
mitigation) we report the mean harm with and without, the mean delta, and a Wilcoxon signed-rank test
of the deltas (``zero_method="wilcox"``; all-zero deltas give p = 1). Negative deltas = less harm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.data import primary_metric, prompt_table
from analysis.paper import paper_mitigation

MITIGATIONS = ("value", "safety", "dual")


def paired_deltas(frame: pd.DataFrame) -> pd.DataFrame:
    """Long table of paired observations: condition, prompt, mitigation, harm_none, harm_mitigated, delta."""
    table = prompt_table(frame).dropna(subset=["harm"])
    keys = ["benchmark", "category", "condition", "group", "prompt_id"]
    base = table[table["mitigation"] == "none"][keys + ["harm"]].rename(columns={"harm": "harm_none"})
    other = table[table["mitigation"] != "none"][keys + ["mitigation", "harm"]].rename(
        columns={"harm": "harm_mitigated"})
    pairs = other.merge(base, on=keys, how="inner")
    pairs["delta"] = pairs["harm_mitigated"] - pairs["harm_none"]
    return pairs


def wilcoxon_p(deltas: np.ndarray) -> float:
    from scipy.stats import wilcoxon

    deltas = np.asarray(deltas, dtype=float)
    if deltas.size == 0:
        return np.nan
    if np.allclose(deltas, 0):
        return 1.0
    return float(wilcoxon(deltas, zero_method="wilcox", alternative="two-sided").pvalue)


def mitigation_table(frame: pd.DataFrame, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (group, benchmark, category, mitigation) with means, mean delta, Wilcoxon p, paper's number.

    ``pairs``: :func:`paired_deltas` of ``frame`` when the caller already has it (computed otherwise).
    """
    pairs = paired_deltas(frame) if pairs is None else pairs
    rows = []
    for (group, bench, cat, mit), g in pairs.groupby(["group", "benchmark", "category", "mitigation"]):
        rows.append({"group": group, "benchmark": bench, "category": cat, "mitigation": mit,
                     "measure": primary_metric(bench), "pairs": len(g),
                     "harm_none": g["harm_none"].mean(), "harm_mitigated": g["harm_mitigated"].mean(),
                     "mean_delta": g["delta"].mean(), "p": wilcoxon_p(g["delta"].to_numpy()),
                     "paper_none": paper_mitigation(bench, cat, "none", group),
                     "paper_mitigated": paper_mitigation(bench, cat, mit, group)})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["order"] = out["mitigation"].map({m: i for i, m in enumerate(MITIGATIONS)}).fillna(len(MITIGATIONS))
    return out.sort_values(["benchmark", "category", "group", "order"]).drop(columns="order").reset_index(drop=True)


def plot(table: pd.DataFrame, path: str | Path) -> Path | None:
    """Mean paired delta per category (rows) and mitigation (bars), one panel per group."""
    if table.empty:
        return None
    from analysis.plots import pyplot, save_figure

    plt = pyplot()
    table = table.assign(row=table["benchmark"] + " / " + table["category"].astype(str))
    groups = list(table["group"].unique())
    mits = [m for m in MITIGATIONS if m in set(table["mitigation"])] + sorted(set(table["mitigation"]) - set(MITIGATIONS))
    rows = list(dict.fromkeys(table["row"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 1.2 + 0.45 * len(rows) * max(1, len(mits)) / 2),
                             squeeze=False, sharey=True)
    width = 0.8 / max(1, len(mits))
    for ax, group in zip(axes[0], groups):
        sub = table[table["group"] == group]
        for k, mit in enumerate(mits):
            vals = sub[sub["mitigation"] == mit].set_index("row")["mean_delta"].reindex(rows)
            ax.barh(np.arange(len(rows)) + k * width, vals.to_numpy(dtype=float), height=width, label=mit)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(np.arange(len(rows)) + width * (len(mits) - 1) / 2, rows, fontsize=8)
        ax.set_title(f"{group}: harm(mitigated) - harm(input only)", fontsize=9)
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)
