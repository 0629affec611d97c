"""Vanilla vs VIM vs benign fine-tunes vs ICL on every benchmark measure (paper Table 2 and §4).

Per group and measure: the mean over observations (per-prompt observations of every condition in the
group, e.g. every VIM adapter x prompt), a percentile-bootstrap CI over those observations, and a test
against vanilla. The test pairs by prompt: the group's observations are averaged per prompt (over its
adapters), and a paired sign-flip permutation test (scipy ``permutation_test``, ``permutation_type=
"samples"``) compares them with vanilla on the same prompts. When the two share fewer than 3 prompts
the test falls back to an unpaired two-sided Mann-Whitney U over all observations. Input-only
generations (mitigation ``none``) are compared; mitigations are analysed in :mod:`analysis.mitigation`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.data import measure_values, prompt_table, shown_metrics
from analysis.paper import paper_value
from valueharms.stats import bootstrap_ci

GROUP_ORDER = ["vanilla", "VIM", "ICL"]


def order_groups(groups: list[str]) -> list[str]:
    return sorted(groups, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else len(GROUP_ORDER), g))


def paired_permutation_p(diff: np.ndarray, n_resamples: int = 9999, seed: int = 0) -> float:
    """Two-sided p of mean(diff) = 0 by flipping signs within pairs."""
    from scipy.stats import permutation_test

    diff = np.asarray(diff, dtype=float)
    if diff.size < 2 or np.allclose(diff, 0):
        return 1.0 if diff.size >= 2 else np.nan
    res = permutation_test((diff,), np.mean, permutation_type="samples", n_resamples=n_resamples,
                           alternative="two-sided", random_state=seed)
    return float(res.pvalue)


def contrast(base: pd.DataFrame, other: pd.DataFrame, n_resamples: int = 9999) -> tuple[float, float, str]:
    """(difference of means, p, test name) of ``other`` vs ``base``; frames have prompt_id and x."""
    from scipy.stats import mannwhitneyu

    a = base.groupby("prompt_id")["x"].mean()
    b = other.groupby("prompt_id")["x"].mean()
    common = a.index.intersection(b.index)
    delta = float(other["x"].mean() - base["x"].mean())
    if len(common) >= 3:
        return delta, paired_permutation_p((b[common] - a[common]).to_numpy(), n_resamples), "paired permutation"
    if len(base) >= 2 and len(other) >= 2:
        if np.ptp(np.concatenate([base["x"], other["x"]])) == 0:
            return delta, 1.0, "Mann-Whitney U"
        return delta, float(mannwhitneyu(other["x"], base["x"], alternative="two-sided").pvalue), "Mann-Whitney U"
    return delta, np.nan, "too few observations"


def compare(frame: pd.DataFrame, *, level: float, n_boot: int = 2000, n_permutations: int = 9999) -> pd.DataFrame:
    """One row per (benchmark, measure, group): value, CI at ``level``, n, missing, delta and p vs vanilla, paper's
    number."""
    table = prompt_table(frame[frame["mitigation"] == "none"])
    rows = []
    for bench, block in table.groupby("benchmark"):
        for metric in shown_metrics(bench):
            measure, label = metric.name, metric.label
            obs, first = {}, len(rows)
            for group, g in block.groupby("group"):
                valid = g.dropna(subset=["harm"])
                obs[group] = pd.DataFrame({"prompt_id": valid["prompt_id"].to_numpy(),
                                           "x": measure_values(bench, measure, valid["harm"]).to_numpy()})
                lo, hi = bootstrap_ci(obs[group]["x"], level=level, n_resamples=n_boot, seed=0)
                rows.append({"benchmark": bench, "measure": measure, "measure_label": label, "group": group,
                             "conditions": int(g["condition"].nunique()), "n": int(len(valid)),
                             "missing": int(g["missing"].sum()),
                             "value": float(obs[group]["x"].mean()) if len(valid) else np.nan,
                             "ci_low": lo, "ci_high": hi, "paper": paper_value(bench, group, measure)})
            base = obs.get("vanilla")
            for row in rows[first:]:  # this (benchmark, measure)'s rows
                if base is None or row["group"] == "vanilla":
                    row.update(delta_vs_vanilla=np.nan, p=np.nan, test="")
                    continue
                delta, p, test = contrast(base, obs[row["group"]], n_permutations)
                row.update(delta_vs_vanilla=delta, p=p, test=test)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["order"] = out["group"].map({g: i for i, g in enumerate(order_groups(list(out["group"].unique())))})
    return out.sort_values(["benchmark", "measure", "order"]).drop(columns="order").reset_index(drop=True)


def figure(table: pd.DataFrame):
    """One panel per benchmark (primary metric) on the metric's whole scale: a bar per group with its bootstrap CI
    and the paper's number as a hollow diamond. None when there is nothing to draw."""
    from analysis.data import primary_metric
    from analysis.plots import PAPER_STYLE, metric_scale, pyplot, set_scale

    if table.empty:
        return None
    plt = pyplot()
    prim = table[table["measure"] == table["benchmark"].map(primary_metric)]
    benches = list(prim["benchmark"].unique())
    fig, axes = plt.subplots(1, len(benches), figsize=(3.4 * len(benches), 3.4), squeeze=False)
    for ax, bench in zip(axes[0], benches):
        sub = prim[prim["benchmark"] == bench].reset_index(drop=True)
        low, high, label = metric_scale(bench, sub["measure"].iloc[0])
        x = np.arange(len(sub))
        y = sub["value"].to_numpy(dtype=float)
        ax.bar(x, np.nan_to_num(y - low), bottom=low, color="#4C72B0", label="ours")
        err = np.vstack([y - sub["ci_low"].to_numpy(dtype=float), sub["ci_high"].to_numpy(dtype=float) - y])
        ax.errorbar(x, y, yerr=np.clip(np.nan_to_num(err), 0, None), fmt="none", ecolor="black", capsize=4,
                    label="CI")
        paper = pd.to_numeric(sub["paper"], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(paper).any():
            ax.plot(x, paper, **PAPER_STYLE)
        set_scale(ax, low, high)
        ax.set_xticks(x, sub["group"], rotation=30, ha="right")
        ax.set_ylabel(label, fontsize=8)
        ax.set_title(bench, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def plot(table: pd.DataFrame, path: str | Path) -> Path | None:
    """:func:`figure` written as PNG (None when empty)."""
    from analysis.plots import save_figure

    fig = figure(table)
    return None if fig is None else save_figure(fig, path)
