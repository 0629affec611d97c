"""The one decode path: a ``Decoding`` value and ``generate_texts`` for every caller (benchmark generation, PVQ,
the demo), so decoding settings, special tokens, adapter switching and stop strings are handled in one place.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence


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


def adds_special_tokens(tokenizer: Any) -> bool:
    """Whether model inputs get the tokenizer's special tokens (BOS): yes for plain-text prompts; no when a chat
    template already rendered them into the text."""
    return getattr(tokenizer, "chat_template", None) is None


def adapter_context(model: Any, adapter: str | None) -> Any:
    """Activate ``adapter`` on a PeftModel, or disable adapters for ``None`` (a bare model needs nothing)."""
    if not hasattr(model, "disable_adapter"):
        return contextlib.nullcontext()
    if adapter is None:
        return model.disable_adapter()
    model.set_adapter(adapter)
    return contextlib.nullcontext()


def generate_texts(model: Any, tokenizer: Any, inputs: Sequence[str], decoding: Decoding, *,
                   adapter: str | None = None, stop: Sequence[str] = (), seed: int = 0,
                   use_stop_strings: bool = True, streamer: Any = None) -> list[str]:
    """Generate one continuation per input (left-padded batch) and cut each at the first stop string.

    Args:
        model: a HF causal LM or a PeftModel holding the adapters.
        inputs: exact model inputs (prompts already built by :func:`valueharms.prompts.build_model_input`).
        decoding: sampling settings (``greedy`` decodes greedily).
        adapter: the peft adapter name to use, None for the base model.
        stop: stop strings (passed to ``generate`` when ``use_stop_strings``, always applied afterwards).
        seed: torch seed set before sampling.
        streamer: a transformers streamer (the demo streams tokens).
    """
    import torch

    enc = tokenizer(list(inputs), return_tensors="pt", padding=True, add_special_tokens=adds_special_tokens(tokenizer))
    enc = enc.to(model.device)
    kwargs: dict[str, Any] = {"max_new_tokens": decoding.max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    if decoding.greedy:
        kwargs["do_sample"] = False
    else:
        kwargs.update(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p)
    if stop and use_stop_strings:
        kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
    if streamer is not None:
        kwargs["streamer"] = streamer
    torch.manual_seed(seed)
    with adapter_context(model, adapter), torch.no_grad():
        out = model.generate(**enc, **kwargs)
    texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [truncate_at_stop(t, stop) for t in texts]
