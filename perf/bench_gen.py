"""Generation rows: new tokens/s with one adapter and with a batch mixing 8 adapters, on HF+peft and on vLLM.

Every row generates the same prompts (random ids of one length: 64 on the study's shapes) with the protocol's
sampling (temperature 0.1, top-p 0.75) and EOS ignored, so every row produces exactly ``new_tokens`` per prompt.
HF ``generate`` + peft: one adapter active, then peft's per-row ``adapter_names`` for the mixed batch (what the
``hf`` backend can do). vLLM (imported lazily; the row is skipped with the reason when it is absent): the offline
``LLM`` with LoRA, every prompt submitted at once, one ``LoRARequest`` per prompt.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

TEMPERATURE, TOP_P = 0.1, 0.75
N_ADAPTERS = 8


def write_adapters(model: Any, root: Path, n: int, r: int = 8, seed: int = 0) -> list[str]:
    """``n`` random LoRA adapters (r8, alpha 16, q/v) written as peft folders, without touching ``model``."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    out = []
    for a in range(n):
        folder = root / f"adapter{a}"
        folder.mkdir(parents=True, exist_ok=True)
        LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM").save_pretrained(folder)
        state = {}
        for name, mod in model.named_modules():
            if name.endswith(("q_proj", "v_proj")) and isinstance(mod, torch.nn.Linear):
                state[f"base_model.model.{name}.lora_A.weight"] = torch.randn(r, mod.in_features, generator=g) * 0.02
                state[f"base_model.model.{name}.lora_B.weight"] = torch.randn(mod.out_features, r, generator=g) * 0.02
        save_file({k: v.to(model.dtype).contiguous() for k, v in state.items()}, str(folder / "adapter_model.safetensors"))
        out.append(str(folder))
    return out


def random_prompts(count: int, length: int, vocab: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (count, length), generator=g)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _best_time(fn: Any, device: str, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def bench_hf(base: Any, adapters: list[str], prompts: torch.Tensor, *, device: str, batch: int, new_tokens: int,
             repeats: int) -> dict[str, Any]:
    """HF ``generate`` + peft on ``batch`` prompts: one adapter, then 8 adapters mixed through ``adapter_names``."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(base, adapters[0], adapter_name="a0")
    for i, path in enumerate(adapters[1:], start=1):
        model.load_adapter(path, adapter_name=f"a{i}")
    model.eval()
    ids = prompts[:batch].to(device)
    mask = torch.ones_like(ids)

    def run(**extra: Any) -> Any:
        def go() -> None:
            torch.manual_seed(0)
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                     min_new_tokens=new_tokens, do_sample=True, temperature=TEMPERATURE, top_p=TOP_P,
                                     top_k=0, pad_token_id=0, **extra)
            assert out.shape[1] - ids.shape[1] == new_tokens
        return go

    tokens = batch * new_tokens
    model.set_adapter("a0")
    single = tokens / _best_time(run(), device, repeats)
    mixed = tokens / _best_time(run(adapter_names=[f"a{i % N_ADAPTERS}" for i in range(batch)]), device, repeats)
    row = {"hf_single_tok_s": round(single, 1), "hf_mixed8_tok_s": round(mixed, 1), "hf_batch": batch}
    if device == "cuda":
        row["hf_peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    model.unload()
    return row


def vllm_missing() -> str | None:
    """Why vLLM cannot run here, or None."""
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        return f"vllm not importable ({err}); install the optional extra: pip install '.[vllm]'"
    return None


def bench_vllm(model_dir: Path, adapters: list[str], prompts: torch.Tensor, *, new_tokens: int,
               gpu_memory_utilization: float) -> dict[str, Any]:
    """vLLM on every prompt at once: one adapter, then 8 mixed (one ``LoRARequest`` per prompt)."""
    import vllm
    from vllm.lora.request import LoRARequest

    llm = vllm.LLM(model=str(model_dir), enable_lora=True, max_loras=N_ADAPTERS, max_lora_rank=8,
                   dtype="bfloat16", skip_tokenizer_init=True, enable_prefix_caching=True, seed=0,
                   max_model_len=prompts.shape[1] + new_tokens, gpu_memory_utilization=gpu_memory_utilization)
    params = vllm.SamplingParams(temperature=TEMPERATURE, top_p=TOP_P, max_tokens=new_tokens, min_tokens=new_tokens,
                                 ignore_eos=True, detokenize=False, seed=0)
    requests = [{"prompt_token_ids": row.tolist()} for row in prompts]
    loras = [LoRARequest(f"a{i}", i + 1, path) for i, path in enumerate(adapters)]

    def rate(lora: Any) -> float:
        llm.generate(requests[:8], params, lora_request=lora if not isinstance(lora, list) else lora[:8],
                     use_tqdm=False)  # warm-up
        t0 = time.perf_counter()
        outs = llm.generate(requests, params, lora_request=lora, use_tqdm=False)
        seconds = time.perf_counter() - t0
        return sum(len(o.outputs[0].token_ids) for o in outs) / seconds

    single = rate(loras[0])
    mixed = rate([loras[i % N_ADAPTERS] for i in range(len(requests))])
    return {"vllm_single_tok_s": round(single, 1), "vllm_mixed8_tok_s": round(mixed, 1),
            "vllm_prompts": len(requests), "vllm_version": getattr(vllm, "__version__", "?")}
