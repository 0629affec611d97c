"""`valueharms predict` via valueharms.cli.main: bad input is one line + exit 2; the shipped configs parse."""

from __future__ import annotations

from pathlib import Path


from valueharms.cli import main

REPO = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, model_dir: Path, hexphi: str) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""trainer: {{accelerator: cpu, logger: false}}
model: {{class_path: benchmarks.generation.GenerationModule, init_args: {{model: {model_dir}, greedy: true}}}}
data:
  class_path: benchmarks.generation.BenchmarkDataModule
  init_args:
    output: {tmp_path}/g.jsonl
    benchmarks: {{hexphi: {{source: {hexphi}}}}}
""")
    return cfg


def test_missing_hexphi_one_line_exit_2(tmp_path, tiny_model_dir, capsys):
    assert main(["predict", "--config", str(_config(tmp_path, tiny_model_dir, str(tmp_path / "nohex")))]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("valueharms:")]
    assert len(lines) == 1 and "nohex" in lines[0] and "HEx-PHI" in lines[0]


def test_predict_runs_with_limit(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, str(REPO / "samples/benchmarks/hexphi_placeholder"))
    main(["predict", "--config", str(cfg), "--data.init_args.limit", "1", "--data.init_args.batch_size", "16"])
    lines = (tmp_path / "g.jsonl").read_text().splitlines()
    assert len(lines) == 10  # one prompt per category, vanilla, mitigation none
    assert "g.jsonl" in (tmp_path / "config.yaml").read_text()  # the resolved config sits beside the records
