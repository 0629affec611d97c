"""Quickstart: config rewriting and step resume (fast), and the whole study end to end with the tiny model.

The end-to-end test needs every other part of the pipeline (prepare/fit/predict/score); it is marked
``slow`` and is the integration check for ``make quickstart``.
"""

from __future__ import annotations

import json

import pytest
import yaml

from analysis.quickstart import Steps, benchmark_line, check_stages, derived_config, quickstart
from valueharms.errors import InputError


def test_derived_config_rewrites_paths_model_and_sizes(tmp_path):
    src = tmp_path / "src.yaml"
    src.write_text(yaml.safe_dump({
        "trainer": {"default_root_dir": "runs/quickstart/logs"},
        "model": {"init_args": {"model": "smollm2-135m", "adapter_dir": "runs/quickstart/adapters/{name}"}},
        "data": {"init_args": {"max_examples": 32, "batch_size": 4, "arguments": "samples/none.tsv", "flag": True,
                                   "icl_names": ["Pow", "Uni"], "max_categories": None}}}))
    cfg = yaml.safe_load(derived_config(src, tmp_path / "out.yaml", str(tmp_path / "study"), "/m/tiny", fast=True,
                                        fast_fit=True).read_text())
    assert cfg["model"]["init_args"] == {"model": "/m/tiny", "adapter_dir": f"{tmp_path}/study/adapters/{{name}}"}
    assert cfg["trainer"]["default_root_dir"] == f"{tmp_path}/study/logs"
    # a fast fit cuts the data to one batch per stage, never total steps (a step cap stops training inside stage 1)
    assert "max_steps" not in cfg["trainer"] and "limit_train_batches" not in cfg["trainer"]
    assert cfg["data"]["init_args"]["max_examples"] == 2 and cfg["data"]["init_args"]["batch_size"] == 2
    kept = yaml.safe_load(derived_config(src, tmp_path / "o2.yaml", "s", "m", fast=True).read_text())  # predict-style
    assert kept["data"]["init_args"]["max_examples"] == 8 and kept["data"]["init_args"]["batch_size"] == 4
    assert cfg["data"]["init_args"]["flag"] is True
    assert cfg["data"]["init_args"]["icl_names"] == ["Pow"] and cfg["data"]["init_args"]["max_categories"] == 2


def test_steps_resume(tmp_path):
    calls = []
    Steps(tmp_path).run("a", lambda: calls.append("a"), 1, 2)
    Steps(tmp_path).run("a", lambda: calls.append("a again"), 1, 2)
    assert calls == ["a"] and json.loads((tmp_path / "quickstart_state.json").read_text())["a"]["done"]


def test_check_stages_refuses_an_adapter_trained_on_stage1_only(tmp_path):
    from valueharms.adapters import write_metadata

    common = dict(kind="vim", name="Pow", base_model="tiny", complete=True, stage_mode="sequential",
                  stages=["argument_generation", "agreement_prediction"])
    write_metadata(tmp_path / "one", best_epoch_per_stage={"1": 0}, **common)
    write_metadata(tmp_path / "two", best_epoch_per_stage={"1": 0, "2": 1}, **common)
    check_stages([str(tmp_path / "two")])
    with pytest.raises(InputError, match="only 1 of 2 stages trained"):
        check_stages([str(tmp_path / "one")])


def test_benchmark_line_reports_steps_total_and_pvq():
    state = {"fit": {"seconds": 10.0, "cpu_seconds": 15.0},
             "pvq": {"seconds": 5.5, "cpu_seconds": 9.0, "unparseable": 0, "answers": 160}}
    line = benchmark_line(state, ["fit", "pvq"], 20.0, fast=True)
    assert "fit 10.0s (cpu 15.0s), pvq 5.5s (cpu 9.0s)" in line and "steps total 15.5s (cpu 24.0s)" in line
    assert "20.0s wall" in line
    assert "PVQ unparseable 0 of 160" in line


@pytest.mark.slow
def test_quickstart_end_to_end_tiny(tiny_model_dir, tmp_path, capsys):
    """INTEGRATION: needs vim.sweep, configs/predict/quickstart.yaml + generation, judges.score."""
    out = tmp_path / "study"
    path = quickstart(out=str(out), model=str(tiny_model_dir), fast=True)
    printed = capsys.readouterr().out
    assert "quickstart benchmark (fast" in printed and "PVQ unparseable 0 of" in printed
    from valueharms.adapters import find_adapters

    adapters = find_adapters(out / "adapters")
    assert len(adapters) == 3 and all(set(a.meta["best_epoch_per_stage"]) == {"1", "2"} for a in adapters)
    assert all(a.meta["global_step"] == 2 for a in adapters)  # one batch per stage
    pvq = json.loads((out / "report" / "pvq.json").read_text())
    assert pvq["mode"] == "loglik" and pvq["unparseable"] == 0 and pvq["conditions"] == {"icl": 1, "vim": 3}
    html = (out / "report" / "report.html").read_text()
    for section in ("Comparison", "Which values explain harm", "Mitigation", "PVQ-40", "toxicity audit"):
        assert section in html
    assert path.endswith("report.html")
    state = json.loads((out / "quickstart_state.json").read_text())
    assert all(state[s]["done"] for s in ("fit", "generate", "score", "pvq", "audit", "report"))
    # rerun resumes: every step is skipped, the report is still there
    quickstart(out=str(out), model=str(tiny_model_dir), fast=True)
    assert json.loads((out / "quickstart_state.json").read_text()) == state
