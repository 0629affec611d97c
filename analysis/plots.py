"""Matplotlib (Agg) helpers shared by the analysis plots: atomic PNG writes and base64 embedding."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from valueharms.io import atomic_write_bytes


def pyplot() -> Any:
    """pyplot on the Agg backend (no display needed, safe in threads and CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write a figure as PNG atomically (a reader never sees half an image), then close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:`` URI so the HTML report is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


#: Marker style of the paper's numbers in every plot (one look for "this is the paper, not us").
PAPER_STYLE = dict(marker="D", markersize=7, markerfacecolor="none", markeredgecolor="black", linestyle="none",
                   label="paper (Llama-2-7B)")


def metric_scale(benchmark: str, metric: str) -> tuple[float, float, str]:
    """(low, high, axis label with unit) of a benchmark metric: rates are 0-1, others use the measure's scale."""
    from benchmarks.registry import get_spec
    from valueharms.measures import get_measure

    spec = get_spec(benchmark)
    found = next((m for m in spec.shown if m.name == metric), spec.primary)
    measure = get_measure(spec.measure)
    low, high = (0.0, 1.0) if found.observation is not None or measure.harmful_label is not None else (
        measure.low, measure.high)
    unit = f"({low:g}-{high:g})"
    label = found.label.replace(unit, "").strip()  # a label may already carry its scale
    return low, high, f"{label} {unit}"


def set_scale(ax: Any, low: float, high: float, axis: str = "y") -> None:
    """Fix an axis to a measure's whole scale (a little margin), never to the spread of the data."""
    pad = 0.04 * (high - low)
    (ax.set_ylim if axis == "y" else ax.set_xlim)(low - pad, high + pad)
