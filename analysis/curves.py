"""Training curves from the adapters' CSV logs (Lightning's CSVLogger writes ``metrics.csv`` under each adapter).

Read defensively: each ``<study>/adapters/<name>/logs/version_*/metrics.csv`` (where the fit's CSVLogger writes),
a log that cannot be parsed is listed as skipped, and only numeric columns with a step are drawn.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

STEP_COLUMNS = ("step", "epoch")


def read_curves(study: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Long table (adapter, metric, step, value) of every logged metric, and the logs that could not be read.

    Each adapter folder's curve comes from :func:`valueharms.adapters.training_curves` (a resumed fit's retrained
    steps are kept once, from the run the weights followed)."""
    from valueharms.adapters import training_curves

    rows, skipped = [], []
    root = Path(study) / "adapters"
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        try:
            table = training_curves(folder)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
            skipped.append(f"{folder / 'logs'}: {type(err).__name__}")
            continue
        if table.empty:
            continue
        if "step" not in table:
            skipped.append(f"{folder / 'logs'}: no step column")
            continue
        step = pd.to_numeric(table["step"], errors="coerce")
        for column in table.columns:
            if column in STEP_COLUMNS:
                continue
            values = pd.to_numeric(table[column], errors="coerce")
            ok = values.notna() & step.notna()
            rows += [{"adapter": folder.name, "metric": column, "step": float(s), "value": float(v)}
                     for s, v in zip(step[ok], values[ok])]
    return pd.DataFrame(rows, columns=["adapter", "metric", "step", "value"]), skipped


def figure(curves: pd.DataFrame, max_panels: int = 4):
    """One panel per logged loss (others after them, at most ``max_panels``), a line per adapter; None if empty."""
    from analysis.plots import pyplot

    if curves.empty:
        return None
    plt = pyplot()
    metrics = sorted(set(curves["metric"]), key=lambda m: ("loss" not in m, m))[:max_panels]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sub = curves[curves["metric"] == metric]
        for adapter, g in sub.groupby("adapter", sort=True):
            ax.plot(g["step"], g["value"], marker="." if len(g) < 20 else None, lw=1, label=adapter)
        ax.set_xlabel("training step", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        ax.set_title(metric, fontsize=9)
        if sub["adapter"].nunique() <= 8:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
