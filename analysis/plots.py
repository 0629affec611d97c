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
