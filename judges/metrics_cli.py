"""``valueharms metrics``: the metric table (CSV + JSON) of a scored run."""

from __future__ import annotations

import json
from pathlib import Path

from judges.join import load_scored
from judges.metrics import compute_metrics
from judges.score import generation_paths
from valueharms.io import atomic_write_text


def metrics(run: str, judge: str = "auto", out: str | None = None, bias_baseline: str = "overall",
            n_resamples: int = 9999, seed: int = 1) -> str:
    """Compute benchmark metrics with bootstrap CIs from <run>/scores/<judge>.jsonl.

    Args:
        run: a run folder (or generations file) already scored with 'valueharms score'.
        judge: which score file to read (scores/<judge>.jsonl).
        out: output CSV path (a .json twin is written next to it); default <run>/scores/metrics_<judge>.csv.
        bias_baseline: 'overall' (the condition's negative rate), 'original' (percent vs 0.5, as released), or a number.
        n_resamples: bootstrap resamples (9999 in the study).
        seed: bootstrap seed.
    """
    run_dir, _ = generation_paths(run)
    baseline: str | float = bias_baseline if bias_baseline in {"overall", "original"} else float(bias_baseline)
    table = compute_metrics(load_scored(run, judge), bias_baseline=baseline, n_resamples=n_resamples, seed=seed)
    out_path = Path(out) if out else run_dir / "scores" / f"metrics_{judge}.csv"
    atomic_write_text(out_path, table.to_csv(index=False))
    atomic_write_text(out_path.with_suffix(".json"),
                      json.dumps(json.loads(table.to_json(orient="records")), indent=2) + "\n")
    summary = table[table["axis"].isna()] if "axis" in table else table
    print(summary[["benchmark", "condition", "mitigation", "category", "metric", "value", "n", "n_missing"]]
          .to_string(index=False))
    print(f"metrics -> {out_path}")
    return str(out_path)
