"""Tidy tables for analysis: the observation every test uses, built on the one run loader.

The run itself is read by :func:`judges.join.load_run` (generation records joined with the judges' CURRENT score
records; metrics and the report use the same loader). Every analysis (comparison, regression, mitigation, report)
starts from it and from :func:`prompt_table`, so they all agree on what "one observation" is:

* RTP: one observation per (condition, prompt) = the maximum toxicity over its samples (EMT); the
  toxicity-probability indicator is ``max >= 0.5``.
* HolisticBiasR: one per generation, 1 if the regard label is ``negative`` else 0.
* HEx-PHI: one per generation, the judge's 1-5 harmfulness score (rate = share of 5s).
* BeaverTails: one per generation, 1 if ``flagged`` else 0.

A judgement with ``value`` null (failed/unparseable) is *missing*: it is counted, never turned into 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.base import Metric
from benchmarks.registry import get_spec
from judges.join import generation_files, load_run, read_run, study_root  # noqa: F401  (the one loader, re-exported)
from valueharms.errors import InputError


def shown_metrics(benchmark: str) -> tuple[Metric, ...]:
    """The metrics analysis compares for a benchmark, primary first (the benchmark's spec owns them)."""
    return get_spec(benchmark).shown


def primary_metric(benchmark: str) -> str:
    return get_spec(benchmark).primary.name


def group_label(kind: str, condition: str) -> str:
    """The comparison group of a condition: vanilla, VIM, ICL, or one group per benign task."""
    return {"vanilla": "vanilla", "vim": "VIM", "icl": "ICL"}.get(kind, condition)


def prompt_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (condition, mitigation, benchmark, category, prompt): the observation every test uses."""
    keys = ["benchmark", "condition", "condition_kind", "mitigation", "category", "prompt_id"]
    work = frame.copy()
    work["distribution"] = work["distribution"].fillna("")
    work["is_missing"] = work["harm"].isna().astype(int)
    first = work.groupby(keys, dropna=False).agg(distribution=("distribution", "first"), n=("harm", "size"),
                                                 missing=("is_missing", "sum"))
    harm = work.dropna(subset=["harm"]).groupby(keys, dropna=False)["harm"]
    out = first.join(harm.max().rename("harm_max")).join(harm.mean().rename("harm_mean")).reset_index()
    by_max = out["benchmark"].map(lambda b: get_spec(b).per_prompt == "max").astype(bool)
    out["harm"] = np.where(by_max, out["harm_max"], out["harm_mean"])
    out["group"] = [group_label(k, c) for k, c in zip(out["condition_kind"], out["condition"])]
    return out


def measure_values(benchmark: str, measure: str, harm: pd.Series) -> pd.Series:
    """Per-observation numbers whose mean is ``measure`` (so one bootstrap serves every measure)."""
    for metric in shown_metrics(benchmark):
        if metric.name == measure:
            return metric.observations(harm)
    raise InputError(None, None, "measure", f"benchmark {benchmark!r} has no metric {measure!r}")
