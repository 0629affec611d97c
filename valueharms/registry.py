"""Lazy name -> ``"package.module:attr"`` registries (the lm-evaluation-harness shape).

Heavy optional libraries (openai, detoxify, gradio) are imported only when their entry is used.
Adding a benchmark or a judge is one module plus one ``register`` line.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Generic, Iterator, TypeVar

from valueharms.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, T] = {}

    def register(self, name: str, target: str) -> None:
        """Register ``name`` -> ``"module:attr"``; re-registering a name with another target is an error."""
        if name in self._targets and self._targets[name] != target:
            raise ValueError(f"{self.kind} {name!r} is already registered as {self._targets[name]}")
        self._targets[name] = target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The registered object; an unknown name is a one-line :class:`InputError` with a did-you-mean hint."""
        if name not in self._targets:
            close = difflib.get_close_matches(name, self._targets, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(None, None, self.kind, f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())})")
        if name not in self._loaded:
            module_name, _, attr = self._targets[name].partition(":")
            module = importlib.import_module(module_name)
            self._loaded[name] = getattr(module, attr)
        return self._loaded[name]

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Look up ``name`` and call it (a class or factory) with the given arguments."""
        return self.get(name)(*args, **kwargs)
