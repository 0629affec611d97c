"""Training curves from the adapters' CSV logs (Lightning's CSVLogger writes ``metrics.csv`` under each adapter).

Read defensively: any ``metrics.csv`` below ``<study>/adapters/<name>/`` counts (the logger's version folders vary),
a file that cannot be parsed is listed as skipped, and only numeric columns with a step are drawn.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

STEP_COLUMNS = ("step", "epoch")


def find_logs(study: str | Path) -> dict[str, list[Path]]:
    """adapter name -> its ``metrics.csv`` files (sorted), for every adapter folder under ``<study>/adapters``."""
    found: dict[str, list[Path]] = {}
    for path in sorted(Path(study).glob("adapters/*/**/metrics.csv")):
        adapter = path.relative_to(Path(study) / "adapters").parts[0]
        found.setdefault(adapter, []).append(path)
    return found


def read_curves(study: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Long table (adapter, metric, step, value) of every logged metric, and the files that could not be read."""
    rows, skipped = [], []
    for adapter, paths in find_logs(study).items():
        for path in paths:  # several versions (a resumed fit): Lightning's global step already continues
            try:
                table = pd.read_csv(path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
                skipped.append(f"{path}: {type(err).__name__}")
                continue
            if "step" not in table:
                skipped.append(f"{path}: no step column")
                continue
            step = pd.to_numeric(table["step"], errors="coerce")
            for column in table.columns:
                if column in STEP_COLUMNS:
                    continue
                values = pd.to_numeric(table[column], errors="coerce")
                ok = values.notna() & step.notna()
                rows += [{"adapter": adapter, "metric": column, "step": float(s), "value": float(v)}
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
