"""FSDP for LoRA training of big decoder models, configurable from YAML with layer class *names*.

Lightning's ``FSDPStrategy`` wants Python classes (a set) for ``auto_wrap_policy`` and
``activation_checkpointing_policy``, which YAML cannot express; :class:`LayerFSDPStrategy` takes names such as
``LlamaDecoderLayer`` (or dotted paths) and resolves them. Lightning already passes ``use_orig_params=True``, which
peft's frozen base + trainable LoRA parameters need.
"""

from __future__ import annotations

import importlib
from typing import Any

from lightning.pytorch.strategies import FSDPStrategy

from valueharms.errors import InputError


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


class LayerFSDPStrategy(FSDPStrategy):
    """``FSDPStrategy`` wrapping (and optionally activation-checkpointing) the named transformer layer classes."""

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
        super().__init__(auto_wrap_policy=classes,
                         activation_checkpointing_policy=classes if activation_checkpointing else None,
                         sharding_strategy=sharding_strategy, state_dict_type=state_dict_type, **kwargs)
        self.layer_names = list(layers)
