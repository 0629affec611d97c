"""Issue 8 throughput, one run, same model and device for every comparison:

* training: padding-free packed batches vs the HF padded baseline (useful tokens/s);
* generation: HF ``generate`` + peft on one batch, one adapter vs 8 adapters mixed per row (peft's
  ``adapter_names``; new tokens/s, EOS ignored so every row generates ``--gen-tokens`` tokens).

Usage: python perf/run_perf.py --device cpu --tiny      (tiny Llama, seconds on CPU: per-op overhead only)
       python perf/run_perf.py --device cpu --shape smollm2-135m   (the embedded model's shape, minutes on CPU)
       python perf/run_perf.py --device cuda            (Llama-2-7B-shaped random bf16 model, LoRA r8 on q,v)
       --only train|gen                                  (one half only)
Writes perf/results/<device>-<shape>-<date>.json. CPU numbers say nothing about GPU speed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vim.collate import PadCollator  # noqa: E402
from valueharms.io import atomic_write_text  # noqa: E402
from vim.packing import PackedCollator, pack_budget, prepare_model_for_packing  # noqa: E402

STUDY_ADAPTERS, TRAIN_TOKENS_PER_ADAPTER = 154, 10e6
STUDY_GEN_TOKENS = 650e6  # new tokens generated over the whole study (154 adapters x benchmarks x samples)
TARGET_MIXED_VS_SINGLE = 0.8


def vim_like_lengths(n: int, max_len: int, rng: random.Random) -> list[int]:
    """Short, skewed lengths like VIM examples (most 40-160 tokens, a tail up to max_len)."""
    return [max(8, min(max_len, int(rng.lognormvariate(4.3, 0.5)))) for _ in range(n)]


SHAPES = ("tiny", "smollm2-135m", "llama2-7b")


def llama_config(shape: str, device: str = "cpu"):
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


def build_model(shape: str, device: str):
    from peft import LoraConfig, get_peft_model
    # built directly in its dtype (a 7B model built in fp32 and then cast would first take ~27 GB on the GPU)
    base = random_base(shape, device).train()
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    prepare_model_for_packing(model)
    return model, base.config.vocab_size


def examples(lengths: list[int], vocab: int, rng: random.Random) -> list[dict]:
    out = []
    for n in lengths:
        ids = [rng.randrange(10, vocab) for _ in range(n)]
        p = n // 2
        out.append({"input_ids": ids, "labels": [-100] * p + ids[p:]})
    return out


def run(model, batches, device: str) -> float:
    """Useful (non-pad) tokens per second over the batches, forward + backward."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    useful, start = 0, None
    for i, batch in enumerate(batches):
        if i == 1:  # first step is warm-up
            _sync(device)
            start, useful = time.perf_counter(), 0
        inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids", "labels")}
        loss = model(**inputs, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        useful += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
    _sync(device)
    return useful / (time.perf_counter() - start)

# ------------------------------------------------------------------------------------------------ generation
def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def random_base(shape: str, device: str):
    """A random Llama of ``shape`` built directly in its dtype on ``device``."""
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
    return model.eval()


def write_adapters(model, root: Path, n: int, r: int = 8, seed: int = 0) -> dict[str, str]:
    """``n`` random LoRA adapters (r8, alpha 16, q/v) written as peft folders, without touching ``model``."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    out = {}
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
        out[f"adapter{a}"] = str(folder)
    return out


def random_prompts(batch: int, vocab: int, rng: random.Random, lo: int, hi: int):
    """Left-padded random prompts of lengths in [lo, hi] (pad id 0)."""
    lengths = [rng.randint(lo, hi) for _ in range(batch)]
    width = max(lengths)
    ids = torch.zeros(batch, width, dtype=torch.long)
    mask = torch.zeros(batch, width, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, width - n:] = torch.tensor([rng.randrange(3, vocab) for _ in range(n)])
        mask[i, width - n:] = 1
    return ids, mask


def timed(fn, device: str, repeats: int) -> float:
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


def bench_generation(shape: str, device: str, batch: int, new_tokens: int, repeats: int) -> dict:
    """New tokens/s of HF generate + peft on one batch: one adapter for every row vs 8 adapters mixed per row
    (peft's ``adapter_names``, what ``backend: hf`` does for batches mixing conditions)."""
    import tempfile

    from peft import PeftModel

    rng = random.Random(1)
    base = random_base(shape, device)
    vocab = base.config.vocab_size
    lo, hi = (16, 48) if device == "cpu" or shape == "tiny" else (64, 256)
    ids, mask = random_prompts(batch, vocab, rng, lo, hi)
    ids, mask = ids.to(device), mask.to(device)
    tokens = batch * new_tokens
    res: dict = {"gen_batch": batch, "gen_new_tokens_per_row": new_tokens, "gen_prompt_len_range": [lo, hi],
                 "gen_sampling": "temperature 1.0, top_p 0.9, EOS ignored (fixed-length rows)"}
    with tempfile.TemporaryDirectory() as tmp:
        adapters = write_adapters(base, Path(tmp), 8)
        names = list(adapters)
        peft_model = PeftModel.from_pretrained(base, adapters[names[0]], adapter_name=names[0]).eval()
        for name in names[1:]:
            peft_model.load_adapter(adapters[name], adapter_name=name)
        peft_model.set_adapter(names[0])

        def hf(rows=None):
            def go():
                torch.manual_seed(0)
                extra = {"adapter_names": rows} if rows else {}
                with torch.no_grad():
                    out = peft_model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                              min_new_tokens=new_tokens, do_sample=True, temperature=1.0, top_p=0.9,
                                              top_k=0, pad_token_id=0, **extra)
                assert out.shape[1] - ids.shape[1] == new_tokens
            return go

        single = tokens / timed(hf(), device, repeats)
        mixed = tokens / timed(hf([names[i % 8] for i in range(batch)]), device, repeats)
    res.update({"hf_generate_tok_s": round(single, 1), "hf_mixed_8_adapters_tok_s": round(mixed, 1),
                "mixed_vs_single": round(mixed / single, 3), "target_mixed_vs_single": TARGET_MIXED_VS_SINGLE})
    res["meets_mixed_target"] = res["mixed_vs_single"] >= TARGET_MIXED_VS_SINGLE
    res["study_generation_hours_projected_hf"] = round(STUDY_GEN_TOKENS / res["hf_generate_tok_s"] / 3600, 2)
    res["study_generation_hours_projected_hf_mixed"] = round(STUDY_GEN_TOKENS / mixed / 3600, 2)
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shape", choices=SHAPES, default=None, help="model shape (default: llama2-7b on cuda, smollm2-135m on cpu)")
    ap.add_argument("--tiny", action="store_true", help="same as --shape tiny")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--only", choices=["train", "gen", "all"], default="all")
    ap.add_argument("--gen-batch", type=int, default=None, help="rows per generation batch (tiny 16, cuda 64)")
    ap.add_argument("--gen-tokens", type=int, default=None, help="new tokens per row (tiny 32, cuda 128)")
    ap.add_argument("--repeats", type=int, default=None, help="timed generation repeats after a warm-up (best kept)")
    ap.add_argument("--out", default=None, help="results JSON (default perf/results/<device>-<shape>-<date>.json)")
    args = ap.parse_args(argv)
    args.shape = "tiny" if args.tiny else (args.shape or ("llama2-7b" if args.device == "cuda" else "smollm2-135m"))
    cpu_like = args.shape == "tiny" or args.device == "cpu"
    result = {"device": args.device, "shape": args.shape, "date": str(date.today()),
              "label": "CPU: NOT representative of GPU" if cpu_like else "GPU",
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
    if args.only in ("train", "all"):
        result.update(bench_training(args))
        print(f"packed vs padded training: {result['train_speedup']:.2f}x useful tokens/s (target >= 2.0x); "
              f"study training ({STUDY_ADAPTERS} x {TRAIN_TOKENS_PER_ADAPTER / 1e6:.0f}M tokens): "
              f"{result['study_training_hours_projected_packed']} h packed vs "
              f"{result['study_training_hours_projected_padded']} h padded" + ("  [CPU: says nothing about GPU]" if cpu_like else ""))
    if args.only in ("gen", "all"):
        result.update(bench_generation(args.shape, args.device, args.gen_batch or (16 if cpu_like else 64),
                                       args.gen_tokens or (32 if cpu_like else 128), args.repeats or (2 if cpu_like else 3)))
        print(f"HF + peft, 8 adapters mixed vs single: {result['mixed_vs_single']:.0%} "
              f"(target >= {TARGET_MIXED_VS_SINGLE:.0%}); study generation ({STUDY_GEN_TOKENS / 1e6:.0f}M new tokens): "
              f"{result['study_generation_hours_projected_hf']} h HF" + ("  [CPU: says nothing about GPU]" if cpu_like else ""))
    print(json.dumps(result, indent=2))
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"{args.device}-{args.shape}-{date.today()}.json"
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result


def bench_training(args) -> dict:
    """Useful tokens/s of padded vs packed LoRA training steps, and the study's projected training hours."""
    rng = random.Random(0)
    small = args.shape == "tiny" or args.device == "cpu"
    batch_size, max_len = (8, 128) if small else (8, 512)
    steps = args.steps or (6 if small else 20)
    model, vocab = build_model(args.shape, args.device)
    exs = examples(vim_like_lengths(batch_size * steps, max_len, rng), vocab, rng)
    pad = PadCollator(0)
    padded = [pad(exs[i:i + batch_size]) for i in range(0, len(exs), batch_size)]
    budget = batch_size * max_len
    packed = [PackedCollator(None)([exs[i] for i in b]) for b in pack_budget([len(e["input_ids"]) for e in exs], budget)]
    base = run(model, padded, args.device)
    ours = run(model, packed, args.device)
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()
    gpu_hours = STUDY_ADAPTERS * TRAIN_TOKENS_PER_ADAPTER / ours / 3600
    return {"train_padded_useful_tok_s": round(base, 1), "train_packed_tok_s": round(ours, 1),
            "train_speedup": round(ours / base, 3),
            "study_training_hours_projected_packed": round(gpu_hours, 2),
            "study_training_hours_projected_padded": round(gpu_hours * ours / base, 2)}


if __name__ == "__main__":
    main()
