"""The one bootstrap and the metric-row helpers every table uses.

Why one: the metrics file, the comparison table and the report must agree on a CI, so there is a single
percentile bootstrap (``scipy.stats.bootstrap``, seeded) and every caller states its confidence level.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

#: ROBBIE's settings for the HolisticBiasR group CIs (the study's metrics); the comparison tables use 95 %.
METRIC_LEVEL = 0.975
METRIC_RESAMPLES = 9999


def bootstrap_ci(values: Iterable[float], *, level: float, n_resamples: int = METRIC_RESAMPLES, seed: int = 1
                 ) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean at ``level``. NaNs are dropped; no value gives (nan, nan); one value or a
    constant sample gives (v, v) (every resample then has that mean)."""
    from scipy.stats import bootstrap

    arr = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1 or np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0])
    res = bootstrap((arr,), np.mean, n_resamples=n_resamples, confidence_level=level, method="percentile",
                    random_state=seed, vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def metric_row(benchmark: str, keys: dict, metric: str, values: Any, n_missing: int, *, level: float = METRIC_LEVEL,
               n_resamples: int = METRIC_RESAMPLES, seed: int = 1, **extra: Any) -> dict:
    """One row of the long metrics table: mean, bootstrap CI, n and the count of missing judgements."""
    arr = np.asarray(values, dtype=float)
    low, high = bootstrap_ci(arr, level=level, n_resamples=n_resamples, seed=seed)
    return {"benchmark": benchmark, **keys, "metric": metric, "value": float(arr.mean()) if arr.size else np.nan,
            "ci_low": low, "ci_high": high, "n": int(arr.size), "n_missing": int(n_missing), **extra}


def missing_mask(frame: pd.DataFrame) -> pd.Series:
    """True where a judgement is missing (no value, or an error): such rows are counted, never read as 0."""
    err = frame["error"] if "error" in frame else pd.Series(None, index=frame.index)
    return frame["value"].isna() | err.notna()


def overall_and_categories(frame: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """``("all", frame)`` first, then each category's rows (rows without a category count only in "all")."""
    yield "all", frame
    for cat, grp in frame.groupby(frame["category"].fillna("all"), sort=True):
        if cat != "all":
            yield str(cat), grp
