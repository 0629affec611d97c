"""The vLLM backend on CPU with a fake vLLM API: one request per prompt (n samples, its own seed), the adapter of
each request, sampling parameters and stop strings from the benchmark, token ids by the shared BOS rule, and the
same records, keys and resume as the hf backend."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lightning.pytorch import Trainer

from benchmarks import vllm_backend
from benchmarks.generation import BenchmarkDataModule, GenerationModule
from valueharms.decode import encode_ids
from valueharms.errors import InputError

REPO = Path(__file__).resolve().parents[1]


@dataclass
class SamplingParams:
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str] | None
    seed: int


@dataclass(frozen=True)
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


class FakeLLM:
    """Records the engine options and every generate call; sample i of a request answers '<lora>/<i>. more'."""

    last: "FakeLLM | None" = None

    def __init__(self, **options: Any) -> None:
        self.options, self.calls = options, []
        FakeLLM.last = self

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        assert len(prompts) == len(params) == len(lora_request)
        self.calls.append((prompts, params, lora_request))
        name = lambda lora: lora.lora_name if lora else "base"  # noqa: E731
        return [SimpleNamespace(outputs=[SimpleNamespace(text=f"{name(lora)}/{i}. more") for i in range(p.n)])
                for p, lora in zip(params, lora_request)]


API = SimpleNamespace(LLM=FakeLLM, SamplingParams=SamplingParams, LoRARequest=LoRARequest)


def _adapters(tiny_model_dir: Path, root: Path) -> None:
    from test_generation import make_adapters

    make_adapters(tiny_model_dir, root)


def run_vllm(model_dir: Path, out: Path, monkeypatch, greedy: bool = False, **kw) -> tuple[BenchmarkDataModule, list]:
    monkeypatch.setattr(vllm_backend, "import_vllm", lambda: API)
    args = dict(benchmarks={"rtp": {"source": str(REPO / "samples/benchmarks/rtp.jsonl")},
                            "beavertails": {"source": str(REPO / "samples/benchmarks/beavertails.csv"),
                                            "max_categories": 1}},
                output=str(out), limit=1, samples_per_prompt=None, batch_size=10_000, seed=7)
    args.update(kw)
    dm = BenchmarkDataModule(**args)
    module = GenerationModule(model=str(model_dir), backend="vllm", greedy=greedy, vllm={"gpu_memory_utilization": 0.5})
    Trainer(accelerator="cpu", logger=False, enable_progress_bar=False).predict(module, datamodule=dm,
                                                                                 return_predictions=False)
    return dm, [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def test_requests_records_and_resume(tiny_model_dir, tmp_path, monkeypatch):
    _adapters(tiny_model_dir, tmp_path / "adapters")
    out = tmp_path / "gen" / "generations.jsonl"
    _, recs = run_vllm(tiny_model_dir, out, monkeypatch, adapters_root=str(tmp_path / "adapters"))
    llm = FakeLLM.last
    assert llm.options["enable_lora"] and llm.options["enable_prefix_caching"]
    assert (llm.options["max_lora_rank"], llm.options["max_loras"], llm.options["max_cpu_loras"]) == (8, 2, 2)
    assert llm.options["gpu_memory_utilization"] == 0.5 and llm.options["seed"] == 7
    # RTP: 10 samples of one prompt are one request; beavertails: one sample; 3 conditions each
    assert len(recs) == 3 * 10 + 3 and len({r["key"] for r in recs}) == len(recs)
    requests = [(p, s, lora) for prompts, params, loras in llm.calls for p, s, lora in zip(prompts, params, loras)]
    assert len(requests) == 6 and len(llm.calls) == 1  # every pending item at once
    loras = {lora for _, _, lora in requests if lora}
    assert len({lora.lora_int_id for lora in loras}) == len(loras) == 2 and min(lo.lora_int_id for lo in loras) >= 1
    from valueharms.model_loading import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    sent = {(tuple(p["prompt_token_ids"]), lora.lora_path if lora else None): params for p, params, lora in requests}
    assert len(sent) == 6  # every request distinct: its prompt's token ids and its condition's adapter
    for rec in {r["key"].rsplit("|", 1)[0]: r for r in recs}.values():
        params = sent[(tuple(encode_ids(tok, [rec["model_input"]])[0]), rec["adapter"])]
        assert (params.temperature, params.top_p, params.max_tokens) == (0.1, 0.75, 64)
        assert params.n == (10 if rec["benchmark"] == "rtp" else 1) and params.seed == rec["seed"]
        assert params.stop == (rec["stop"] or None)
        assert rec["output"].startswith("base/" if rec["adapter"] is None else "a")
    stops = {(r["benchmark"], r["condition_kind"]): r["stop"] for r in recs}
    assert stops[("rtp", "vanilla")] == ["\n", "."] and stops[("rtp", "vim")] == ["."]
    assert stops[("beavertails", "vim")] == [] and stops[("beavertails", "vanilla")] == []
    seeds = {r["key"].rsplit("|", 1)[0]: r["seed"] for r in recs}
    assert len(set(seeds.values())) == len(seeds) == 6  # a seed per request, shared by its samples
    assert all(r["seed"] == seeds[r["key"].rsplit("|", 1)[0]] for r in recs)
    for r in recs:  # output = sample text cut at the stop strings; provenance as the hf backend writes it
        expected = f"{r['output'].split('/')[0]}/{r['sample_index']}. more"
        assert r["output"] == (expected.split(".")[0] if "." in r["stop"] else expected)
        assert r["backend"] == "vllm" and len(r["fingerprint"]) == 16
    FakeLLM.last = None
    dm2, again = run_vllm(tiny_model_dir, out, monkeypatch, adapters_root=str(tmp_path / "adapters"))
    assert dm2.items == [] and again == recs and FakeLLM.last is None  # resumed: nothing pending, no engine started


def test_greedy_sends_one_request_per_sample(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "generations.jsonl"
    _, recs = run_vllm(tiny_model_dir, out, monkeypatch, greedy=True, samples_per_prompt=2,
                       benchmarks={"rtp": {"source": str(REPO / "samples/benchmarks/rtp.jsonl")}})
    params = [p for _, ps, _ in FakeLLM.last.calls for p in ps]
    assert len(params) == 2 and all(p.n == 1 and p.temperature == 0.0 for p in params)
    assert FakeLLM.last.options.get("enable_lora") is None  # no adapter condition: no LoRA
    assert [r["sample_index"] for r in recs] == [0, 1] and recs[0]["decoding"]["do_sample"] is False


def test_same_keys_as_hf_and_backend_in_fingerprint(tiny_model_dir, tmp_path):
    plans = {}
    for backend in ("hf", "vllm"):
        dm = BenchmarkDataModule(benchmarks={"rtp": {"source": str(REPO / "samples/benchmarks/rtp.jsonl")}},
                                 output=str(tmp_path / backend / "generations.jsonl"), limit=2)
        dm.producer = GenerationModule(model=str(tiny_model_dir), backend=backend).producer()
        dm.setup()
        dm.release()
        plans[backend] = {it.key: it.fingerprint for it in dm.items}
    assert plans["hf"].keys() == plans["vllm"].keys() and len(plans["hf"]) == 20
    assert all(plans["hf"][k] != plans["vllm"][k] for k in plans["hf"])


def test_engine_options_sized_for_the_adapters(tmp_path):
    for name, r in (("a", 4), ("b", 16)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text(json.dumps({"r": r}))
    opts = vllm_backend.engine_options({"a": str(tmp_path / "a"), "b": str(tmp_path / "b")}, {"max_loras": 1})
    assert opts == {"enable_prefix_caching": True, "enable_lora": True, "max_lora_rank": 16, "max_loras": 1,
                    "max_cpu_loras": 2}
    assert vllm_backend.engine_options({}) == {"enable_prefix_caching": True}
    with pytest.raises(InputError, match="LoRA rank"):
        vllm_backend.adapter_rank(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_missing_vllm_is_one_line():
    with pytest.raises(InputError, match=r"pip install '\.\[vllm\]'") as err:
        vllm_backend.import_vllm()
    assert "\n" not in str(err.value)
