"""K LoRA adapters on one frozen base model, each row of a batch routed to its own adapter, trainable.

Why not peft: peft keeps several adapters on one model but trains only the active ones, for every row alike
(its per-row ``adapter_names`` is inference-only). Here every targeted ``nn.Linear`` gets K separate (A, B)
parameter pairs; a forward over K adapters' examples laid out one after the other (padded rows or one packed row)
gathers each adapter's tokens into a ``[S, n, in]`` block and applies the S active adapters with two batched
matmuls (``torch.bmm``). Adapters never see each other's tokens, so the gradient of adapter k comes from its own
examples only: summing the K losses and calling backward once gives every adapter the gradient a run of its own
would give. Adapters absent from a step are not stacked at all, so their parameters get no gradient (``None``)
and their optimizer does not step.

Adapters are initialised exactly as ``peft.get_peft_model`` would (the same init from the same RNG state) and
exported as ordinary peft folders (``base_model.model.<module>.lora_A.weight`` keys).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Routing:
    """Which adapter each token of the flattened ``[N*L]`` batch uses (built once per forward).

    ``adapters[s]`` is the adapter of segment ``s``; ``gather[s]`` the token indices of segment ``s`` padded to the
    longest segment (padding repeats a valid index: those rows' outputs are never read back, so they get no
    gradient); ``scatter[t]`` the position of token ``t`` in the flattened ``[S * n]`` block.
    """

    adapters: list[int]
    gather: torch.Tensor
    scatter: torch.Tensor


def build_routing(adapters: Sequence[int], slices: Sequence[tuple[int, int]], device: Any) -> Routing:
    """Routing for contiguous token ranges ``slices`` (in order, covering every token) of ``adapters``."""
    width = max(e - s for s, e in slices)
    gather = torch.empty(len(slices), width, dtype=torch.long)
    scatter = torch.empty(slices[-1][1], dtype=torch.long)
    for i, (s, e) in enumerate(slices):
        idx = torch.arange(s, e)
        gather[i, : e - s] = idx
        gather[i, e - s:] = s
        scatter[s:e] = i * width + torch.arange(e - s)
    return Routing(list(adapters), gather.to(device), scatter.to(device))


class MultiLoRALinear(nn.Module):
    """``base(x) + scale * B_k(A_k(dropout(x)))`` with ``k`` chosen per token by the current :class:`Routing`."""

    def __init__(self, base_layer: nn.Linear, count: int, r: int, alpha: float, dropout: float,
                 init_a: torch.Tensor, init_b: torch.Tensor) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.scale = alpha / r
        self.dropout = dropout
        dtype = init_a.dtype
        self.lora_A = nn.ParameterList(nn.Parameter(init_a.detach().clone().to(dtype)) for _ in range(count))
        self.lora_B = nn.ParameterList(nn.Parameter(init_b.detach().clone().to(dtype)) for _ in range(count))
        self.routing: Routing | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        routing = self.routing
        if routing is None:
            return out
        flat = x.reshape(-1, x.shape[-1])
        a = torch.stack([self.lora_A[k] for k in routing.adapters])  # [S, r, in]
        b = torch.stack([self.lora_B[k] for k in routing.adapters])  # [S, out, r]
        xs = F.dropout(flat[routing.gather].to(a.dtype), self.dropout, self.training)  # [S, n, in]
        delta = torch.bmm(torch.bmm(xs, a.transpose(1, 2)), b.transpose(1, 2)) * self.scale
        delta = delta.reshape(-1, delta.shape[-1])[routing.scatter]
        return out + delta.view(out.shape).to(out.dtype)


def peft_initial_lora(model: nn.Module, lora_config: Any) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{module name: (A, B)}`` as ``get_peft_model(model, lora_config)`` initialises them; ``model`` is left plain."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, lora_config)
    found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, module in peft_model.base_model.model.named_modules():
        lora_a = getattr(module, "lora_A", None)
        if isinstance(lora_a, nn.ModuleDict) and "default" in lora_a:
            found[name] = (lora_a["default"].weight.detach().clone(),
                           module.lora_B["default"].weight.detach().clone())
    peft_model.unload()  # the base model's own Linears back in place
    return found


def inject(model: nn.Module, initial: dict[str, tuple[torch.Tensor, torch.Tensor]], count: int, *, r: int,
           alpha: float, dropout: float) -> dict[str, MultiLoRALinear]:
    """Freeze ``model`` and replace each Linear named in ``initial`` by a :class:`MultiLoRALinear` of ``count`` slots."""
    for p in model.parameters():
        p.requires_grad_(False)
    wrappers: dict[str, MultiLoRALinear] = {}
    for name, (init_a, init_b) in initial.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        base = getattr(parent, child)
        device = base.weight.device
        wrapper = MultiLoRALinear(base, count, r, alpha, dropout, init_a.to(device), init_b.to(device))
        setattr(parent, child, wrapper)
        wrappers[name] = wrapper
    return wrappers


def eject(model: nn.Module, wrappers: dict[str, MultiLoRALinear]) -> nn.Module:
    """Put the original Linears back (the adapters are dropped); returns the plain ``model``."""
    for name, wrapper in wrappers.items():
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, wrapper.base_layer)
    return model


@contextlib.contextmanager
def routed(wrappers: dict[str, MultiLoRALinear], routing: Routing) -> Iterator[None]:
    """Route the next forward (and its backward) through ``routing``."""
    for w in wrappers.values():
        w.routing = routing
    try:
        yield
    finally:
        for w in wrappers.values():
            w.routing = None


def adapter_parameters(wrappers: dict[str, MultiLoRALinear], k: int) -> list[nn.Parameter]:
    return [p for w in wrappers.values() for p in (w.lora_A[k], w.lora_B[k])]


def adapter_state(wrappers: dict[str, MultiLoRALinear], k: int) -> dict[str, torch.Tensor]:
    """Adapter ``k``'s weights under peft's saved key names (CPU copies)."""
    state = {}
    for name, w in wrappers.items():
        state[f"base_model.model.{name}.lora_A.weight"] = w.lora_A[k].detach().cpu().clone()
        state[f"base_model.model.{name}.lora_B.weight"] = w.lora_B[k].detach().cpu().clone()
    return state


def load_adapter_state(wrappers: dict[str, MultiLoRALinear], k: int, state: dict[str, torch.Tensor]) -> None:
    """Copy a state from :func:`adapter_state` (or a peft file) into slot ``k``."""
    with torch.no_grad():
        for name, w in wrappers.items():
            w.lora_A[k].copy_(state[f"base_model.model.{name}.lora_A.weight"])
            w.lora_B[k].copy_(state[f"base_model.model.{name}.lora_B.weight"])


def segment_losses(logits: torch.Tensor, labels: torch.Tensor, slices: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Mean next-token loss of each token range (transformers' causal-LM loss, computed per adapter)."""
    shifted = F.pad(labels, (0, 1), value=-100)[:, 1:].reshape(-1)
    tokens = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), shifted, ignore_index=-100,
                             reduction="none")
    segment = torch.empty_like(shifted)
    for i, (s, e) in enumerate(slices):
        segment[s:e] = i
    valid = (shifted != -100).to(tokens.dtype)
    sums = tokens.new_zeros(len(slices)).index_add(0, segment, tokens * valid)
    counts = tokens.new_zeros(len(slices)).index_add(0, segment, valid)
    return sums / counts.clamp(min=1)
