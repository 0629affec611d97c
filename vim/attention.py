"""Which attention kernel trains a model, and a variable-length path for packed rows.

Why: a packed row (``[1, T]``, ``position_ids`` restarting per example) through ``sdpa`` gets a dense ``[T, T]``
block-diagonal mask, so every cross-example tile is still computed (and the mask is materialised). Variable-length
kernels take the example boundaries instead and never touch those tiles:

* ``torch_varlen`` (registered here in transformers' ``AttentionInterface``): ``torch.nn.attention.varlen``'s
  FlashAttention varlen kernel (CUDA, fp16/bf16). Boundaries come from ``cu_seq_lens_q`` when the collator sends
  them, else from the ``position_ids`` restarts; padded batches are unpadded into the same call. Where the kernel
  does not exist (CPU, fp32) it computes one causal SDPA per example: exact, no cross-example work, slower.
* ``flex_attention`` (transformers): a document ``BlockMask`` built from ``position_ids`` (block-sparse, compiled).
* ``flash_attention_2`` (transformers; needs the ``flash-attn`` package).
* ``sdpa`` / ``eager``: the dense block-diagonal mask, the CPU fallback.

``resolve_attn_implementation("auto", ...)`` picks the best one available; :func:`kernel_report` says which ran.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

VARLEN = "torch_varlen"
DENSE = ("sdpa", "eager")
#: attribute the varlen forward sets on each attention module: which path it really took
KERNEL_ATTR = "vim_attention_kernel"


def _torch_varlen_fn() -> Callable | None:
    """``torch.nn.attention.varlen.varlen_attn`` when this torch has it (2.9+)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def _flash_kernel(query: torch.Tensor) -> Callable | None:
    """The CUDA varlen kernel for these tensors, or None (CPU, fp32, old torch)."""
    if query.device.type != "cuda" or query.dtype not in (torch.float16, torch.bfloat16):
        return None
    return _torch_varlen_fn()


@functools.cache
def _parameters(fn: Callable) -> frozenset[str]:
    """The parameter names of ``fn`` (read once: the attention call runs in every layer of every step)."""
    return frozenset(inspect.signature(fn).parameters)


def _call_varlen(fn: Callable, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int,
                 scale: float | None) -> torch.Tensor:
    """Call ``varlen_attn`` with the causal flag, scale and GQA in whichever form this torch's signature takes."""
    params = _parameters(fn)
    kwargs: dict[str, Any] = {}
    if "window_size" in params:  # torch >= 2.11: (-1, 0) is causal
        kwargs["window_size"] = (-1, 0)
    else:
        kwargs["is_causal"] = True
    if "scale" in params:
        kwargs["scale"] = scale
    elif scale is not None and abs(scale - q.shape[-1] ** -0.5) > 1e-9:
        raise ValueError("this torch's varlen_attn takes no scale and the model's is not 1/sqrt(head_dim)")
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:
            rep = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return fn(q, k, v, cu, cu, max_len, max_len, **kwargs)


def _per_segment_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor,
                      scale: float | None) -> torch.Tensor:
    """The exact fallback: one causal SDPA per example (``[T, H, D]`` in and out)."""
    gqa = k.shape[1] != q.shape[1]
    bounds = cu.tolist()
    outs = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e > s:
            outs.append(F.scaled_dot_product_attention(q[s:e].transpose(0, 1), k[s:e].transpose(0, 1),
                                                       v[s:e].transpose(0, 1), is_causal=True, scale=scale,
                                                       enable_gqa=gqa).transpose(0, 1))
    return torch.cat(outs) if outs else q.new_zeros(q.shape)


class _BoundaryCache:
    """The last value computed for a tensor object: every layer of one forward is handed the same ``position_ids``
    (or padding mask), so the example boundaries, and the device-to-host sync their longest length costs, are
    computed once per forward instead of once per layer."""

    def __init__(self) -> None:
        self._ref: Any = None
        self._shape: tuple[int, int] | None = None
        self._value: Any = None

    def get(self, key: torch.Tensor, shape: tuple[int, int], compute: Callable[[], Any]) -> Any:
        if self._ref is not None and self._ref() is key and self._shape == shape:
            return self._value
        self._value = compute()
        self._ref, self._shape = weakref.ref(key), shape
        return self._value


_POSITION_BOUNDARIES = _BoundaryCache()
_MASK_BOUNDARIES = _BoundaryCache()


def _position_boundaries(position_ids: torch.Tensor, rows: int, length: int) -> tuple[torch.Tensor, int]:
    """``cu_seqlens`` and the longest example from packed ``position_ids`` (a new example where they restart)."""
    pos = position_ids.expand(rows, length).reshape(-1)
    start = torch.ones_like(pos, dtype=torch.bool)
    start[1:] = pos[1:] != pos[:-1] + 1
    start[::length] = True  # every row starts a sequence
    idx = start.nonzero().squeeze(1)
    cu = torch.cat([idx, idx.new_tensor([pos.numel()])]).to(torch.int32)
    return cu, int((cu[1:] - cu[:-1]).max())


