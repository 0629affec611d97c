"""perf/run_perf.py runs end to end on the tiny model; its ratios, targets and projection follow from its rows;
the vLLM rows build the right requests (fake engine: vLLM is a GPU-only optional extra)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import types

import pytest
from conftest import REPO


def _load_perf():
    spec = importlib.util.spec_from_file_location("run_perf", REPO / "perf" / "run_perf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_perf_script_tiny_end_to_end(tmp_path):
    perf = _load_perf()
    out = tmp_path / "perf.json"
    result = perf.main(["--device", "cpu", "--tiny", "--steps", "2", "--warmup", "1", "--k", "2", "--gen-batch", "4",
                        "--gen-tokens", "2", "--prompt-len", "8", "--max-len", "32", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["shape"] == "tiny" and result["label"].startswith("CPU") and result["versions"]["torch"]
    train = result["training"]
    for row in ("fixed_padding", "dynamic_padding", "packed_dense_mask", "packed_varlen", "k_adapters"):
        assert math.isfinite(train[row]["tok_s"]) and train[row]["tok_s"] > 0, row
    assert train["packed_varlen"]["kernel"].startswith("torch_varlen")
    assert train["packed_dense_mask"]["kernel"] == "sdpa (dense block-diagonal mask)"
    assert train["k_adapters"]["examples_per_step"] == 2 * 8
    r = result["ratios"]
    assert math.isclose(r["train_packed_vs_dynamic"], train["packed_varlen"]["tok_s"] / train["dynamic_padding"]["tok_s"],
                        rel_tol=0.01)
    assert math.isclose(r["train_k_vs_separate"], train["k_adapters"]["tok_s"] / train["packed_varlen"]["tok_s"],
                        rel_tol=0.01)
    gen = result["generation"]
    assert gen["hf_single_tok_s"] > 0 and gen["hf_mixed8_tok_s"] > 0 and "CUDA" in gen["vllm_skipped"]
    assert r["gen_vllm_vs_hf"] is None and r["gen_mixed8_backend"] == "hf"
    best = result["projection"]["best"]
    tokens = result["projection"]["tokens"]
    hours = tokens["train_tokens"] / best["train_rate"] / 3600 + tokens["generated_tokens"] / best["gen_rate"] / 3600
    assert math.isclose(best["total_hours"], hours, rel_tol=0.01)
    lines = result["targets"]
    assert len(lines) == len(perf.TARGETS) and lines[0].startswith("UNMEASURED vLLM")
    assert all(line.split()[0] in ("PASS", "FAIL", "UNMEASURED") for line in lines)


def test_study_arithmetic():
    """The documented per-condition sizes: RTP 3000x10x64, HolisticBiasR 16000x128, HEx-PHI 330x64, BeaverTails 700x64."""
    sys.path.insert(0, str(REPO / "perf"))
    import projection

    assert projection.generation_tokens_per_condition() == 1_920_000 + 2_048_000 + 21_120 + 44_800
    tokens = projection.study_tokens()
    assert tokens["generation_conditions"] == 154 + 154 + 1 + 4
    assert tokens["mitigation_tokens"] == 3 * 155 * (330 + 700) * 64
    stage1 = 5 * 75.4 * (5898 + 738 / 3)
    stage2 = 5 * 125.0 * (16641 + 2071 / 3)
    assert tokens["train_tokens_per_adapter"] == pytest.approx(stage1 + stage2)
    assert projection.project(tokens["train_tokens"] / 3600, tokens["generated_tokens"] / 7200) == {
        "train_hours": 1.0, "generation_hours": 2.0, "total_hours": 3.0}


def test_target_lines_pass_and_fail_in_the_right_direction():
    perf = _load_perf()
    result = {"ratios": {"gen_vllm_vs_hf": 9.0, "gen_mixed8_vs_single": 0.5, "train_packed_vs_dynamic": 1.5,
                         "train_packed_vs_fixed": 2.9, "train_k_vs_separate": None},
              "projection": {"best": {"total_hours": 19.0}}, "generation": {}}
    lines = perf.target_lines(result)
    assert [line.split()[0] for line in lines] == ["PASS", "FAIL", "PASS", "FAIL", "UNMEASURED", "PASS"]
    result["projection"]["best"]["total_hours"] = 21.0
    assert perf.target_lines(result)[-1].startswith("FAIL")


class _FakeLLM:
    """Stands in for ``vllm.LLM``: records what it is built with and asked, 'generates' max_tokens tokens."""

    instances: list[_FakeLLM] = []

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        _FakeLLM.instances.append(self)

    def generate(self, requests, params, lora_request=None, use_tqdm=True):
        self.calls.append((requests, params, lora_request))
        out = types.SimpleNamespace(token_ids=[7] * params.kwargs["max_tokens"])
        return [types.SimpleNamespace(outputs=[out]) for _ in requests]


def _fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM = _FakeLLM
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(kwargs=kw)
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, int_id, path: types.SimpleNamespace(name=name, id=int_id, path=path)
    for name, mod in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, mod)


def test_vllm_rows_submit_every_prompt_with_one_lora_each(monkeypatch, tmp_path, tiny_model):
    sys.path.insert(0, str(REPO / "perf"))
    import bench_gen

    _fake_vllm(monkeypatch)
    assert bench_gen.vllm_missing() is None
    adapters = bench_gen.write_adapters(tiny_model, tmp_path, bench_gen.N_ADAPTERS)
    prompts = bench_gen.random_prompts(20, 5, 100)
    row = bench_gen.bench_vllm(tmp_path / "base", adapters, prompts, new_tokens=3, gpu_memory_utilization=0.5)
    llm = _FakeLLM.instances[-1]
    assert llm.kwargs["enable_lora"] and llm.kwargs["max_loras"] == 8 and llm.kwargs["max_lora_rank"] == 8
    assert llm.kwargs["max_model_len"] == 5 + 3 and llm.kwargs["model"] == str(tmp_path / "base")
    requests, params, single = llm.calls[1]  # calls[0] is the warm-up
    assert len(requests) == 20 and requests[0]["prompt_token_ids"] == prompts[0].tolist()
    assert params.kwargs["ignore_eos"] and params.kwargs["temperature"] == 0.1 and params.kwargs["top_p"] == 0.75
    assert single.path == adapters[0]
    mixed = llm.calls[3][2]
    assert [m.id for m in mixed] == [i % 8 + 1 for i in range(20)] and mixed[9].path == adapters[1]
    assert row["vllm_single_tok_s"] > 0 and row["vllm_mixed8_tok_s"] > 0
