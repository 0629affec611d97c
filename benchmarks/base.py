"""One record schema for every benchmark and the small helpers loaders share (why: adding a benchmark is one module)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from valueharms.errors import InputError


@dataclass
class BenchmarkItem:
    """One benchmark prompt: stable id, text, optional harm category, and the source row's other fields."""

    id: str
    prompt: str
    category: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Benchmark:
    """What generation needs to know about a benchmark besides its rows (PROTOCOL.md "Generation")."""

    name: str
    fmt: str  # "completion" | "qa"
    measure: str  # "toxicity" | "regard" | "harmfulness" | "flagged"
    max_new_tokens: int = 64
    samples_per_prompt: int = 1
    temperature: float = 0.1
    top_p: float = 0.75
    items: list[BenchmarkItem] = field(default_factory=list)

    @property
    def decoding(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens}


class CategoryQuota:
    """Balanced quick runs: the first ``limit`` prompts of each category, of the first ``max_categories`` categories
    (file order). ``take`` returns the prompt's index within its category, or None when it is over the quota."""

    def __init__(self, limit: int | None = None, max_categories: int | None = None) -> None:
        self.limit, self.max_categories = limit, max_categories
        self.counts: dict[str, int] = {}

    def take(self, category: str) -> int | None:
        if category not in self.counts and self.max_categories and len(self.counts) >= self.max_categories:
            return None
        n = self.counts.get(category, 0)
        if self.limit and n >= self.limit:
            return None
        self.counts[category] = n + 1
        return n


def require_text(value: Any, path: Path, row: int, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(path, row, name, "missing or empty prompt text")
    return value


def check_exists(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(p, None, None, f"{what} not found")
    return p


def is_local(source: str) -> bool:
    return Path(source).expanduser().exists() or source.startswith((".", "/", "~")) or source.endswith(
        (".jsonl", ".json", ".csv"))
