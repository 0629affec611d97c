"""Join a run's generation records with one judge's score records (the analysis entry point)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from judges.score import generation_paths, read_generations
from benchmarks.registry import get_spec
from valueharms.io import read_jsonl

GEN_COLUMNS = ("key", "benchmark", "prompt_id", "prompt", "category", "condition", "condition_kind", "adapter",
               "distribution", "values", "mitigation", "suppressed_values", "output", "sample_index", "seed",
               "base_model")


def load_scored(run_dir: str | Path, judge: str = "auto", scores: str | Path | None = None) -> pd.DataFrame:
    """One row per (generation, measure): generation columns, ``fields`` flattened (axis, descriptor, ...),
    and ``judge, judge_version, measure, value, label, labels, error, scored_text``.

    A generation without a score record keeps ``value`` NaN and ``error = "not scored"`` so it is counted
    as missing. The last record per (key, measure) wins (a rerun that fixed a failure).
    """
    run_dir, files = generation_paths(run_dir)
    gens = []
    for _, _, rec in read_generations(files):
        row = {c: rec.get(c) for c in GEN_COLUMNS}
        row["benchmark"] = get_spec(rec.get("benchmark")).name
        row["measure"] = rec.get("measure") or get_spec(row["benchmark"]).measure
        row["mitigation"] = rec.get("mitigation") or "none"
        for k, v in (rec.get("fields") or {}).items():
            row.setdefault(k, v)
        gens.append(row)
    gen = pd.DataFrame(gens)
    score_path = Path(scores) if scores else run_dir / "scores" / f"{judge}.jsonl"
    cols = ["key", "judge", "judge_version", "measure", "value", "label", "labels", "error", "scored_text"]
    recs = list(read_jsonl(score_path)) if score_path.is_file() else []
    sc = pd.DataFrame(recs, columns=cols).drop_duplicates(["key", "measure"], keep="last")
    merged = gen.merge(sc, on=["key", "measure"], how="left", indicator=True)
    merged.loc[merged["_merge"] == "left_only", "error"] = "not scored"
    merged["value"] = pd.to_numeric(merged["value"], errors="coerce")
    return merged.drop(columns="_merge")
