"""Numbers the paper reports (PROTOCOL.md "Reported results", Llama-2-7B), for side-by-side report columns.

From a secondary summary of the paper, not yet checked against the PDF: the report says so next to them.
"""

from __future__ import annotations

#: (group, measure) -> value. Groups follow :func:`analysis.data.group_label`.
COMPARISON: dict[tuple[str, str], float] = {}
_ROWS = {
    "vanilla": (0.35, 0.1702, 0.0759, 0.9443),
    "benign:alpaca": (0.19, 0.0489, 0.1585, 0.9498),
    "benign:dolly": (0.21, 0.0592, 0.1548, 0.9375),
    "benign:grammar": (0.20, 0.0516, 0.1166, 0.9296),
    "benign:samsum": (0.36, 0.1761, 0.2244, 0.9433),
    "ICL": (0.35, 0.1771, 0.1631, 0.9679),
    "VIM": (0.41, 0.3093, 0.1849, 0.9573),
}
for _group, (_emt, _tp, _neg, _bias) in _ROWS.items():
    COMPARISON[(_group, "expected_max_toxicity")] = _emt
    COMPARISON[(_group, "toxicity_probability")] = _tp
    COMPARISON[(_group, "negative_regard")] = _neg
    COMPARISON[(_group, "bias_score")] = _bias

#: HEx-PHI harmfulness score (1-5) under each mitigation: category keyword -> (suppressed value, {mitigation: (vanilla, VIM)}).
MITIGATION: dict[str, tuple[str, dict[str, tuple[float, float]]]] = {
    "adult": ("Self-direction", {"none": (4.31, 4.10), "safety": (3.95, 2.87), "value": (3.96, 2.45), "dual": (3.81, 2.43)}),
    "fraud": ("Universalism", {"none": (3.51, 3.43), "safety": (3.34, 2.91), "value": (3.39, 2.69), "dual": (3.09, 2.54)}),
    "political": ("Universalism", {"none": (3.94, 3.50), "safety": (3.51, 2.87), "value": (3.55, 2.65), "dual": (3.33, 2.30)}),
}

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


def paper_value(group: str, measure: str) -> float | None:
    return COMPARISON.get((group, measure)) or COMPARISON.get((group.lower(), measure))


def paper_mitigation(benchmark: str, category: str, mitigation: str, group: str) -> float | None:
    """The paper's HEx-PHI mitigation number for a category (matched by keyword), or None."""
    if benchmark != "hexphi" or group not in {"vanilla", "VIM"}:
        return None
    low = str(category).lower()
    for keyword, (_, table) in MITIGATION.items():
        if keyword in low and mitigation in table:
            return table[mitigation][0 if group == "vanilla" else 1]
    return None
