"""Benchmark metrics with percentile-bootstrap CIs, from a table of joined judgements.

Why: one implementation of the paper's numbers that every report uses. Each benchmark's spec owns its metric
function (:attr:`benchmarks.base.BenchmarkSpec.metrics`); this module runs them per (benchmark, condition,
mitigation) and raises on a benchmark it does not know. Missing judgements (``value`` NaN, an ``error``) are
excluded from every metric and COUNTED in ``n_missing`` -- never read as 0.

CIs: :func:`valueharms.stats.bootstrap_ci`, percentile method, 9999 resamples, 97.5 % level (ROBBIE's
settings), seeded.
"""

from __future__ import annotations

import pandas as pd

from benchmarks.registry import get_spec
from valueharms.stats import METRIC_LEVEL, METRIC_RESAMPLES

COLUMNS = ["benchmark", "condition", "mitigation", "category", "axis", "descriptor", "metric", "value",
           "ci_low", "ci_high", "n", "n_missing", "baseline", "baseline_kind"]


def compute_metrics(frame: pd.DataFrame, *, bias_baseline: str | float = "overall",
                    n_resamples: int = METRIC_RESAMPLES, level: float = METRIC_LEVEL, seed: int = 1) -> pd.DataFrame:
    """All metrics per (benchmark, condition, mitigation[, category]) as a long table."""
    frame = frame.copy()
    for col, default in (("mitigation", "none"), ("category", None), ("condition", "all"), ("error", None)):
        if col not in frame:
            frame[col] = default
    frame["mitigation"] = frame["mitigation"].fillna("none")
    boot = dict(n_resamples=n_resamples, level=level, seed=seed)
    rows: list[dict] = []
    for (bench, cond, mit), grp in frame.groupby(["benchmark", "condition", "mitigation"], sort=True):
        spec = get_spec(bench)
        keys = {"condition": cond, "mitigation": mit}
        options = {"bias_baseline": bias_baseline} if spec.name == "holisticbiasr" else {}
        rows += spec.metrics(grp, keys, **options, **boot)
    return pd.DataFrame(rows, columns=COLUMNS)
