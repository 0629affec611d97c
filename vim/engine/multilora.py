"""Multi-adapter batched generation: one base model, every LoRA adapter stacked, one batch mixes adapters.

Plain PyTorch (CPU and CUDA). How it works:

* Each adapter folder (peft ``save_pretrained`` output: ``adapter_config.json`` + ``adapter_model.safetensors``) is
  read directly; for every targeted ``nn.Linear`` the engine stacks the adapters' ``lora_A`` into
  ``A [n_adapters + 1, r_max, in]`` and ``lora_B`` into ``B [n_adapters + 1, out, r_max]``. Slot 0 is all zeros
  (the base model); adapters of smaller rank are zero-padded to ``r_max`` (exact: the padding adds zeros).
  ``scale[slot]`` is ``lora_alpha / r`` (``lora_alpha / sqrt(r)`` with ``use_rslora``).
* Each targeted Linear of the base model is replaced by :class:`MultiLoRALinear`, which computes
  ``base(x) + scale[idx] * ((x @ A[idx]^T) @ B[idx]^T)`` with ``idx`` the per-row adapter slot set by the engine
  before each forward: a batch whose rows all use one adapter takes two plain ``F.linear`` calls (the same ops as
  peft); a mixed batch gathers the rows' A/B and uses ``torch.bmm``. With no slot set (or all rows on slot 0) the
  wrapper is exactly the base Linear, so the model still works with HF ``generate``; :meth:`MultiLoRAEngine.close`
  puts the original Linears back. The engine owns the model while it lives.
* Decoding: left-padded prefill (``position_ids`` from the attention mask, like HF ``generate``), then one token per
  step with a transformers ``DynamicCache`` (default) or ``StaticCache`` (``cache="static"``, filled from the
  prefill). Greedy or temperature + top-p (+ optional top-k) sampling from one seeded ``torch.Generator``.
  Rows finish on EOS or when their decoded continuation contains a stop string (only rows whose new token can
  complete a stop string are decoded); finished rows are dropped from the batch (DynamicCache only) once they are
  a quarter of it.
* Shared prompt prefill: identical ``(input, adapter)`` rows (n samples per prompt) are prefilled once and the
  KV cache / last logits are expanded to the n rows.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vim.engine.stopping import truncate_at_stop
from valueharms.errors import InputError

_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")
_UNSUPPORTED_TARGETS = ("embed_tokens", "lm_head", "wte", "wpe", "embed_out")


@dataclass
class LoadedAdapter:
    """One adapter's LoRA weights: ``module name -> (A [r, in], B [out, r])`` and its scale."""

    name: str
    path: Path
    r: int
    scale: float
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]]


def _bad(path: Path, field: str, message: str) -> InputError:
    return InputError(path, None, field, message)


