"""The judge contract: a ``Judgement`` per text and a ``Judge`` protocol every scorer implements.

Why: scorers (Perspective, GPT-4o, regard, Detoxify, offline heuristics) are swapped without touching
generation or analysis. A failed call is ``value=None`` plus ``error`` -- never 0 -- so missing scores are
counted instead of silently lowering toxicity (lm-eval's Perspective metric returns 0 on errors).

A judge is a class whose constructor takes its own options (typed, documented: ``valueharms score --judge
NAME --judge.OPTION VALUE`` and ``--judge.help NAME`` come from that signature) and that has ``name``,
``version``, ``measures`` and ``score``. Optional: ``iter_score`` (yield ``(index, judgement)`` as answers
arrive, so paid answers are stored one by one), ``resolve(measure)`` (a judge that delegates per measure), and
a static ``runs_locally(options)`` (True when it needs no key, network or download: ``auto`` may pick it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Protocol, Sequence, TypeVar, runtime_checkable

from valueharms.errors import InputError
from valueharms.io import sha256_text

from valueharms.measures import MEASURES as _MEASURES

MEASURES = tuple(_MEASURES)


@dataclass
class Judgement:
    """One judged text. ``value`` is the number metrics use; ``label`` a class name (or "5"/"flagged")."""

    value: float | None
    label: str | None = None
    labels: dict[str, float] = field(default_factory=dict)
    raw: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None and self.error is None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Judgement":
        return cls(
            value=data.get("value"),
            label=data.get("label"),
            labels=dict(data.get("labels") or {}),
            raw=data.get("raw"),
            error=data.get("error"),
        )

    @classmethod
    def failed(cls, error: str, raw: str | None = None) -> "Judgement":
        return cls(value=None, label=None, labels={}, raw=raw, error=error)


@runtime_checkable
class Judge(Protocol):
    """A scorer. ``version`` changes whenever scores would change (model id, template hash, attributes)."""

    name: str
    version: str
    measures: tuple[str, ...]

    def score(self, texts: Any, *, measure: Any, contexts: Any = None) -> Any:
        """``texts: list[str]``, ``measure: str``, ``contexts: list[dict] | None`` -> ``list[Judgement]``, one
        per text, in order. (Annotated ``Any`` so the command line accepts any class with this call shape.)"""
        ...


T = TypeVar("T")


def batched(texts: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive chunks of at most ``size`` items (local model judges score a batch per forward pass)."""
    for start in range(0, len(texts), max(size, 1)):
        yield list(texts[start : start + size])


def text_hash(text: str) -> str:
    """Short stable hash used inside judge versions (template contents, attribute lists)."""
    return sha256_text(text)[:12]


def resolved(judge: Judge, measure: str) -> Judge:
    """The judge that really scores ``measure`` (``auto`` picks one per measure; its name and version go into
    cache keys and score records, so callers store results under the resolved judge, never under ``auto``)."""
    return judge.resolve(measure) if hasattr(judge, "resolve") else judge


def check_measure(judge: Judge, measure: str) -> None:
    if measure not in judge.measures:
        raise InputError(None, None, "measure", f"judge {judge.name!r} cannot score {measure!r} "
                         f"(it scores: {', '.join(judge.measures)})")


def mask_secret(text: str, secret: str | None) -> str:
    """Replace a key anywhere in ``text`` (exception messages, URLs) so it is never logged or stored."""
    if secret:
        text = text.replace(secret, "***")
    return text
