"""The demo's model side: one base model, every found adapter loaded into one PeftModel, switched per request.

Why one PeftModel: adapters share the base weights, so N value adapters cost N small LoRA matrices, not N models.
Switching adapters mutates shared state, hence one lock (and ``concurrency_limit=1`` in the UI).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from valueharms.adapters import AdapterInfo, attach_adapters, find_adapters
from valueharms.errors import InputError
from valueharms.model_loading import DEFAULT_MODEL, load_model, load_tokenizer
from valueharms.prompts import PromptSpec, build_model_input, icl_prompt, instruction_preamble
from valueharms.values import ValueProfile

VANILLA = "vanilla"


@dataclass
class ChatSettings:
    """What shapes one reply besides the message: which model, which mitigation, which decoding."""

    adapter: str = VANILLA
    icl: bool = False  # role-play the adapter's profile in-context on the base model instead of using the adapter
    suppress: Sequence[str] = ()
    safety: bool = False
    temperature: float = 0.1  # paper's decoding; 0 means greedy
    top_p: float = 0.75
    max_new_tokens: int = 64
    history: list[dict[str, str]] = field(default_factory=list)


class ChatBackend:
    """Loads the base model once; serves vanilla, ICL and adapter replies with streaming."""

    def __init__(self, model: str = DEFAULT_MODEL, runs: str | Path | None = None,
                 adapters: Sequence[AdapterInfo] | None = None, device: str | None = None) -> None:
        self.model_name = model
        try:
            self.tokenizer = load_tokenizer(model, padding_side="left")
            base = load_model(model, device=device)
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - any loading failure becomes one line for the CLI
            raise InputError(model, None, None, f"model failed to load ({type(err).__name__}: {err})") from None
        base.eval()
        found = list(adapters) if adapters is not None else (find_adapters(runs) if runs else [])
        self.adapters: dict[str, AdapterInfo] = {}
        self._peft_names: dict[str, str] = {}
        for i, info in enumerate(found):
            label = info.name if info.name not in self.adapters else f"{info.name} ({info.kind})"
            self.adapters[label] = info
            self._peft_names[label] = f"adapter_{i}"
        self.model = attach_adapters(base, {self._peft_names[label]: info.path
                                            for label, info in self.adapters.items()}).eval()
        self.device = next(self.model.parameters()).device
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
        return PromptSpec(fmt="qa", icl_profile=self.profile(settings.adapter) if settings.icl else None,
                          suppress=tuple(settings.suppress), safety=settings.safety)

    def build_prompt(self, message: str, settings: ChatSettings) -> str:
        """The exact model input: mitigation text in the system turn, ICL preamble around the user's message."""
        self._check(settings)
        spec = self.spec(settings)
        if getattr(self.tokenizer, "chat_template", None) is None:
            return build_model_input(message, spec, self.tokenizer)
        user = icl_prompt(spec.icl_profile, message, "qa", spec.icl_template) if spec.icl_profile else message
        messages: list[dict[str, str]] = []
        system = instruction_preamble(spec)
        if system:
            messages.append({"role": "system", "content": system})
        messages.extend({"role": m["role"], "content": m["content"]} for m in settings.history
                        if m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str))
        messages.append({"role": "user", "content": user})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    # ---- generation ----------------------------------------------------------------------------------------
    def _gen_kwargs(self, settings: ChatSettings) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": int(settings.max_new_tokens),
                                  "pad_token_id": self.tokenizer.pad_token_id}
        if settings.temperature and settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=float(settings.temperature), top_p=float(settings.top_p))
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def _run(self, inputs: dict[str, Any], settings: ChatSettings, streamer: Any = None) -> Any:
        import contextlib

        import torch

        use_adapter = settings.adapter != VANILLA and not settings.icl
        if use_adapter:
            self.model.set_adapter(self._peft_names[settings.adapter])
            ctx: Any = contextlib.nullcontext()
        elif hasattr(self.model, "disable_adapter"):
            ctx = self.model.disable_adapter()
        else:
            ctx = contextlib.nullcontext()
        with ctx, torch.inference_mode():
            return self.model.generate(**inputs, streamer=streamer, **self._gen_kwargs(settings))

    def stream(self, message: str, settings: ChatSettings) -> Iterator[tuple[str, str]]:
        """Yield ``(reply so far, exact model input)`` as tokens arrive."""
        from transformers import TextIteratorStreamer

        prompt = self.build_prompt(message, settings)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                self._run(inputs, settings, streamer)
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

    def generate(self, message: str, settings: ChatSettings) -> tuple[str, str]:
        """The whole reply at once (same decoding as ``stream``): ``(reply, exact model input)``."""
        reply, prompt = "", ""
        for reply, prompt in self.stream(message, settings):
            pass
        return reply, prompt
