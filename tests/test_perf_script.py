"""perf/run_perf.py runs end to end on the tiny model and its ratios and projections are consistent."""

from __future__ import annotations

import importlib.util
import json
import math

from conftest import REPO


def _load_perf():
    spec = importlib.util.spec_from_file_location("run_perf", REPO / "perf" / "run_perf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_perf_script_tiny_writes_consistent_ratios(tmp_path):
    perf = _load_perf()
    out = tmp_path / "perf.json"
    result = perf.main(["--device", "cpu", "--tiny", "--steps", "3", "--gen-batch", "8", "--gen-tokens", "4",
                        "--repeats", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["shape"] == "tiny" and result["label"].startswith("CPU")
    rates = ("train_padded_useful_tok_s", "train_packed_tok_s", "hf_generate_tok_s", "hf_mixed_8_adapters_tok_s")
    assert all(math.isfinite(result[k]) and result[k] > 0 for k in rates)
    # ratios and projections are derived from the measured rates, not typed in
    assert math.isclose(result["train_speedup"], result["train_packed_tok_s"] / result["train_padded_useful_tok_s"],
                        rel_tol=0.01)
    assert math.isclose(result["mixed_vs_single"], result["hf_mixed_8_adapters_tok_s"] / result["hf_generate_tok_s"],
                        rel_tol=0.01)
    assert result["meets_mixed_target"] == (result["mixed_vs_single"] >= perf.TARGET_MIXED_VS_SINGLE)
    expected_hours = perf.STUDY_GEN_TOKENS / result["hf_generate_tok_s"] / 3600
    assert math.isclose(result["study_generation_hours_projected_hf"], expected_hours, rel_tol=0.01)
