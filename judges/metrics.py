"""Benchmark metrics with percentile-bootstrap CIs, from the joined table of a run.

Why: one implementation of the paper's numbers that every report uses. Each benchmark's spec owns its metric
function (:attr:`benchmarks.base.BenchmarkSpec.metrics`); this module runs them per (benchmark, condition,
mitigation) and raises on a benchmark it does not know. Missing judgements (``value`` NaN, an ``error``) are
excluded from every metric and COUNTED in ``n_missing`` -- never read as 0.

CIs: :func:`valueharms.stats.bootstrap_ci`, percentile method, seeded; every caller states the level (the study
used 9999 resamples at 97.5 %, :data:`valueharms.stats.METRIC_LEVEL`). The level is recorded in ``ci_level``.

HolisticBiasR bias score: ``bias_rule`` ``original`` (the paper's rule, the default so the paper's number is
comparable), ``overall`` (the condition's own overall negative rate as the baseline) or a fixed fraction; the rule
is recorded in ``baseline_kind``.
"""

from __future__ import annotations

import pandas as pd

from benchmarks.registry import get_spec
from valueharms.errors import InputError
from valueharms.stats import METRIC_RESAMPLES

COLUMNS = ["benchmark", "condition", "mitigation", "category", "axis", "descriptor", "metric", "value",
           "ci_low", "ci_high", "ci_level", "n", "n_missing", "baseline", "baseline_kind", "judge"]
BIAS_RULES = ("original", "overall")
#: The rule the paper's bias score used (each benchmark spec's ``paper_note`` says so for HolisticBiasR).
PAPER_BIAS_RULE = "original"


def parse_bias_rule(rule: str | float) -> str | float:
    """``original`` | ``overall`` | a fixed fraction in [0, 1]; anything else is a one-line error."""
    if isinstance(rule, str) and rule in BIAS_RULES:
        return rule
    try:
        number = float(rule)
    except (TypeError, ValueError):
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise InputError(None, None, "bias_rule", f"{rule!r} is not one of {', '.join(BIAS_RULES)} or a fraction 0-1")
    return number


def compute_metrics(frame: pd.DataFrame, *, level: float, bias_rule: str | float = PAPER_BIAS_RULE,
                    n_resamples: int = METRIC_RESAMPLES, seed: int = 1) -> pd.DataFrame:
    """All metrics per (benchmark, condition, mitigation[, category]) as a long table.

    ``frame['category']`` is the item's own category (HEx-PHI, BeaverTails) or None; ``judge`` (when present) is
    copied per benchmark so every number names its judge.
    """
    frame = frame.copy()
    for col, default in (("mitigation", "none"), ("category", None), ("condition", "all"), ("error", None)):
        if col not in frame:
            frame[col] = default
    frame["mitigation"] = frame["mitigation"].fillna("none")
    boot = dict(n_resamples=n_resamples, level=level, seed=seed)
    rule = parse_bias_rule(bias_rule)
    rows: list[dict] = []
    for (bench, cond, mit), grp in frame.groupby(["benchmark", "condition", "mitigation"], sort=True):
        spec = get_spec(bench)
        keys = {"condition": cond, "mitigation": mit}
        options = {"bias_baseline": rule} if spec.name == "holisticbiasr" else {}
        judges = grp["judge"].dropna().unique() if "judge" in grp else []
        for row in spec.metrics(grp, keys, **options, **boot):
            row.setdefault("ci_level", level)
            row["judge"] = ", ".join(sorted(map(str, judges))) or None
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def run_metrics(frame: pd.DataFrame, *, level: float, bias_rule: str | float = PAPER_BIAS_RULE,
                n_resamples: int = METRIC_RESAMPLES, seed: int = 1) -> pd.DataFrame:
    """:func:`compute_metrics` on a table from :func:`judges.join.load_run` (categories = the items' own)."""
    return compute_metrics(frame.assign(category=frame["item_category"]), level=level, bias_rule=bias_rule,
                           n_resamples=n_resamples, seed=seed)
