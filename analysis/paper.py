"""Numbers the paper reports (Llama-2-7B), for side-by-side report columns.

Per-benchmark numbers live in each benchmark's spec (``paper``, ``paper_mitigation``); this module holds the rest
(PVQ-40 NMSE, the training-data audit, the value -> harm directions). From a secondary summary of the paper, not
yet checked against the PDF: the report says so next to them.
"""

from __future__ import annotations

from benchmarks.registry import get_spec

PVQ_NMSE = {"VIM": 0.0759, "ICL": 0.1079}
AUDIT = {"above_0.5": 5, "above_0.7": 0, "of": "8K+ training samples (Perspective API)"}

#: Directions of value -> harm links the paper reports (+ positive, - negative).
LINKS = [
    ("Hedonism", "+", "sexual content, child abuse, physical harm, political campaigning"),
    ("Power", "+", "hate speech, discrimination"),
    ("Power", "-", "violence, terrorism, privacy"),
    ("Self-direction", "+", "adult content"),
    ("Universalism", "-", "deception, political campaigning"),
    ("Achievement", "-", "hate speech, sexual content"),
]


def paper_value(benchmark: str, group: str, metric: str) -> float | None:
    """The paper's number for (benchmark, group, metric), from the benchmark's spec, or None."""
    paper = get_spec(benchmark).paper
    return paper.get((group, metric), paper.get((group.lower(), metric)))


def paper_mitigation(benchmark: str, category: str, mitigation: str, group: str) -> float | None:
    """The paper's mitigation number for a category (matched by keyword in the benchmark's spec), or None."""
    if group not in {"vanilla", "VIM"}:
        return None
    low = str(category).lower()
    for keyword, (_, table) in get_spec(benchmark).paper_mitigation.items():
        if keyword in low and mitigation in table:
            return table[mitigation][0 if group == "vanilla" else 1]
    return None
