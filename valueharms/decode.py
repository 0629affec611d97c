"""The one decode path: a ``Decoding`` value and ``generate_texts`` for every caller (benchmark generation, PVQ,
the demo), so decoding settings, special tokens, adapter switching and stop strings are handled in one place.

Rows of one batch may use different adapters (peft's ``adapter_names``), so a batch can mix model conditions that
share decoding settings and stop strings. The vLLM backend encodes its prompts with :func:`encode_ids` too, so both
backends see the same token ids.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

#: peft's name for "no adapter" in a mixed batch.
BASE = "__base__"


@dataclass(frozen=True)
class Decoding:
    """How prompts are decoded (a benchmark owns its protocol settings; quick runs derive a copy with overrides)."""

    max_new_tokens: int = 64
    samples: int = 1
    temperature: float = 0.1
    top_p: float = 0.75
    greedy: bool = False

    def override(self, **changes: Any) -> "Decoding":
        """A copy with every non-None change applied (``max_new_tokens=None`` keeps the current value)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_record(self) -> dict[str, Any]:
        """The ``decoding`` field of a generation record."""
        out = asdict(self)
        out["do_sample"] = not out.pop("greedy")
        return out


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the first occurrence of any stop string (the stop string itself is dropped)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


def special_prefix(tokenizer: Any) -> list[int]:
    """The special token ids the tokenizer puts before plain text (Llama's BOS; none for GPT-2/ChatML tokenizers).

    Why: a base model was trained with that prefix, so every plain-text input needs it; read from the tokenizer
    itself rather than from a model-name list.
    """
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    for start in range(len(with_special) - len(plain) + 1):
        if with_special[start:start + len(plain)] == plain:
            return list(with_special[:start])
    return []


def adds_special_tokens(tokenizer: Any, text: str = "") -> bool:
    """Whether ``tokenizer(text, add_special_tokens=...)`` should add the special prefix: yes where the tokenizer has
    one, unless ``text`` already starts with it. The rule of :func:`encode_ids`, for callers that tokenize themselves
    (pass the text: a chat-rendered input that starts with the BOS must not get a second one)."""
    prefix = special_prefix(tokenizer)
    return bool(prefix) and not text.startswith(tokenizer.decode(prefix))


def encode_ids(tokenizer: Any, inputs: Sequence[str]) -> list[list[int]]:
    """Token ids of each model input, with the tokenizer's special prefix (BOS) unless the text already starts with it.

    The rule: a plain-text input gets the prefix exactly where the tokenizer would add one (base Llama-2: yes,
    whether or not the tokenizer also has a chat template); an input rendered by a chat template that writes the BOS
    itself (Llama-2-chat, Llama-3, Mistral) is not given a second one; a tokenizer that adds nothing adds nothing.
    """
    prefix = special_prefix(tokenizer)
    prefix_text = tokenizer.decode(prefix) if prefix else ""
    rows = tokenizer(list(inputs), add_special_tokens=False)["input_ids"]
    return [ids if not prefix or text.startswith(prefix_text) else prefix + list(ids) for ids, text in zip(rows, inputs)]


def encode_inputs(tokenizer: Any, inputs: Sequence[str]) -> Any:
    """A left-padded tensor batch of :func:`encode_ids` (decoder-only generation needs left padding)."""
    return tokenizer.pad({"input_ids": encode_ids(tokenizer, inputs)}, padding=True, return_tensors="pt",
                         padding_side="left")


def adapter_context(model: Any, adapter: str | None) -> Any:
    """Activate ``adapter`` on a PeftModel, or disable adapters for ``None`` (a bare model needs nothing)."""
    if not hasattr(model, "disable_adapter"):
        return contextlib.nullcontext()
    if adapter is None or adapter == BASE:
        return model.disable_adapter()
    model.set_adapter(adapter)
    return contextlib.nullcontext()


def _adapter_kwargs(model: Any, adapter: str | None, adapters: Sequence[str | None] | None
                    ) -> tuple[Any, dict[str, Any]]:
    """(context, generate kwargs): one adapter for the batch through ``set_adapter``; several through peft's
    per-row ``adapter_names`` (slower per step than one adapter, but no batch has to be split by condition)."""
    if adapters is None or len(set(adapters)) <= 1:
        one = adapters[0] if adapters else adapter
        return adapter_context(model, one), {}
    if not hasattr(model, "disable_adapter"):
        raise ValueError("rows name different adapters but the model holds none (wrap it with attach_adapters)")
    return contextlib.nullcontext(), {"adapter_names": [a or BASE for a in adapters]}


def generate_texts(model: Any, tokenizer: Any, inputs: Sequence[str], decoding: Decoding, *,
                   adapter: str | None = None, adapters: Sequence[str | None] | None = None,
                   stop: Sequence[str] = (), seed: int = 0, use_stop_strings: bool = True,
                   streamer: Any = None) -> list[str]:
    """Generate one continuation per input (left-padded batch) and cut each at the first stop string.

    Args:
        model: a HF causal LM or a PeftModel holding the adapters.
        inputs: exact model inputs (prompts already built by :func:`valueharms.prompts.build_model_input`).
        decoding: sampling settings (``greedy`` decodes greedily).
        adapter: the peft adapter name for every row, None for the base model.
        adapters: one peft adapter name (or None for the base model) per row; overrides ``adapter``.
        stop: stop strings (passed to ``generate`` when ``use_stop_strings``, always applied afterwards).
        seed: torch seed set before sampling.
        streamer: a transformers streamer (the demo streams tokens).
    """
    import torch

    if adapters is not None and len(adapters) != len(inputs):
        raise ValueError(f"{len(adapters)} adapter names for {len(inputs)} inputs")
    enc = encode_inputs(tokenizer, inputs).to(model.device)
    kwargs: dict[str, Any] = {"max_new_tokens": decoding.max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    if decoding.greedy:
        kwargs["do_sample"] = False
    else:
        kwargs.update(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p)
    if stop and use_stop_strings:
        kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
    if streamer is not None:
        kwargs["streamer"] = streamer
    context, extra = _adapter_kwargs(model, adapter, adapters)
    torch.manual_seed(seed)
    with context, torch.no_grad():
        out = model.generate(**enc, **kwargs, **extra)
    texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [truncate_at_stop(t, stop) for t in texts]
