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
from valueharms.stats import bootstrap_ci

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


def mitigation_table(frame: pd.DataFrame, pairs: pd.DataFrame | None = None, *, level: float,
                     n_boot: int = 2000) -> pd.DataFrame:
    """One row per (group, benchmark, category, mitigation): mean harm without and with the mitigation and the
    mean paired delta, each with a percentile-bootstrap CI at ``level``; Wilcoxon p; the paper's numbers.

    ``pairs``: :func:`paired_deltas` of ``frame`` when the caller already has it (computed otherwise).
    """
    pairs = paired_deltas(frame) if pairs is None else pairs
    rows = []
    for (group, bench, cat, mit), g in pairs.groupby(["group", "benchmark", "category", "mitigation"]):
        row = {"group": group, "benchmark": bench, "category": cat, "mitigation": mit,
               "measure": primary_metric(bench), "pairs": len(g)}
        for name, column in (("harm_none", "harm_none"), ("harm_mitigated", "harm_mitigated"), ("mean_delta", "delta")):
            low, high = bootstrap_ci(g[column], level=level, n_resamples=n_boot, seed=0)
            row.update({name: g[column].mean(), f"{name}_ci_low": low, f"{name}_ci_high": high})
        row.update(p=wilcoxon_p(g["delta"].to_numpy()), paper_none=paper_mitigation(bench, cat, "none", group),
                   paper_mitigated=paper_mitigation(bench, cat, mit, group))
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["order"] = out["mitigation"].map({m: i for i, m in enumerate(MITIGATIONS)}).fillna(len(MITIGATIONS))
    return out.sort_values(["benchmark", "category", "group", "order"]).drop(columns="order").reset_index(drop=True)


def figure(table: pd.DataFrame):
    """One panel per benchmark on its measure's whole scale (HEx-PHI 1-5, rates 0-1; never mixed on one axis):
    a row per (group, category), the mean harm with its CI for input only and each mitigation, the paper's numbers
    as hollow diamonds. None when there is nothing to draw."""
    from analysis.plots import PAPER_STYLE, metric_scale, pyplot, set_scale

    if table.empty:
        return None
    plt = pyplot()
    mits = ["none"] + [m for m in MITIGATIONS if m in set(table["mitigation"])]
    mits += sorted(set(table["mitigation"]) - set(mits))
    benches = list(dict.fromkeys(table["benchmark"]))
    heights = [table[table["benchmark"] == b][["group", "category"]].drop_duplicates().shape[0] for b in benches]
    fig, axes = plt.subplots(len(benches), 1, figsize=(7.5, 1.4 + 0.55 * sum(heights) * len(mits) / 3),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    colors = dict(zip(mits, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, bench in zip(axes[:, 0], benches):
        sub = table[table["benchmark"] == bench]
        rows = list(dict.fromkeys(zip(sub["group"], sub["category"])))
        low, high, label = metric_scale(bench, sub["measure"].iloc[0])
        for i, (group, cat) in enumerate(rows):
            cell = sub[(sub["group"] == group) & (sub["category"] == cat)].set_index("mitigation")
            for k, mit in enumerate(mits):
                if mit != "none" and mit not in cell.index:
                    continue
                src = cell.iloc[0] if mit == "none" else cell.loc[mit]
                name, paper = ("harm_none", src["paper_none"]) if mit == "none" else ("harm_mitigated",
                                                                                       src["paper_mitigated"])
                x, lo, hi = (float(src[c]) for c in (name, f"{name}_ci_low", f"{name}_ci_high"))
                y = i + (k - (len(mits) - 1) / 2) * 0.8 / len(mits)
                ax.errorbar([x], [y], xerr=[[max(x - lo, 0)], [max(hi - x, 0)]], fmt="o", color=colors[mit],
                            capsize=3, label=mit)
                if paper is not None and np.isfinite(float(paper)):
                    ax.plot([float(paper)], [y], **PAPER_STYLE)
        set_scale(ax, low, high, axis="x")
        ax.set_yticks(range(len(rows)), [f"{g} / {c}" for g, c in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"mean {label}", fontsize=8)
        ax.set_title(f"{bench}: harm by mitigation (dots: ours with CI)", fontsize=9)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot(table: pd.DataFrame, path: str | Path) -> Path | None:
    """:func:`figure` written as PNG (None when empty)."""
    from analysis.plots import save_figure

    fig = figure(table)
    return None if fig is None else save_figure(fig, path)
