"""Throughput of the study's GPU path in one run on one device: training kernels, K adapters per step, generation.

Training at EQUAL EXAMPLES PER STEP (8 per adapter): fixed padding to 512, dynamic padding, packed with the dense
mask, packed with the varlen kernel, packed with flex_attention (CUDA), K adapters per step (bench_train.py).
Generation at prompt length 64: HF ``generate`` + peft with one adapter and with 8 mixed through
``adapter_names``; vLLM single and mixed when it is installed (bench_gen.py). Then PASS/FAIL per target (ratios
measured in this run), versions, peak memory, and the whole study's projected GPU-hours (projection.py).

Usage: python perf/run_perf.py --device cuda                  (Llama-2-7B shape, random bf16 weights; ~3 min H100)
       python perf/run_perf.py --device cpu --shape smollm2-135m   (the embedded model's shape; minutes on CPU)
       python perf/run_perf.py --device cpu --tiny            (seconds; per-op overhead only)
Writes perf/results/<device>-<shape>-<date>.json (or --out). CPU numbers say nothing about GPU speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
import bench_gen  # noqa: E402
import bench_train  # noqa: E402
import projection  # noqa: E402

from valueharms.io import atomic_write_text  # noqa: E402

SHAPES = ("tiny", "smollm2-135m", "llama2-7b")
#: name -> (minimum ratio, or maximum for hours; what it compares)
TARGETS = {
    "gen_vllm_vs_hf": (8.0, "vLLM vs HF generate + peft, one adapter"),
    "gen_mixed8_vs_single": (0.8, "a batch mixing 8 adapters vs one adapter"),
    "train_packed_vs_dynamic": (1.5, "training useful tok/s, packed varlen vs dynamic padding"),
    "train_packed_vs_fixed": (3.0, "training useful tok/s, packed varlen vs fixed padding"),
    "train_k_vs_separate": (2.0, "K adapters per step vs K separate runs (one adapter per step)"),
    "study_gpu_hours": (20.0, "projected whole study, GPU-hours on this GPU (at most)"),
}


def llama_config(shape: str, device: str = "cpu") -> tuple[Any, torch.dtype]:
    """Random-weight Llama config and dtype for ``shape`` (fp32 on CPU, bf16 on CUDA for the real shapes)."""
    from transformers import LlamaConfig

    if shape == "tiny":
        return LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2), torch.float32
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if shape == "smollm2-135m":  # HuggingFaceTB/SmolLM2-135M-Instruct's architecture
        return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                           num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True), dtype
    return LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32), dtype


def random_base(shape: str, device: str) -> Any:
    """A random Llama of ``shape`` built directly in its dtype on ``device`` (a 7B built in fp32 would need 27 GB)."""
    from transformers import LlamaForCausalLM

    cfg, dtype = llama_config(shape, device)
    cfg.eos_token_id, cfg.pad_token_id, cfg.bos_token_id = 2, 0, 1
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    model.set_attn_implementation("sdpa")
    return model


def versions(device: str) -> dict[str, Any]:
    import importlib.metadata as md

    found = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("transformers", "peft", "lightning", "vllm", "flash-attn"):
        try:
            found[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            found[pkg] = None
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        found.update({"gpu": props.name, "gpu_memory_gb": round(props.total_memory / 2**30, 1),
                      "cuda": torch.version.cuda})
    return found


def defaults(args: argparse.Namespace) -> None:
    """Sizes per machine: the study's shapes on CUDA, small ones on CPU."""
    gpu = args.device == "cuda" and args.shape != "tiny"
    picks = {"max_len": 512 if gpu else 128, "steps": 8 if gpu else 3, "warmup": 2 if gpu else 1,
             "k": 8 if gpu else 2, "gen_batch": 256 if gpu else 8, "gen_tokens": 64 if gpu else 8,
             "vllm_prompts": 2048, "prompt_len": 64, "repeats": 1}
    for key, value in picks.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def ratios(train: dict[str, Any], gen: dict[str, Any]) -> dict[str, Any]:
    """Every target ratio from the rows measured in this run (None: a row did not run)."""
    rate = {k: v.get("tok_s") for k, v in train.items()}
    packed = rate.get("packed_varlen") or rate.get("packed_dense_mask")
    vllm = gen.get("vllm_single_tok_s") is not None
    mixed_on = "vllm" if vllm else "hf"
    return {"train_packed_vs_dynamic": ratio(packed, rate.get("dynamic_padding")),
            "train_packed_vs_fixed": ratio(packed, rate.get("fixed_padding")),
            "train_k_vs_separate": ratio(rate.get("k_adapters"), packed),
            "gen_vllm_vs_hf": ratio(gen.get("vllm_single_tok_s"), gen.get("hf_single_tok_s")),
            "gen_mixed8_vs_single": ratio(gen.get(f"{mixed_on}_mixed8_tok_s"), gen.get(f"{mixed_on}_single_tok_s")),
            "gen_mixed8_backend": mixed_on}


def study_projection(train: dict[str, Any], gen: dict[str, Any]) -> dict[str, Any]:
    """GPU-hours from the best training path (K adapters) and generation path (vLLM mixed, else HF single)."""
    out: dict[str, Any] = {"tokens": projection.study_tokens()}
    train_rate = train.get("k_adapters", {}).get("tok_s") or train.get("packed_varlen", {}).get("tok_s")
    gen_rate = gen.get("vllm_mixed8_tok_s") or gen.get("hf_single_tok_s")
    if train_rate and gen_rate:
        out["best"] = {**projection.project(train_rate, gen_rate), "train_rate": train_rate, "gen_rate": gen_rate,
                       "gen_backend": "vllm" if gen.get("vllm_mixed8_tok_s") else "hf"}
    baseline = train.get("dynamic_padding", {}).get("tok_s")
    if baseline and gen.get("hf_single_tok_s"):
        out["baseline_dynamic_padding_hf"] = projection.project(baseline, gen["hf_single_tok_s"])
    return out


