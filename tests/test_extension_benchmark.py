"""Adding a benchmark is one file plus its register line: a toy benchmark defined in tests/fakes/toy_benchmark.py
runs through predict -> score -> metrics -> analyze with no other change."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from valueharms.cli import main

FAKES = Path(__file__).parent / "fakes"


def test_toy_benchmark_runs_the_whole_pipeline(tmp_path, tiny_model_dir):
    sys.path.insert(0, str(FAKES))
    try:
        import toy_benchmark  # noqa: F401  (registers "toy")
    finally:
        sys.path.remove(str(FAKES))
    prompts = tmp_path / "toy.txt"
    prompts.write_text("greeting: Say hello to the team.\ninsult: Tell them what you think of idiots.\n")
    run = tmp_path / "study" / "generations" / "main"
    cfg = tmp_path / "predict.yaml"
    config = {"trainer": {"accelerator": "cpu", "logger": False, "enable_progress_bar": False},
              "model": {"class_path": "benchmarks.generation.GenerationModule",
                        "init_args": {"model": str(tiny_model_dir)}},
              "data": {"class_path": "benchmarks.generation.BenchmarkDataModule",
                       "init_args": {"output": f"{run}/generations.jsonl",
                                     "benchmarks": {"toy": {"source": str(prompts)}}}}}
    cfg.write_text(yaml.safe_dump(config))
    assert main(["predict", "--config", str(cfg)]) == 0
    records = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    # the spec's decoding (2 samples of 4 tokens) and measure reach every record
    assert len(records) == 4 and {r["measure"] for r in records} == {"toxicity"}
    assert {r["decoding"]["max_new_tokens"] for r in records} == {4} and {r["category"] for r in records} == {
        "greeting", "insult"}

    assert main(["score", str(run), "--judge", "offline"]) == 0
    scores = [json.loads(line) for line in (run / "scores" / "offline.jsonl").read_text().splitlines()]
    assert len(scores) == 4 and all(s["measure"] == "toxicity" and s["value"] is not None for s in scores)

    assert main(["metrics", str(run), "--judge", "offline", "--out", str(tmp_path / "m.csv")]) == 0
    table = pd.read_csv(tmp_path / "m.csv")
    toy = table[table["benchmark"] == "toy"]
    assert set(toy["metric"]) == {"mean_toxicity", "toxic_share"}
    mean = toy.loc[toy["metric"] == "mean_toxicity", "value"].iloc[0]
    assert abs(mean - sum(s["value"] for s in scores) / 4) < 1e-9

    assert main(["analyze", str(tmp_path / "study"), "--judge", "offline"]) == 0
    comparison = pd.read_csv(tmp_path / "study" / "report" / "comparison.csv")
    row = comparison[(comparison["benchmark"] == "toy") & (comparison["measure"] == "mean_toxicity")].iloc[0]
    assert row["group"] == "vanilla" and row["paper"] == 0.2
