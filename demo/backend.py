"""The demo's model side: one base model, every found adapter loaded into one PeftModel, switched per request.

Why one PeftModel: adapters share the base weights, so N value adapters cost N small LoRA matrices, not N models.
Switching adapters mutates shared state, hence one lock (and ``concurrency_limit=1`` in the UI). Prompts come from
the project's one prompt builder and replies from its one decode path, so what the demo shows is what generation does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from valueharms.adapters import AdapterInfo, adapters_from, attach_adapters, find_adapters
from valueharms.decode import Decoding, generate_texts
from valueharms.errors import InputError
from valueharms.model_loading import DEFAULT_MODEL, load_model, load_tokenizer
from valueharms.prompts import PromptSpec, build_model_input
from valueharms.values import ValueProfile

VANILLA = "vanilla"


@dataclass
class ChatSettings:
    """What shapes one reply besides the message: which model, which mitigation, which decoding, which history."""

    adapter: str = VANILLA
    icl: bool = False  # role-play the adapter's profile in-context on the base model instead of using the adapter
    suppress: Sequence[str] = ()
    safety: bool = False
    system_prompt: str = ""  # sent as the system turn, before the mitigation text
    temperature: float = 0.1  # paper's decoding; 0 means greedy
    top_p: float = 0.75
    max_new_tokens: int = 64
    seed: int = 0
    #: earlier turns, ``{"role", "content"}``; content a string or Gradio 6 content parts
    history: Sequence[Mapping[str, Any]] = field(default_factory=list)

    def decoding(self) -> Decoding:
        greedy = not self.temperature or self.temperature <= 0
        return Decoding(max_new_tokens=int(self.max_new_tokens), temperature=float(self.temperature or 0.0),
                        top_p=float(self.top_p), greedy=greedy)


class ChatBackend:
    """Loads the base model once; serves vanilla, ICL and adapter replies with streaming."""

    def __init__(self, model: str = DEFAULT_MODEL, runs: str | Path | None = None,
                 adapters: Sequence[str | Path] | None = None, device: str | None = None) -> None:
        """``runs`` is searched for complete adapters; ``adapters`` adds adapter folders or hub ids."""
        self.model_name = model
        try:
            self.tokenizer = load_tokenizer(model, padding_side="left")
            base = load_model(model, device=device)
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - any loading failure becomes one line for the CLI
            raise InputError(model, None, None, f"model failed to load ({type(err).__name__}: {err})") from None
        base.eval()
        found = find_adapters(runs) if runs and Path(runs).is_dir() else []
        found += adapters_from(list(adapters or ()))
        self.adapters: dict[str, AdapterInfo] = {}
        self._peft_names: dict[str, str] = {}
        for i, info in enumerate(found):
            label = info.name if info.name not in self.adapters else f"{info.name} ({info.kind}, {i})"
            self.adapters[label] = info
            self._peft_names[label] = f"adapter_{i}"
        self.model = attach_adapters(base, {self._peft_names[label]: info.path
                                            for label, info in self.adapters.items()}).eval()
        self.lock = threading.Lock()

    # ---- prompts -------------------------------------------------------------------------------------------
    def choices(self) -> list[str]:
        return [VANILLA, *self.adapters]

    def profile(self, adapter: str) -> ValueProfile | None:
        info = self.adapters.get(adapter)
        return info.profile if info is not None else None

    def _check(self, settings: ChatSettings) -> None:
        if settings.adapter != VANILLA and settings.adapter not in self.adapters:
            raise InputError(None, None, "adapter", f"unknown adapter {settings.adapter!r}; have {self.choices()}")
        if settings.icl and self.profile(settings.adapter) is None:
            raise InputError(None, None, "icl", "ICL needs an adapter with a value profile; pick one first")

    def spec(self, settings: ChatSettings) -> PromptSpec:
        return PromptSpec(fmt="chat", icl_profile=self.profile(settings.adapter) if settings.icl else None,
                          suppress=tuple(settings.suppress), safety=settings.safety,
                          system_prompt=(settings.system_prompt or "").strip() or None)

    def build_prompt(self, message: str, settings: ChatSettings) -> str:
        """The exact model input (system turn, mitigation text, earlier turns, ICL around the new message)."""
        self._check(settings)
        return build_model_input(message, self.spec(settings), self.tokenizer, history=settings.history)

    def peft_adapter(self, settings: ChatSettings) -> str | None:
        """The peft adapter a reply uses: None (adapters off) for vanilla and for ICL, which runs on the base model."""
        return None if settings.adapter == VANILLA or settings.icl else self._peft_names[settings.adapter]

    # ---- generation ----------------------------------------------------------------------------------------
    def stream(self, message: str, settings: ChatSettings) -> Iterator[tuple[str, str]]:
        """Yield ``(reply so far, exact model input)`` as tokens arrive; the last reply is the decode path's own."""
        from transformers import TextIteratorStreamer

        prompt = self.build_prompt(message, settings)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        result: list[str] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                result.extend(generate_texts(self.model, self.tokenizer, [prompt], settings.decoding(),
                                             adapter=self.peft_adapter(settings), seed=settings.seed,
                                             streamer=streamer))
            except BaseException as err:  # noqa: BLE001 - surfaced to the caller below
                errors.append(err)
                streamer.end()

        with self.lock:
            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            reply = ""
            yield reply, prompt
            for piece in streamer:
                reply += piece
                yield reply, prompt
            thread.join()
        if errors:
            raise RuntimeError(f"generation failed: {errors[0]}")
        if result and result[0] != reply:
            yield result[0], prompt

    def generate(self, message: str, settings: ChatSettings) -> tuple[str, str]:
        """The whole reply at once (same decoding as ``stream``): ``(reply, exact model input)``."""
        reply, prompt = "", ""
        for reply, prompt in self.stream(message, settings):
            pass
        return reply, prompt
