"""Tables for the report, as HTML and markdown, with the paper's numbers in their own marked column group.

Why a separate group: the paper's numbers come from another model (Llama-2-7B) and other judges (Perspective,
regard, GPT-4o); a reader must never take them for ours, so they sit after a double rule under their own label.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis.header import PAPER_LABEL


def fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, (float, np.floating)):
        return f"{x:.4g}"
    return str(x)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |"


def _paper_class(i: int) -> str:
    return "paper start" if i == 0 else "paper"


def table(frame: pd.DataFrame, caption: str = "", paper: Sequence[str] = ()) -> dict:
    """The same table as HTML and markdown; ``paper`` columns go last, in a group labelled :data:`PAPER_LABEL`."""
    paper = [c for c in paper if c in frame.columns]
    ours = [c for c in frame.columns if c not in paper]
    if frame.empty:
        return {"caption": caption, "html": "<p class='note'>(no rows)</p>", "md": "_(no rows)_"}
    shown = frame[ours + paper].map(fmt)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ours)
    head += "".join(f"<th class='{_paper_class(i)}'>{html.escape(str(c))}</th>" for i, c in enumerate(paper))
    group = ""
    if paper:
        group = (f"<tr><th colspan='{len(ours)}' class='group'>ours</th>"
                 f"<th colspan='{len(paper)}' class='paper start group'>{html.escape(PAPER_LABEL)}</th></tr>")
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row[:len(ours)])
                   + "".join(f"<td class='{_paper_class(i)}'>{html.escape(v)}</td>"
                             for i, v in enumerate(row[len(ours):])) + "</tr>"
                   for row in shown.itertuples(index=False))
    markup = f"<table><thead>{group}<tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    cols = ours + ([f"‖ {PAPER_LABEL}: {c}" for c in paper] if paper else [])
    lines = [_md_row(cols), "|" + "---|" * len(cols)]
    lines += [_md_row(row) for row in shown.itertuples(index=False)]
    return {"caption": caption, "html": markup, "md": "\n".join(lines)}
