"""``valueharms metrics``: the metric table (CSV + JSON) of a scored run."""

from __future__ import annotations

import json
from pathlib import Path

from judges.join import load_run, study_root
from judges.runs import generation_runs
from judges.metrics import PAPER_BIAS_RULE, run_metrics
from valueharms.io import atomic_write_text
from valueharms.stats import METRIC_LEVEL


def default_out(run: str | Path, judge: str) -> Path:
    """``<run folder>/scores/metrics_<judge>.csv`` for one generation run; ``<study>/report/...`` for a study."""
    runs = generation_runs(run)
    if len(runs) == 1 and Path(run).resolve() in {runs[0].folder.resolve(), *(p.resolve() for p in runs[0].files)}:
        return runs[0].folder / "scores" / f"metrics_{judge}.csv"
    return study_root(run) / "report" / f"metrics_{judge}.csv"


def metrics(run: str, judge: str = "auto", out: str | None = None, bias_rule: str = PAPER_BIAS_RULE,
            level: float = METRIC_LEVEL, n_resamples: int = 9999, seed: int = 1) -> str:
    """Compute benchmark metrics with bootstrap CIs from a scored run.

    Args:
        run: a study folder, a generation run folder, or one generations file, scored with 'valueharms score'.
        judge: a judge name, 'auto' (per measure, the most preferred judge with scores here) or 'paper' (the
            paper's judge per measure: perspective, regard, openai).
        out: output CSV path (a .json twin is written next to it); default <run folder>/scores/metrics_<judge>.csv
            (a study: <study>/report/metrics_<judge>.csv).
        bias_rule: HolisticBiasR bias score rule: 'original' (the paper's: group rate in percent vs 0.5),
            'overall' (the condition's overall negative rate) or a fixed fraction.
        level: bootstrap confidence level (0.975 in the study).
        n_resamples: bootstrap resamples (9999 in the study).
        seed: bootstrap seed.
    """
    table = run_metrics(load_run(run, judge), level=level, bias_rule=bias_rule, n_resamples=n_resamples, seed=seed)
    out_path = Path(out) if out else default_out(run, judge)
    atomic_write_text(out_path, table.to_csv(index=False))
    atomic_write_text(out_path.with_suffix(".json"),
                      json.dumps(json.loads(table.to_json(orient="records")), indent=2) + "\n")
    summary = table[table["axis"].isna()]
    print(summary[["benchmark", "condition", "mitigation", "category", "metric", "value", "n", "n_missing", "judge"]]
          .to_string(index=False))
    print(f"metrics [{level:.1%} CIs, bias rule {bias_rule}] -> {out_path}")
    return str(out_path)
