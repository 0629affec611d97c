"""Correctness of the training kernels on the device that will be timed (run before run_perf.py on a GPU).

On CUDA in bf16 (CPU: fp32) with a small random Llama (GQA, 4 layers): a packed row through each attention kernel
gives the padded batch's loss and LoRA gradients, and K routed adapters (vim.stacked_lora) give each adapter's peft
loss. Prints one PASS/FAIL line per check and writes a JSON. Exit status 1 when a check fails.

Usage: python perf/kernel_check.py --device cuda --out kernel-check.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vim.attention import kernel_report, register_varlen_attention  # noqa: E402
from vim.collate import PadCollator  # noqa: E402
from vim.multi_adapter import adapter_losses  # noqa: E402
from vim.packing import PackedCollator, prepare_model_for_packing  # noqa: E402
from vim.stacked_lora import adapter_state, eject, inject, peft_initial_lora  # noqa: E402


def small_llama(device: str, dtype: torch.dtype) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=1024, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=1024)
    return LlamaForCausalLM(cfg).to(device=device, dtype=dtype)


def examples(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(20, 200, (1,), generator=g))
        ids = torch.randint(3, 1024, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [-100] * (length // 3) + ids[length // 3:]})
    return out


def loss_and_grad(model: Any, batch: dict, device: str) -> tuple[float, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids", "labels")}
    loss = model(**inputs, use_cache=False).loss
    loss.backward()
    grad = torch.cat([p.grad.float().flatten() for n, p in model.named_parameters() if p.grad is not None])
    return float(loss.detach()), grad


def close(a: float, b: float, ga: torch.Tensor, gb: torch.Tensor, tol: float) -> tuple[bool, dict]:
    rel_loss = abs(a - b) / abs(b)
    rel_grad = float((ga - gb).norm() / gb.norm())
    return rel_loss < tol and rel_grad < 10 * tol, {"loss": a, "ref_loss": b, "rel_loss": rel_loss,
                                                     "rel_grad": rel_grad}


def check_kernels(device: str, dtype: torch.dtype, tol: float) -> dict[str, Any]:
    """Packed rows through each kernel vs the padded batch through sdpa (loss and LoRA gradients)."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(small_llama(device, dtype), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    prepare_model_for_packing(model)
    inner = model.base_model.model
    ex = examples(8, 1)
    inner.set_attn_implementation("sdpa")
    ref = loss_and_grad(model, PadCollator(0)(ex), device)
    kernels = ["sdpa", register_varlen_attention()] + (["flex_attention"] if device == "cuda" else [])
    results = {}
    for impl in kernels:
        inner.set_attn_implementation(impl)
        try:
            loss, grad = loss_and_grad(model, PackedCollator(None)(ex), device)
            ok, row = close(loss, ref[0], grad, ref[1], tol)
            results[f"packed_{impl}"] = {"pass": ok, "kernel": kernel_report(inner, packed=True), **row}
        except Exception as err:
            results[f"packed_{impl}"] = {"pass": False, "error": f"{type(err).__name__}: {str(err)[:300]}"}
    return results


def check_k_adapters(device: str, dtype: torch.dtype, tol: float) -> dict[str, Any]:
    """Three routed adapters in one packed forward vs peft with each adapter alone (losses)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    base = small_llama(device, dtype)
    prepare_model_for_packing(base)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    wrappers = inject(base, peft_initial_lora(base, config), 3, r=8, alpha=16, dropout=0.0)
    with torch.no_grad():
        for w in wrappers.values():
            for p in [*w.lora_A, *w.lora_B]:
                p.normal_(0, 0.05)
    batches = [PackedCollator(None)(examples(4, 10 + k)) for k in range(3)]
    with torch.no_grad():
        ours = adapter_losses(base, wrappers, batches, [0, 1, 2], device).tolist()
    states = [adapter_state(wrappers, k) for k in range(3)]
    base = eject(base, wrappers)
    refs = []
    for k in range(3):
        peft_model = get_peft_model(base, config)
        set_peft_model_state_dict(peft_model, states[k])
        inputs = {key: v.to(device) for key, v in batches[k].items() if key in ("input_ids", "position_ids", "labels")}
        with torch.no_grad():
            refs.append(float(peft_model(**inputs, use_cache=False).loss))
        base = peft_model.unload()
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours, refs))
    return {"k_adapters": {"pass": worst < tol, "losses": ours, "peft_losses": refs, "rel_loss": worst}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    dtype, tol = (torch.bfloat16, 2e-2) if args.device == "cuda" else (torch.float32, 1e-5)
    results = {"device": args.device, "dtype": str(dtype), "tolerance": tol, **check_kernels(args.device, dtype, tol),
               **check_k_adapters(args.device, dtype, tol)}
    for name, row in results.items():
        if isinstance(row, dict):
            detail = row.get("error") or f"rel loss {row['rel_loss']:.2e}" + (
                f", rel grad {row['rel_grad']:.2e}, {row['kernel']}" if "rel_grad" in row else "")
            print(f"{'PASS' if row['pass'] else 'FAIL'} {name}: {detail}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    sys.exit(0 if all(r["pass"] for r in main().values() if isinstance(r, dict)) else 1)
