"""Training rows at EQUAL EXAMPLES PER STEP: every row trains the same examples, 8 per adapter per step.

Rows (useful = non-pad tokens per second of forward + backward + AdamW over the LoRA weights):
  fixed_padding      right-padded to ``max_len`` (512 on GPU: the original code's fixed padding), sdpa
  dynamic_padding    padded to the batch's longest example, sdpa
  packed_dense_mask  one packed row, sdpa with the dense block-diagonal mask
  packed_varlen      one packed row, the variable-length kernel ``auto`` picks (torch_varlen on CUDA bf16)
  packed_flex        one packed row, flex_attention with a document block mask (CUDA only; compiled, so last)
  k_adapters         K adapters x 8 examples in one packed row (vim.stacked_lora), one step for all K
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import torch

from vim.attention import VARLEN, kernel_report, resolve_attn_implementation
from vim.collate import PadCollator
from vim.multi_adapter import adapter_losses
from vim.packing import PackedCollator, prepare_model_for_packing
from vim.stacked_lora import adapter_parameters, eject, inject, peft_initial_lora

BATCH = 8  # examples per adapter per step (the study's batch size)


def vim_like_lengths(n: int, max_len: int, rng: random.Random) -> list[int]:
    """Short, skewed lengths like VIM examples (median ~100 tokens, a tail up to ``max_len``)."""
    return [max(16, min(max_len, int(rng.lognormvariate(4.6, 0.35)))) for _ in range(n)]


def make_examples(lengths: list[int], vocab: int, rng: random.Random) -> list[dict]:
    out = []
    for n in lengths:
        ids = [rng.randrange(10, vocab) for _ in range(n)]
        p = n // 2
        out.append({"input_ids": ids, "labels": [-100] * p + ids[p:]})
    return out


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_rate(step: Callable[[Any], None], batches: list[Any], useful: list[int], device: str,
               warmup: int) -> dict[str, float]:
    """Useful tokens/s over ``batches[warmup:]`` (the first ``warmup`` steps compile and warm caches)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for batch in batches[:warmup]:
        step(batch)
    sync(device)
    start = time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
    sync(device)
    seconds = time.perf_counter() - start
    row = {"tok_s": round(sum(useful[warmup:]) / seconds, 1), "steps": len(batches) - warmup,
           "seconds": round(seconds, 3)}
    if device == "cuda":
        row["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def _autocast(device: str) -> Any:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)


def peft_step(model: Any, device: str) -> Callable[[dict], None]:
    """One LoRA step through peft, as ``VIMModule`` trains (bf16 autocast on CUDA, like ``bf16-mixed``)."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(batch: dict) -> None:
        inputs = {k: v.to(device) for k, v in batch.items()
                  if k in ("input_ids", "attention_mask", "position_ids", "labels")}
        with _autocast(device):
            loss = model(**inputs, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def k_adapter_step(net: Any, wrappers: dict, k: int, device: str) -> Callable[[list[dict]], None]:
    """One step of K adapters on one base (what ``MultiLoRAModule.training_step`` does)."""
    opts = [torch.optim.AdamW(adapter_parameters(wrappers, i), lr=1e-4) for i in range(k)]

    def step(batches: list[dict]) -> None:
        with _autocast(device):
            losses = adapter_losses(net, wrappers, batches, list(range(k)), device)
        losses.sum().backward()
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
    return step


def lora_config() -> Any:
    """The study's LoRA (r8 on q_proj and v_proj; alpha 16 here: the scale does not change the cost)."""
    from peft import LoraConfig

    return LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)


def _packed_row(model: Any, impl: str, step: Callable, batches: list[dict], useful: list[int], device: str,
                warmup: int) -> dict[str, Any]:
    """One packed row through ``impl``; a kernel this machine lacks gives a row that says why, not a crash."""
    inner = model.base_model.model
    inner.set_attn_implementation(impl)
    try:
        row = timed_rate(step, batches, useful, device, warmup)
    except Exception as err:
        return {"skipped": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    row["kernel"] = kernel_report(inner, packed=True)
    return row


def bench_training(model: Any, vocab: int, *, device: str, max_len: int, steps: int, warmup: int, k: int,
                   flex: bool, dtype: torch.dtype, rows: dict[str, Any] | None = None,
                   on_row: Callable[[], None] = lambda: None) -> tuple[dict[str, Any], Any]:
    """Every training row: peft rows on ``model``, K adapters on its base, then flex (CUDA): (rows, plain base).

    ``rows`` is filled in place and ``on_row`` called after each row (the caller saves partial results).
    """
    rng = random.Random(0)
    n_steps = steps + warmup
    exs = make_examples(vim_like_lengths(BATCH * n_steps * k, max_len, rng), vocab, rng)
    groups = [exs[i:i + BATCH] for i in range(0, len(exs), BATCH)]
    single = groups[:n_steps]
    useful = [sum(len(e["input_ids"]) for e in g) for g in single]
    prepare_model_for_packing(model)
    rows = {} if rows is None else rows
    step = peft_step(model, device)
    for name, collate in {"fixed_padding": PadCollator(0, pad_to=max_len), "dynamic_padding": PadCollator(0)}.items():
        model.base_model.model.set_attn_implementation("sdpa")
        rows[name] = {**timed_rate(step, [collate(g) for g in single], useful, device, warmup),
                      "kernel": kernel_report(model.base_model.model, packed=False)}
        on_row()
    packed = PackedCollator(None, pad_to_multiple_of=128 if device == "cuda" else None)
    batches = [packed(g) for g in single]
    auto = resolve_attn_implementation("auto", device_type=device, dtype=dtype)
    varlen = resolve_attn_implementation(auto if auto != "sdpa" else VARLEN, device_type=device, dtype=dtype)
    for name, impl in (("packed_dense_mask", "sdpa"), ("packed_varlen", varlen)):
        rows[name] = _packed_row(model, impl, step, batches, useful, device, warmup)
        on_row()
    k_impl = varlen if "tok_s" in rows["packed_varlen"] else "sdpa"
    rows["k_adapters"], base = _bench_k(model.unload(), groups, k, n_steps, device, warmup, packed, k_impl)
    on_row()
    if flex and device == "cuda":  # last: it compiles, and a slow compile must not cost the other rows
        from peft import get_peft_model

        model = get_peft_model(base, lora_config()).train()
        rows["packed_flex"] = _packed_row(model, "flex_attention", peft_step(model, device), batches, useful, device,
                                          warmup)
        base = model.unload()
        on_row()
    base.set_attn_implementation("sdpa")  # the plain base again, for generation
    return rows, base


def _bench_k(base: Any, groups: list[list[dict]], k: int, n_steps: int, device: str, warmup: int, packed: Any,
             impl: str) -> tuple[dict[str, Any], Any]:
    """K adapters per step on the base; the baseline is ``packed_varlen`` (one adapter per step, same kernel)."""
    base.set_attn_implementation(impl)
    wrappers = inject(base, peft_initial_lora(base, lora_config()), k, r=8, alpha=16, dropout=0.0)
    steps = [[packed(groups[s * k + i]) for i in range(k)] for s in range(n_steps)]
    k_useful = [sum(len(e["input_ids"]) for i in range(k) for e in groups[s * k + i]) for s in range(n_steps)]
    row = timed_rate(k_adapter_step(base, wrappers, k, device), steps, k_useful, device, warmup)
    row.update({"adapters_per_step": k, "examples_per_step": k * BATCH, "kernel": kernel_report(base, packed=True)})
    return row, eject(base, wrappers)
