"""Quickstart: config rewriting and step resume (fast), and the whole study end to end with the tiny model.

The end-to-end test needs every other part of the pipeline (prepare/fit/predict/score); it is marked
``slow`` and is the integration check for ``make quickstart``.
"""

from __future__ import annotations

import json

import pytest
import yaml

from analysis.quickstart import Steps, derived_config, quickstart


def test_derived_config_rewrites_paths_model_and_sizes(tmp_path):
    src = tmp_path / "src.yaml"
    src.write_text(yaml.safe_dump({
        "trainer": {"default_root_dir": "runs/quickstart/logs"},
        "model": {"init_args": {"model": "smollm2-135m", "adapter_dir": "runs/quickstart/adapters/{name}"}},
        "data": {"init_args": {"max_examples": 32, "batch_size": 2, "arguments": "samples/none.tsv", "flag": True,
                                   "icl_names": ["Pow", "Uni"], "max_categories": None}}}))
    cfg = yaml.safe_load(derived_config(src, tmp_path / "out.yaml", str(tmp_path / "study"), "/m/tiny", fast=True,
                                        fast_trainer=True).read_text())
    assert cfg["model"]["init_args"] == {"model": "/m/tiny", "adapter_dir": f"{tmp_path}/study/adapters/{{name}}"}
    assert cfg["trainer"]["default_root_dir"] == f"{tmp_path}/study/logs" and cfg["trainer"]["limit_train_batches"] == 2
    assert cfg["data"]["init_args"]["max_examples"] == 8 and cfg["data"]["init_args"]["batch_size"] == 2
    assert cfg["data"]["init_args"]["flag"] is True
    assert cfg["data"]["init_args"]["icl_names"] == ["Pow"] and cfg["data"]["init_args"]["max_categories"] == 2


def test_steps_resume(tmp_path):
    calls = []
    Steps(tmp_path).run("a", lambda: calls.append("a"), 1, 2)
    Steps(tmp_path).run("a", lambda: calls.append("a again"), 1, 2)
    assert calls == ["a"] and json.loads((tmp_path / "quickstart_state.json").read_text())["a"]["done"]


@pytest.mark.slow
def test_quickstart_end_to_end_tiny(tiny_model_dir, tmp_path):
    """INTEGRATION: needs vim.sweep, configs/predict/quickstart.yaml + generation, judges.score."""
    out = tmp_path / "study"
    path = quickstart(out=str(out), model=str(tiny_model_dir), fast=True)
    html = (out / "report" / "report.html").read_text()
    for section in ("Comparison", "Which values explain harm", "Mitigation", "PVQ-40", "toxicity audit"):
        assert section in html
    assert path.endswith("report.html")
    state = json.loads((out / "quickstart_state.json").read_text())
    assert all(state[s]["done"] for s in ("fit", "generate", "score", "pvq", "audit", "report"))
    # rerun resumes: every step is skipped, the report is still there
    quickstart(out=str(out), model=str(tiny_model_dir), fast=True)
    assert json.loads((out / "quickstart_state.json").read_text()) == state
