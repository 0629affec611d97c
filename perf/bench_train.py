"""Training rows at EQUAL EXAMPLES PER STEP: every row trains the same examples, 8 per adapter per step.

Rows (useful = non-pad tokens per second of forward + backward + AdamW over the LoRA weights):
  fixed_padding      right-padded to ``max_len`` (512 on GPU: the original code's fixed padding), sdpa
  dynamic_padding    padded to the batch's longest example, sdpa
  packed_dense_mask  one packed row, sdpa with the dense block-diagonal mask
  packed_varlen      one packed row, the variable-length kernel ``auto`` picks (torch_varlen on CUDA bf16)
  packed_flex        one packed row, flex_attention with a document block mask (CUDA only; compiled)
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


def _row_kernels(device: str, dtype: torch.dtype, flex: bool) -> dict[str, str]:
    """Attention implementation per packed row: the varlen row gets ``auto``'s pick (torch_varlen off CUDA)."""
    varlen = resolve_attn_implementation("auto", device_type=device, dtype=dtype)
    kernels = {"packed_dense_mask": "sdpa", "packed_varlen": varlen if varlen != "sdpa" else VARLEN}
    resolve_attn_implementation(kernels["packed_varlen"], device_type=device, dtype=dtype)  # registers torch_varlen
    if flex and device == "cuda":
        kernels["packed_flex"] = "flex_attention"
    return kernels


def bench_training(model: Any, vocab: int, *, device: str, max_len: int, steps: int, warmup: int, k: int,
                   flex: bool, dtype: torch.dtype) -> tuple[dict[str, Any], Any]:
    """Every training row on ``model`` (a peft LoRA model), then K adapters on its base: (rows, plain base)."""
    rng = random.Random(0)
    n_steps = steps + warmup
    exs = make_examples(vim_like_lengths(BATCH * n_steps * k, max_len, rng), vocab, rng)
    groups = [exs[i:i + BATCH] for i in range(0, len(exs), BATCH)]
    single = groups[:n_steps]
    useful = [sum(len(e["input_ids"]) for e in g) for g in single]
    prepare_model_for_packing(model)
    rows: dict[str, Any] = {}
    layouts = {"fixed_padding": PadCollator(0, pad_to=max_len), "dynamic_padding": PadCollator(0)}
    step = peft_step(model, device)
    for name, collate in layouts.items():
        model.base_model.model.set_attn_implementation("sdpa")
        rows[name] = timed_rate(step, [collate(g) for g in single], useful, device, warmup)
        rows[name]["kernel"] = kernel_report(model.base_model.model, packed=False)
    packed = PackedCollator(None, pad_to_multiple_of=128 if device == "cuda" else None)
    for name, impl in _row_kernels(device, dtype, flex).items():
        model.base_model.model.set_attn_implementation(impl)
        try:
            rows[name] = timed_rate(step, [packed(g) for g in single], useful, device, warmup)
            rows[name]["kernel"] = kernel_report(model.base_model.model, packed=True)
        except Exception as err:  # a kernel this machine lacks: the row says why, the others still run
            rows[name] = {"skipped": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    rows["k_adapters"], base = _bench_k(model, groups, k, useful, device, warmup, packed, rows)
    return rows, base


def _bench_k(model: Any, groups: list[list[dict]], k: int, useful: list[int], device: str, warmup: int,
             packed: Any, rows: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """K adapters per step on the peft model's base; the baseline is ``packed_varlen`` (one adapter per step)."""
    from peft import LoraConfig

    impl = model.base_model.model.config._attn_implementation if "tok_s" in rows.get("packed_varlen", {}) else "sdpa"
    base = model.unload()
    base.set_attn_implementation(impl)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    wrappers = inject(base, peft_initial_lora(base, config), k, r=8, alpha=16, dropout=0.0)
    n_steps = len(useful)
    steps = [[packed(groups[s * k + i]) for i in range(k)] for s in range(n_steps)]
    k_useful = [sum(len(e["input_ids"]) for i in range(k) for e in groups[s * k + i]) for s in range(n_steps)]
    row = timed_rate(k_adapter_step(base, wrappers, k, device), steps, k_useful, device, warmup)
    row.update({"adapters_per_step": k, "examples_per_step": k * BATCH, "kernel": kernel_report(base, packed=True)})
    eject(base, wrappers).set_attn_implementation("sdpa")  # the plain base again, for generation
    return row, base