def load_adapter(name: str, folder: str | Path) -> LoadedAdapter:
    """Read a peft LoRA adapter folder; unsupported configurations raise ``InputError`` naming folder and field."""
    folder = Path(folder)
    cfg_path = folder / "adapter_config.json"
    if not cfg_path.is_file():
        raise InputError(folder, None, None, f"adapter {name!r}: no adapter_config.json in the folder")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(cfg_path, None, None, f"adapter {name!r}: invalid JSON ({err.msg})") from err
    if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
        raise _bad(cfg_path, "peft_type", f"only LORA adapters are supported, got {cfg.get('peft_type')!r}")
    checks = [("use_dora", bool(cfg.get("use_dora")), "DoRA adapters are not supported"),
              ("bias", cfg.get("bias", "none") not in (None, "none"), f"bias={cfg.get('bias')!r} is not supported (need 'none')"),
              ("lora_bias", bool(cfg.get("lora_bias")), "lora_bias is not supported"),
              ("fan_in_fan_out", bool(cfg.get("fan_in_fan_out")), "fan_in_fan_out (Conv1D layers) is not supported"),
              ("modules_to_save", bool(cfg.get("modules_to_save")), "modules_to_save is not supported"),
              ("rank_pattern", bool(cfg.get("rank_pattern")), "per-module ranks (rank_pattern) are not supported"),
              ("alpha_pattern", bool(cfg.get("alpha_pattern")), "per-module alphas (alpha_pattern) are not supported"),
              ("layer_replication", bool(cfg.get("layer_replication")), "layer_replication is not supported"),
              ("target_parameters", bool(cfg.get("target_parameters")), "target_parameters is not supported")]
    for field, bad, message in checks:
        if bad:
            raise _bad(cfg_path, field, message)
    r, alpha = int(cfg.get("r", 8)), float(cfg.get("lora_alpha", 8))
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r

    st = folder / "adapter_model.safetensors"
    if st.is_file():
        from safetensors.torch import load_file

        state = load_file(str(st))
    elif (folder / "adapter_model.bin").is_file():
        state = torch.load(folder / "adapter_model.bin", map_location="cpu", weights_only=True)
    else:
        raise InputError(folder, None, None, f"adapter {name!r}: no adapter_model.safetensors (or .bin) in the folder")
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        m = _KEY.match(key)
        if m is None:
            field = "lora_embedding" if "lora_embedding" in key else "weights"
            raise _bad(st, field, f"unsupported tensor {key!r} (only LoRA A/B of Linear layers are supported)")
        module = m["module"]
        if module.split(".")[-1] in _UNSUPPORTED_TARGETS:
            raise _bad(cfg_path, "target_modules", f"LoRA on {module!r} (embedding / lm_head) is not supported")
        parts.setdefault(module, {})[m["ab"]] = tensor
    weights = {}
    for module, ab in parts.items():
        if set(ab) != {"A", "B"}:
            raise _bad(st, "weights", f"{module}: needs both lora_A and lora_B")
        a, b = ab["A"], ab["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise _bad(st, "weights", f"{module}: lora_A {tuple(a.shape)} / lora_B {tuple(b.shape)} are not Linear LoRA")
        weights[module] = (a, b)
    if not weights:
        raise _bad(st, "weights", f"adapter {name!r} holds no LoRA weights")
    return LoadedAdapter(name, folder, r, scale, weights)


class _Slots:
    """Per-forward adapter selection shared by every wrapped Linear."""

    def __init__(self) -> None:
        self.idx: torch.Tensor | None = None  # [batch] long, slot per row
        self.single: int | None = None  # every row on this slot (0: base model only)

    def set(self, idx: torch.Tensor | None, slots: Sequence[int] | None = None) -> None:
        """``idx``: per-row slots on the model's device; ``slots``: the same as a Python list (avoids a sync)."""
        self.idx, self.single = idx, None
        if idx is None:
            self.single = 0
            return
        values = set(slots) if slots is not None else set(idx.tolist())
        if len(values) == 1:
            self.single = values.pop()


class MultiLoRALinear(nn.Module):
    """``base(x) + scale[idx] * ((x @ A[idx]^T) @ B[idx]^T)`` with a per-row adapter slot ``idx``."""

    def __init__(self, base: nn.Linear, A: torch.Tensor, B: torch.Tensor, scale: torch.Tensor, slots: _Slots) -> None:
        super().__init__()
        self.base = base
        self.slots = slots
        self.register_buffer("A", A, persistent=False)  # [n + 1, r_max, in]
        self.register_buffer("B", B, persistent=False)  # [n + 1, out, r_max]
        self.register_buffer("scale", scale, persistent=False)  # [n + 1]
        self.scale_list = [float(s) for s in scale.tolist()]

    @property
    def weight(self) -> torch.Tensor:  # for code that inspects layer.weight (dtype, device)
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        slots = self.slots
        if slots.single == 0:
            return out
        if slots.single is not None:
            s = slots.single
            if self.scale_list[s] == 0.0:
                return out
            return out + F.linear(F.linear(x, self.A[s]), self.B[s]) * self.scale_list[s]
        idx = slots.idx
        shape = x.shape
        x3 = x.reshape(idx.shape[0], -1, shape[-1])
        h = torch.bmm(x3, self.A[idx].transpose(1, 2))  # [b, t, r]
        d = torch.bmm(h, self.B[idx].transpose(1, 2)) * self.scale[idx].view(-1, 1, 1)  # [b, t, out]
        return out + d.reshape(*shape[:-1], d.shape[-1])


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, top_k: int | None,
                generator: torch.Generator | None) -> torch.Tensor:
    """Temperature, then top-k, then top-p (smallest set with mass >= top_p), then one multinomial draw per row."""
    logits = logits.float() / max(float(temperature), 1e-5)
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the strictly more likely tokens
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class MultiLoRAEngine:
    """Batched generation over many LoRA adapters of one base model (see the module docstring).

    Args:
        base_model: a transformers causal LM (NOT a PeftModel); the engine wraps its targeted Linears in place.
        tokenizer: its tokenizer (left padding is used regardless of its setting).
        adapters: adapter name -> peft adapter folder.
        cache: "dynamic" (default; drops finished rows) or "static" (transformers StaticCache, no row dropping).
        compile: wrap the decode-step forward in ``torch.compile`` (CUDA only; ignored on CPU).
        max_batch_size: rows per forward (None: the whole ``generate`` call in one batch).
    """

    def __init__(self, base_model: Any, tokenizer: Any, adapters: Mapping[str, str | Path] | None = None, *,
                 cache: str = "dynamic", compile: bool = False, max_batch_size: int | None = None) -> None:
        if hasattr(base_model, "peft_config"):
            raise InputError(None, None, "base_model", "MultiLoRAEngine needs the plain base model, not a PeftModel")
        if cache not in ("dynamic", "static"):
            raise InputError(None, None, "cache", f"unknown cache {cache!r} (dynamic or static)")
        self.model = base_model.eval()
        self.tokenizer = tokenizer
        self.cache = cache
        self.max_batch_size = max_batch_size
        self.slots = _Slots()
        self.names: list[str] = list(adapters or {})
        self.slot_of = {name: i + 1 for i, name in enumerate(self.names)}
        self.wrapped: dict[str, tuple[nn.Module, str, nn.Linear]] = {}
        self._stop_cache: dict[tuple[str, ...], torch.Tensor | None] = {}
        self._wrap([load_adapter(n, p) for n, p in (adapters or {}).items()])
        self._forward = self.model.forward
        import inspect

        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # transformers >= 5.2x renamed it
        if compile and self.device.type == "cuda":
            self._forward = torch.compile(self.model.forward, dynamic=True)
        gen_eos = getattr(getattr(base_model, "generation_config", None), "eos_token_id", None)
        eos = gen_eos if gen_eos is not None else tokenizer.eos_token_id
        self.eos_ids = sorted({int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None})
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (self.eos_ids or [0])[0]

    # ----------------------------------------------------------------------------------------- adapters
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _wrap(self, loaded: list[LoadedAdapter]) -> None:
        modules = dict(self.model.named_modules())
        targets: dict[str, list[tuple[int, LoadedAdapter]]] = {}
        for slot, ad in enumerate(loaded, start=1):
            for module in ad.weights:
                if module not in modules:
                    raise _bad(ad.path, "target_modules", f"module {module!r} does not exist in the base model")
                if type(modules[module]) is not nn.Linear:
                    raise _bad(ad.path, "target_modules",
                               f"{module!r} is a {type(modules[module]).__name__}, only nn.Linear is supported")
                targets.setdefault(module, []).append((slot, ad))
        n = len(loaded) + 1
        for module, entries in targets.items():
            lin: nn.Linear = modules[module]
            w = lin.weight
            r_max = max(ad.weights[module][0].shape[0] for _, ad in entries)
            A = torch.zeros(n, r_max, lin.in_features, dtype=w.dtype, device=w.device)
            B = torch.zeros(n, lin.out_features, r_max, dtype=w.dtype, device=w.device)
            scale = torch.zeros(n, dtype=w.dtype, device=w.device)
            for slot, ad in entries:
                a, b = ad.weights[module]
                if a.shape[1] != lin.in_features or b.shape[0] != lin.out_features:
                    raise _bad(ad.path, "weights", f"{module}: LoRA shapes {tuple(a.shape)}/{tuple(b.shape)} do not fit "
                               f"the base Linear ({lin.in_features} -> {lin.out_features}); wrong base model?")
                A[slot, : a.shape[0]] = a.to(A.dtype)
                B[slot, :, : b.shape[1]] = b.to(B.dtype)
                scale[slot] = ad.scale
            parent_name, _, child = module.rpartition(".")
            parent = self.model.get_submodule(parent_name) if parent_name else self.model
            setattr(parent, child, MultiLoRALinear(lin, A, B, scale, self.slots))
            self.wrapped[module] = (parent, child, lin)
        self.slots.set(None)

    def close(self) -> None:
        """Put the original Linear modules back (the base model is then exactly as it was given)."""
        for parent, child, lin in self.wrapped.values():
            setattr(parent, child, lin)
        self.wrapped.clear()
        self.slots.set(None)

    def slot(self, name: str | None) -> int:
        if name is None:
            return 0
        if name not in self.slot_of:
            raise InputError(None, None, "adapter", f"unknown adapter {name!r} (loaded: {', '.join(self.names) or 'none'})")
        return self.slot_of[name]

    # ----------------------------------------------------------------------------------------- stopping
    def _stop_candidates(self, stop: tuple[str, ...]) -> torch.Tensor | None:
        """Bool [vocab]: tokens whose text contains the last character of a stop string (None: check every row)."""
        if stop in self._stop_cache:
            return self._stop_cache[stop]
        mask = None
        lasts = {s[-1] for s in stop if s}
        if lasts and all(ord(c) < 128 for c in lasts):
            vocab = len(self.tokenizer)
            pieces = self.tokenizer.batch_decode([[i] for i in range(vocab)], skip_special_tokens=False)
            size = max(vocab, self.model.get_output_embeddings().weight.shape[0])
            mask = torch.zeros(size, dtype=torch.bool)
            for i, p in enumerate(pieces):
                if any(c in p for c in lasts):
                    mask[i] = True
            mask = mask.to(self.device)
        self._stop_cache[stop] = mask
        return mask

    # ----------------------------------------------------------------------------------------- generation
    def _forward_step(self, slot_idx: torch.Tensor, slot_list: Sequence[int], **kwargs: Any) -> Any:
        self.slots.set(slot_idx, slot_list)
        try:
            return self._forward(**kwargs)
        finally:
            self.slots.set(None)

    @torch.no_grad()
    def generate(self, inputs: Sequence[str], adapter_names: Sequence[str | None] | None = None, *,
                 max_new_tokens: int = 64, temperature: float = 1.0, top_p: float = 1.0, do_sample: bool = True,
                 seed: int = 0, stop: Sequence[str] | None = None, top_k: int | None = None,
                 share_prefill: bool = True, ignore_eos: bool = False) -> list[str]:
        """Decoded continuations (special tokens skipped, cut before the first stop string), one per input.

        ``inputs`` are model-ready strings (chat-formatted already); special tokens are added only when the
        tokenizer has no chat template (as ``GenerationModule._generate_hf`` does). ``None`` adapter = base model.
        Rows with the same ``(input, adapter)`` share one prefill (``share_prefill``). Sampling draws from one
        generator seeded with ``seed``: the same call with the same seed gives the same outputs.
        """
        inputs = list(inputs)
        names = list(adapter_names) if adapter_names is not None else [None] * len(inputs)
        if len(names) != len(inputs):
            raise InputError(None, None, "adapter_names", f"{len(names)} adapter names for {len(inputs)} inputs")
        slots = [self.slot(n) for n in names]
        stop = tuple(s for s in (stop or ()) if s)
        generator = self._generator(seed, do_sample)
        step = self.max_batch_size or max(1, len(inputs))
        out: list[str] = []
        for i in range(0, len(inputs), step):
            chunk, chunk_slots = inputs[i:i + step], slots[i:i + step]
            ids, mask, u_slots, src = self._tokenize(chunk, chunk_slots, share_prefill)
            tokens, ends = self._decode(ids, mask, u_slots, src, chunk_slots, max_new_tokens, temperature, top_p,
                                        top_k, do_sample, generator, stop, ignore_eos)
            texts = self.tokenizer.batch_decode([row[:end] for row, end in zip(tokens.tolist(), ends)],
                                                skip_special_tokens=True)
            out += [truncate_at_stop(text, stop) for text in texts]
        return out

    @torch.no_grad()
    def generate_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     adapter_names: Sequence[str | None], *, max_new_tokens: int = 64, temperature: float = 1.0,
                     top_p: float = 1.0, do_sample: bool = True, seed: int = 0, top_k: int | None = None,
                     ignore_eos: bool = False) -> tuple[torch.Tensor, list[int]]:
        """Token-level generation from left-padded ids: ``(new tokens [rows, max_new_tokens], lengths)``.
        No prefill sharing, no stop strings (used by the benchmarks in ``perf/run_perf.py``)."""
        slots = [self.slot(n) for n in adapter_names]
        dev = self.device
        u_slots = torch.tensor(slots, dtype=torch.long, device=dev)
        return self._decode(input_ids.to(dev), attention_mask.to(dev), u_slots, list(range(len(slots))), slots,
                            max_new_tokens, temperature, top_p, top_k, do_sample, self._generator(seed, do_sample),
                            (), ignore_eos)

    def _generator(self, seed: int, do_sample: bool) -> torch.Generator | None:
        return torch.Generator(device=self.device).manual_seed(int(seed)) if do_sample else None

    def _tokenize(self, inputs: list[str], slots: list[int], share_prefill: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """Left-padded ids of the distinct ``(input, adapter)`` rows, their slots, and each row's prefill row."""
        tok, dev = self.tokenizer, self.device
        unique: dict[tuple, int] = {}
        src = []
        for i, (text, slot) in enumerate(zip(inputs, slots)):
            key = (text, slot) if share_prefill else (text, slot, i)
            src.append(unique.setdefault(key, len(unique)))
        special = getattr(tok, "chat_template", None) is None
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok([k[0] for k in unique], return_tensors="pt", padding=True, add_special_tokens=special)
        finally:
            tok.padding_side = side
        u_slots = torch.tensor([k[1] for k in unique], dtype=torch.long, device=dev)
        return enc["input_ids"].to(dev), enc["attention_mask"].to(dev), u_slots, src

    def _decode(self, ids: torch.Tensor, mask: torch.Tensor, u_slots: torch.Tensor, src: list[int], slots: list[int],
                max_new_tokens: int, temperature: float, top_p: float, top_k: int | None, do_sample: bool,
                generator: torch.Generator | None, stop: tuple[str, ...], ignore_eos: bool
                ) -> tuple[torch.Tensor, list[int]]:
        """Prefill the distinct rows, expand to every row (``src``), then decode; returns tokens and lengths."""
        tok, dev = self.tokenizer, self.device
        n_rows = len(src)
        if n_rows == 0:
            return torch.zeros(0, max_new_tokens, dtype=torch.long), []
        prompt_len = ids.shape[1]
        pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        from transformers import DynamicCache

        cache: Any = DynamicCache(config=self.model.config)
        outp = self._forward_step(u_slots, sorted(set(slots)), input_ids=ids, attention_mask=mask, position_ids=pos,
                                  use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})
        logits = outp.logits[:, -1, :]
        if src != list(range(ids.shape[0])):  # shared prefill: expand cache, logits, mask to every row
            src_t = torch.tensor(src, dtype=torch.long, device=dev)
            cache.batch_select_indices(src_t)
            logits, mask, pos = logits[src_t], mask[src_t], pos[src_t]
        row_slots = torch.tensor(slots, dtype=torch.long, device=dev)
        live = sorted(set(slots))  # the slots present in the current batch
        if self.cache == "static":
            cache = self._to_static(cache, n_rows, prompt_len + max_new_tokens)
        next_pos = pos[:, -1] + 1
        active = torch.arange(n_rows, device=dev)  # original row of each current batch row
        tokens = torch.full((n_rows, max(max_new_tokens, 1)), self.pad_id, dtype=torch.long, device=dev)
        # per original row: new tokens before EOS / through the stop string; kept on the device (no sync per step)
        ends = torch.full((n_rows,), max_new_tokens, dtype=torch.long, device=dev)
        positions = torch.arange(prompt_len, prompt_len + max_new_tokens, device=dev)  # static-cache positions
        done = torch.zeros(n_rows, dtype=torch.bool, device=dev)  # over current batch rows
        eos_ids = [] if ignore_eos else self.eos_ids
        eos = torch.tensor(eos_ids, dtype=torch.long, device=dev)
        cand = self._stop_candidates(stop) if stop else None
        for t in range(max_new_tokens):
            if do_sample and temperature > 0:
                nxt = sample_next(logits, temperature, top_p, top_k, generator)
            else:
                nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            tokens[active, t] = nxt
            new_done = done
            if eos_ids:
                hit_eos = torch.isin(nxt, eos) & ~done
                new_done = done | hit_eos
                ends[active] = torch.where(hit_eos, t, ends[active])
            if stop:
                check = ~new_done if cand is None else (cand[nxt] & ~new_done)
                rows = check.nonzero().flatten().tolist()
                if rows:
                    orig = active[rows].tolist()
                    texts = tok.batch_decode(tokens[orig, : t + 1].tolist(), skip_special_tokens=True)
                    for r, o, text in zip(rows, orig, texts):
                        if any(s in text for s in stop):
                            new_done[r] = True
                            ends[o] = t + 1
            done = new_done
            if t == max_new_tokens - 1:
                break
            if eos_ids or stop:
                n_done = int(done.sum())  # the step's one read of the finished rows
                if n_done == done.numel():
                    break
                if self.cache == "dynamic" and n_done * 4 >= done.numel():
                    keep = (~done).nonzero().flatten()  # drop finished rows from the batch
                    cache.batch_select_indices(keep)
                    active, done, mask, next_pos = active[keep], done[keep], mask[keep], next_pos[keep]
                    row_slots, nxt = row_slots[keep], nxt[keep]
                    live = sorted({slots[o] for o in active.tolist()})
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            kwargs: dict[str, Any] = {self._cache_kw: cache}
            if self.cache == "static":
                kwargs["cache_position"] = positions[t:t + 1]
            outp = self._forward_step(row_slots, live, input_ids=nxt[:, None], attention_mask=mask,
                                      position_ids=next_pos[:, None], use_cache=True, **kwargs)
            logits = outp.logits[:, -1, :]
            next_pos = next_pos + 1
        return tokens, ends.tolist()

    def _to_static(self, dyn: Any, batch: int, max_len: int) -> Any:
        """A StaticCache of ``max_len`` positions holding the prefill's keys/values."""
        from transformers import StaticCache

        static = StaticCache(config=self.model.config, max_cache_len=max_len)
        layers = dyn.layers
        k0 = layers[0].keys
        static.early_initialization(batch, [ly.keys.shape[1] for ly in layers], [ly.keys.shape[-1] for ly in layers],
                                    k0.dtype, k0.device)
        for src, dst in zip(layers, static.layers):
            n = src.keys.shape[2]
            dst.keys[:, :, :n] = src.keys
            dst.values[:, :, :n] = src.values
            dst.cumulative_length.fill_(n)
        return static
