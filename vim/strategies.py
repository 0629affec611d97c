"""FSDP for LoRA training of big decoder models, configurable from YAML with layer class *names*.

Lightning's ``FSDPStrategy`` wants Python classes (a set) for ``auto_wrap_policy`` and
``activation_checkpointing_policy``, which YAML cannot express; :class:`LayerFSDPStrategy` takes names such as
``LlamaDecoderLayer`` (or dotted paths) and resolves them. Lightning already passes ``use_orig_params=True``, which
peft's frozen base + trainable LoRA parameters need.

LoRA-only state (why this strategy exists beyond names): every trainable leaf (each ``lora_A``/``lora_B`` Linear)
is its own small FSDP unit, so

* a checkpoint gathers only those units (``summon_full_params`` on each, ~16 MB for Llama-2-7B r8 q,v) instead of
  Lightning's full-state gather of the whole 13.5 GB model to keep 16 MB of it;
* the best-epoch reload works: Lightning's ``FSDPStrategy.load_model_state_dict`` does nothing after setup, so
  :meth:`LayerFSDPStrategy.load_lora_state` has rank 0 read the weights, broadcasts them, and every rank writes
  its shard of each LoRA unit, then all ranks meet at a barrier.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Iterator

import torch
from lightning.pytorch.strategies import FSDPStrategy

from valueharms.errors import InputError

_WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def resolve_layer_class(name: str) -> type:
    """``LlamaDecoderLayer`` -> ``transformers.models.llama.modeling_llama.LlamaDecoderLayer`` (or a dotted path)."""
    if "." in name:
        module_name, _, attr = name.rpartition(".")
        candidates = [(module_name, attr)]
    else:
        family = name.removesuffix("DecoderLayer").removesuffix("Block").lower()
        candidates = [(f"transformers.models.{family}.modeling_{family}", name), ("transformers", name)]
    for module_name, attr in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, attr, None)
        if isinstance(cls, type):
            return cls
    raise InputError(None, None, "strategy.layers", f"cannot find layer class {name!r} (use a dotted path)")


def is_trainable_leaf(module: torch.nn.Module) -> bool:
    """A module without children whose weight trains: peft's LoRA ``lora_A``/``lora_B`` Linears."""
    weight = getattr(module, "weight", None)
    return next(module.children(), None) is None and isinstance(weight, torch.nn.Parameter) and weight.requires_grad


def lora_wrap_policy(layer_classes: set[type]) -> Any:
    """Wrap each transformer layer, and inside it each trainable leaf, as FSDP units (peft's recipe)."""
    from torch.distributed.fsdp.wrap import _or_policy, lambda_auto_wrap_policy, transformer_auto_wrap_policy

    layers = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls=layer_classes)
    leaves = functools.partial(lambda_auto_wrap_policy, lambda_fn=is_trainable_leaf)
    return functools.partial(_or_policy, policies=[leaves, layers])


def clean_name(name: str) -> str:
    """A module path inside FSDP / activation-checkpoint wrappers, as the unwrapped model names it."""
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name.removesuffix("_fsdp_wrapped_module").removesuffix("_checkpoint_wrapped_module").rstrip(".")


class LayerFSDPStrategy(FSDPStrategy):
    """``FSDPStrategy`` wrapping (and optionally activation-checkpointing) the named transformer layer classes,
    with LoRA-only checkpoints and a working best-epoch reload (see the module docstring)."""

    def __init__(self, layers: list[str] = ["LlamaDecoderLayer"],  # noqa: B006 (YAML default)
                 activation_checkpointing: bool = True, sharding_strategy: str = "FULL_SHARD",
                 state_dict_type: str = "full", **kwargs: Any) -> None:
        """
        Args:
            layers: transformer layer class names (or dotted paths) to wrap as FSDP units.
            activation_checkpointing: also checkpoint those layers' activations.
            sharding_strategy: FULL_SHARD | SHARD_GRAD_OP | HYBRID_SHARD | NO_SHARD.
            state_dict_type: ``full`` (LoRA-only checkpoints are small) or ``sharded``.
        """
        classes = {resolve_layer_class(n) for n in layers}
        super().__init__(auto_wrap_policy=lora_wrap_policy(classes),
                         activation_checkpointing_policy=classes if activation_checkpointing else None,
                         sharding_strategy=sharding_strategy, state_dict_type=state_dict_type, **kwargs)
        self.layer_names = list(layers)

    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """On CPU (gloo; the tests) FSDP needs ``device_id='cpu'``, which Lightning never passes: wrap here."""
        if self.root_device.type == "cpu":
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            model = FSDP(module=model, cpu_offload=self.cpu_offload, mixed_precision=self.mixed_precision_config,
                         sharding_strategy=self.sharding_strategy, device_id=torch.device("cpu"), **self.kwargs)
            self.kwargs.pop("auto_wrap_policy", None)  # applied; Lightning would warn that it is ignored
        return super()._setup_model(model)

    def _lora_units(self) -> Iterator[tuple[str, Any]]:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        assert self.model is not None
        for name, module in self.model.named_modules():
            if isinstance(module, FSDP) and is_trainable_leaf(module.module):
                yield clean_name(name), module

    def lightning_module_state_dict(self) -> dict[str, Any]:
        """LoRA weights only, full tensors on rank 0 (``{}`` elsewhere): each LoRA unit is gathered alone."""
        if self._state_dict_type != "full":
            return super().lightning_module_state_dict()
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        state: dict[str, Any] = {}
        offload = self.root_device.type != "cpu"
        for name, unit in self._lora_units():
            with FSDP.summon_full_params(unit, recurse=False, writeback=False, rank0_only=True,
                                         offload_to_cpu=offload):
                if self.global_rank == 0:
                    for pname, param in unit.module.named_parameters():
                        state[f"{name}.{pname}"] = param.detach().cpu().clone()
        return state

    def load_lora_state(self, state: dict[str, torch.Tensor] | None) -> None:
        """Load LoRA weights read on rank 0 into every rank's shards (best-epoch reload under FSDP)."""
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        state = self.broadcast(state, src=0)
        if not state:
            raise InputError(None, None, None, "no LoRA weights to load on rank 0")
        loaded = 0
        for name, unit in self._lora_units():
            with FSDP.summon_full_params(unit, recurse=False, writeback=True):
                for pname, param in unit.module.named_parameters():
                    value = state.get(f"{name}.{pname}")
                    if value is None:
                        raise KeyError(f"LoRA weight {name}.{pname} missing from the saved best epoch")
                    with torch.no_grad():
                        param.copy_(value.to(device=param.device, dtype=param.dtype))
                    loaded += 1
        if loaded != len(state):
            raise KeyError(f"{len(state) - loaded} saved LoRA weights match no LoRA unit of this model")
        self.barrier("vim-load-lora")