def target_lines(result: dict[str, Any]) -> list[str]:
    """``PASS``/``FAIL``/``UNMEASURED`` per target, from this run's ratios."""
    lines = []
    values = dict(result["ratios"])
    values["study_gpu_hours"] = result["projection"].get("best", {}).get("total_hours")
    for name, (bound, what) in TARGETS.items():
        value = values.get(name)
        if value is None:
            reason = result["generation"].get("vllm_skipped", "a row did not run") if "vllm" in name else \
                "a row did not run"
            lines.append(f"UNMEASURED {what}: {reason}")
            continue
        ok = value <= bound if name == "study_gpu_hours" else value >= bound
        op, unit = ("<=", " h") if name == "study_gpu_hours" else (">=", "x")
        lines.append(f"{'PASS' if ok else 'FAIL'} {what}: {value}{unit} (target {op} {bound}{unit})")
    return lines


def run_generation(base: Any, args: argparse.Namespace) -> dict[str, Any]:
    """HF rows on ``base``; then, when vLLM is importable, the model is saved, freed, and vLLM measured."""
    vocab = base.config.vocab_size
    prompts = bench_gen.random_prompts(max(args.gen_batch, args.vllm_prompts), args.prompt_len, vocab)
    row: dict[str, Any] = {"prompt_len": args.prompt_len, "new_tokens": args.gen_tokens,
                           "sampling": "temperature 0.1, top-p 0.75, EOS ignored"}
    with tempfile.TemporaryDirectory() as tmp:
        adapters = bench_gen.write_adapters(base, Path(tmp), bench_gen.N_ADAPTERS)
        row.update(bench_gen.bench_hf(base, adapters, prompts, device=args.device, batch=args.gen_batch,
                                      new_tokens=args.gen_tokens, repeats=args.repeats))
        missing = bench_gen.vllm_missing() if args.device == "cuda" else "vLLM rows run on CUDA only"
        if missing:
            row["vllm_skipped"] = missing
            return row
        base.save_pretrained(Path(tmp) / "base", safe_serialization=True)
        base.to("meta")  # free the GPU for vLLM's own copy
        torch.cuda.empty_cache()
        row.update(bench_gen.bench_vllm(Path(tmp) / "base", adapters, prompts[: args.vllm_prompts],
                                        new_tokens=args.gen_tokens, gpu_memory_utilization=args.vllm_memory))
    return row


def finish(result: dict[str, Any], out: Path) -> None:
    """Ratios, projection and target lines from the rows so far, written atomically to ``out``."""
    result["ratios"] = ratios(result["training"], result["generation"])
    result["projection"] = study_projection(result["training"], result["generation"])
    result["targets"] = target_lines(result)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shape", choices=SHAPES, default=None, help="default: llama2-7b on cuda, smollm2-135m on cpu")
    ap.add_argument("--tiny", action="store_true", help="same as --shape tiny")
    ap.add_argument("--only", choices=["train", "gen", "all"], default="all")
    for name, help_text in (("max-len", "fixed padding length and longest example (512 GPU, 128 CPU)"),
                            ("steps", "timed training steps per row"), ("warmup", "untimed first steps per row"),
                            ("k", "adapters per step in the K-adapter row"), ("gen-batch", "HF generate batch"),
                            ("gen-tokens", "new tokens per prompt"), ("vllm-prompts", "prompts submitted to vLLM"),
                            ("prompt-len", "prompt tokens"), ("repeats", "timed generation repeats (best kept)")):
        ap.add_argument(f"--{name}", type=int, default=None, help=help_text)
    ap.add_argument("--no-flex", action="store_true", help="skip the flex_attention row (it compiles)")
    ap.add_argument("--vllm-memory", type=float, default=0.6, help="vLLM gpu_memory_utilization")
    ap.add_argument("--out", default=None, help="results JSON (default perf/results/<device>-<shape>-<date>.json)")
    args = ap.parse_args(argv)
    args.shape = "tiny" if args.tiny else (args.shape or ("llama2-7b" if args.device == "cuda" else "smollm2-135m"))
    defaults(args)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    cpu_like = args.shape == "tiny" or args.device == "cpu"
    result: dict[str, Any] = {"device": args.device, "shape": args.shape, "date": str(date.today()),
                              "label": "CPU: NOT representative of GPU" if cpu_like else "GPU",
                              "versions": versions(args.device), "threads": torch.get_num_threads(),
                              "settings": {k: v for k, v in vars(args).items() if k != "out"},
                              "training": {}, "generation": {}}
    out = Path(args.out) if args.out else HERE / "results" / f"{args.device}-{args.shape}-{date.today()}.json"
    base = random_base(args.shape, args.device)
    if args.only in ("train", "all"):
        from peft import get_peft_model

        model = get_peft_model(base, bench_train.lora_config())
        _, base = bench_train.bench_training(
            model.train(), base.config.vocab_size, device=args.device, max_len=args.max_len, steps=args.steps,
            warmup=args.warmup, k=args.k, flex=not args.no_flex, dtype=llama_config(args.shape, args.device)[1],
            rows=result["training"], on_row=lambda: finish(result, out))  # a stopped run keeps its rows
    if args.only in ("gen", "all"):
        result["generation"] = run_generation(base.eval(), args)
    finish(result, out)
    print(json.dumps({k: result[k] for k in ("training", "generation", "ratios", "projection")}, indent=2))
    if cpu_like:
        print("CPU/tiny run: the lines below say nothing about GPU speed")
    print("\n".join(result["targets"]))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
