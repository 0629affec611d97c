"""What a benchmark is: its prompts and every fact the pipeline needs about it, in one object.

Why: a benchmark's measure, metrics, decoding, stop strings, category field and the paper's numbers used to be
spread over generation, judges and analysis; now :class:`BenchmarkSpec` holds them and every step reads it
through :func:`benchmarks.registry.get_spec`. Adding a benchmark is one module defining a ``SPEC`` plus one
``register`` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from valueharms.decode import Decoding
from valueharms.errors import InputError

__all__ = ["Benchmark", "BenchmarkItem", "BenchmarkSpec", "CategoryQuota", "Decoding", "Metric"]


@dataclass
class BenchmarkItem:
    """One benchmark prompt: stable id, text, optional harm category, and the source row's other fields."""

    id: str
    prompt: str
    category: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A metric analysis compares across groups. ``observation`` maps per-prompt harms to the numbers whose mean is
    the metric (e.g. ``harm >= 0.5`` for toxicity probability); None means the harm itself."""

    name: str
    label: str
    observation: Callable[[Any], Any] | None = None

    def observations(self, harm: Any) -> Any:
        harm = harm.dropna()
        return (self.observation(harm) if self.observation else harm).astype(float)


def _default_scored_text(record: dict, measure: str) -> tuple[str, dict | None]:
    """The text a judge sees for a generation: its output, with the prompt as context for rubric judges."""
    if measure in {"harmfulness", "flagged"}:
        return record["output"], {"prompt": record["prompt"]}
    return record["output"], None


@dataclass(frozen=True)
class BenchmarkSpec:
    """Every fact about one benchmark.

    Attributes:
        name: the one name used in configs, records, score files and reports.
        fmt: ``completion`` (plain continuation) or ``qa`` (``QUESTION: … ANSWER:``).
        measure: what its generations are judged on (see :mod:`valueharms.measures`).
        loader: ``(source, **options) -> list[BenchmarkItem]``.
        default_source: the canonical source (a HF id) used when a config gives none.
        decoding: the protocol's decoding for this benchmark.
        stop: stop strings per condition kind (vanilla, icl, vim, benign); kinds not listed get none.
        stop_after_scored: stop strings after which nothing more is scored (RTP scores prompt + the first
            sentence, so ``(".",)``): generation may stop there for every condition without changing the scored text.
        metrics: ``(frame, keys, **options) -> rows`` of the long metrics table (see :mod:`judges.metrics`).
        shown: metrics analysis compares across groups, primary first.
        per_prompt: how a prompt's samples combine into one observation (RTP: the max over samples).
        category_field: the ``fields`` entry used as category when an item has none (HolisticBiasR: axis).
        paper: ``(group, metric) -> number`` the paper reports (Llama-2-7B), for side-by-side columns.
        paper_mitigation: the paper's mitigation numbers, ``category keyword -> (value, {mitigation: (vanilla, VIM)})``.
        scored_text: ``(record, measure) -> (text, context)``: the exact text a judge sees.
        aliases: other spellings accepted on input (old records, configs).
        paper_note: how the paper computed the numbers in ``paper`` when that differs from ours by default.
    """

    name: str
    fmt: Literal["completion", "qa"]
    measure: str
    loader: Callable[..., list[BenchmarkItem]]
    metrics: Callable[..., list[dict]]
    shown: tuple[Metric, ...]
    default_source: str | None = None
    decoding: Decoding = Decoding()
    stop: Mapping[str, Sequence[str]] = field(default_factory=dict)
    stop_after_scored: tuple[str, ...] = ()
    per_prompt: Literal["mean", "max"] = "mean"
    category_field: str | None = None
    paper: Mapping[tuple[str, str], float] = field(default_factory=dict)
    paper_mitigation: Mapping[str, tuple[str, Mapping[str, tuple[float, float]]]] = field(default_factory=dict)
    scored_text: Callable[[dict, str], tuple[str, dict | None]] = _default_scored_text
    aliases: tuple[str, ...] = ()
    paper_note: str = ""

    @property
    def primary(self) -> Metric:
        return self.shown[0]

    def load(self, source: str | None = None, **options: Any) -> "Benchmark":
        source = source if source is not None else self.default_source
        if source is None:
            raise InputError(None, None, f"{self.name}.source", "no source given and the benchmark has no default")
        return Benchmark(self, self.loader(source, **options))

    def stop_for(self, kind: str, early: bool = True) -> list[str]:
        """The protocol's stop strings for a condition kind, plus ``stop_after_scored`` when ``early``."""
        return with_early_stop(self.stop.get(kind, ()), self.stop_after_scored if early else ())

    def category_of(self, category: object, fields: object) -> str:
        """The category analysis groups by: the item's own, else ``fields[category_field]``, else ``all``."""
        if isinstance(category, str) and category:
            return category
        if self.category_field and isinstance(fields, dict) and fields.get(self.category_field):
            return str(fields[self.category_field])
        return "all"


@dataclass
class Benchmark:
    """A loaded benchmark: its spec and its prompts."""

    spec: BenchmarkSpec
    items: list[BenchmarkItem]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def fmt(self) -> str:
        return self.spec.fmt

    @property
    def decoding(self) -> Decoding:
        return self.spec.decoding


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


def with_early_stop(stop: Sequence[str], early: Sequence[str]) -> list[str]:
    """``stop`` followed by the ``early`` strings it does not already hold (order kept, no duplicates)."""
    out = list(stop)
    return out + [s for s in early if s not in out]


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