def _mask_boundaries(attention_mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(kept token indices, cu_seqlens, longest row)`` of a 2-D padding mask (unpadding)."""
    mask = attention_mask[:, -length:].bool()
    lengths = mask.sum(1)
    return mask.reshape(-1).nonzero().squeeze(1), F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32), int(lengths.max())


def _boundaries(module: Any, rows: int, length: int, kwargs: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """``cu_seqlens`` and the longest example for unpadded rows (collator kwargs, else ``position_ids``)."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None and rows == 1:
        return cu.to(torch.int32), int(kwargs.get("max_length_q") or int((cu[1:] - cu[:-1]).max()))
    position_ids = kwargs.get("position_ids")
    if position_ids is None:  # plain full rows
        cu = torch.arange(0, (rows + 1) * length, length, dtype=torch.int32, device=module_device(module))
        return cu, length
    return _POSITION_BOUNDARIES.get(position_ids, (rows, length),
                                    lambda: _position_boundaries(position_ids, rows, length))


def module_device(module: Any) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def varlen_attention_forward(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, scaling: float | None = None,
                             dropout: float = 0.0, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention function (``[B, H, L, D]`` in, ``[B, L, H, D]`` out) over unpadded examples."""
    if dropout:
        raise ValueError(f"{VARLEN} has no attention dropout; set the model's attention_dropout to 0")
    rows, heads, length, dim = query.shape
    if key.shape[2] != length:
        raise ValueError(f"{VARLEN} is a training kernel: no KV cache (use sdpa to generate)")
    q, k, v = (t.transpose(1, 2).reshape(rows * length, t.shape[1], dim) for t in (query, key, value))
    keep = None
    if attention_mask is not None:  # 2-D padding mask from flash_attention_mask: unpad
        keep, cu, max_len = _MASK_BOUNDARIES.get(attention_mask, (rows, length),
                                                 lambda: _mask_boundaries(attention_mask, length))
        q, k, v = q[keep], k[keep], v[keep]
    else:
        cu, max_len = _boundaries(module, rows, length, kwargs)
    fn = _flash_kernel(q)
    if fn is not None:
        out, used = _call_varlen(fn, q, k, v, cu, max_len, scaling), "torch_varlen (FlashAttention varlen kernel)"
    else:
        out, used = _per_segment_sdpa(q, k, v, cu, scaling), "torch_varlen (one SDPA per example: no CUDA kernel)"
    module.__dict__[KERNEL_ATTR] = used
    if keep is not None:
        full = out.new_zeros(rows * length, heads, dim)
        full[keep] = out
        out = full
    return out.view(rows, length, heads, dim), None


def register_varlen_attention() -> str:
    """Register ``torch_varlen`` with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    AttentionInterface.register(VARLEN, varlen_attention_forward)
    AttentionMaskInterface.register(VARLEN, flash_attention_mask)  # None, or the 2-D padding mask to unpad
    return VARLEN


def available(name: str, device_type: str, dtype: torch.dtype | None) -> bool:
    """Whether kernel ``name`` runs its fast path on this device and dtype."""
    half = dtype in (torch.float16, torch.bfloat16)
    if name == VARLEN:
        return device_type == "cuda" and half and _torch_varlen_fn() is not None
    if name == "flash_attention_2":
        return device_type == "cuda" and half and importlib.util.find_spec("flash_attn") is not None
    if name == "flex_attention":
        return device_type == "cuda" and importlib.util.find_spec("torch.nn.attention.flex_attention") is not None
    return name in DENSE


#: ``auto``'s order of preference on CUDA; the CPU always gets sdpa
AUTO_ORDER = (VARLEN, "flash_attention_2", "flex_attention", "sdpa")


def resolve_attn_implementation(requested: str | None, *, device_type: str,
                                dtype: torch.dtype | None) -> str | None:
    """The transformers ``attn_implementation`` to load with: ``auto`` picks the fastest available, else as given.

    ``None`` keeps transformers' default. ``torch_varlen`` is registered on the way.
    """
    if requested is None:
        return None
    name = requested
    if requested == "auto":
        name = next(n for n in AUTO_ORDER if n == "sdpa" or (device_type == "cuda" and available(n, device_type, dtype)))
    if name == VARLEN:
        register_varlen_attention()
    return name


def kernel_report(model: Any, packed: bool) -> str:
    """What attention ran in the last forward, in words (for logs and perf results)."""
    config = getattr(model, "config", None)
    impl = getattr(config, "_attn_implementation", None) or "unknown"
    if impl == VARLEN:
        used = [m.__dict__[KERNEL_ATTR] for m in model.modules() if KERNEL_ATTR in m.__dict__]
        return used[0] if used else f"{VARLEN} (not run yet)"
    if impl.startswith("flash_attention"):
        return f"{impl} (varlen from position_ids)" if packed else impl
    if impl == "flex_attention":
        return "flex_attention (document block mask)" if packed else impl
    return f"{impl} (dense block-diagonal mask)" if packed else f"{impl} (padded rows)"


def resolve_for_module(requested: str | None, module: Any, dtype_name: str | None) -> str | None:
    """:func:`resolve_attn_implementation` for a LightningModule: its Trainer's device, the configured dtype."""
    trainer = getattr(module, "_trainer", None)
    device_type = trainer.strategy.root_device.type if trainer is not None else "cpu"
    dtype = getattr(torch, dtype_name) if isinstance(dtype_name, str) else dtype_name
    return resolve_attn_implementation(requested, device_type=device_type, dtype=dtype)


def log_kernel(model: Any, batch: dict[str, Any]) -> str:
    """Log (rank 0) and return which attention kernel the last forward used on ``batch``."""
    from lightning.pytorch.utilities import rank_zero_info

    packed = "position_ids" in batch and "attention_mask" not in batch
    report = kernel_report(model, packed)
    rank_zero_info(f"attention kernel: {report}")
    return report
