"""Benchmark registry: name -> ``"module:SPEC"``. Adding a benchmark = one module defining a ``SPEC`` + one line."""

from __future__ import annotations

from typing import Any

from benchmarks.base import Benchmark, BenchmarkSpec
from valueharms.errors import InputError
from valueharms.registry import Registry

BENCHMARKS: Registry = Registry("benchmark")
BENCHMARKS.register("rtp", "benchmarks.rtp:SPEC")
BENCHMARKS.register("holisticbiasr", "benchmarks.holisticbiasr:SPEC")
BENCHMARKS.register("hexphi", "benchmarks.hexphi:SPEC")
BENCHMARKS.register("beavertails", "benchmarks.beavertails:SPEC")


def canonical_name(name: object) -> str:
    """The registered name for ``name`` or one of a benchmark's aliases (case-insensitive); unknown names are
    returned lower-cased so :func:`get_spec` can raise its one-line error."""
    text = str(name or "").strip()
    if text in BENCHMARKS:
        return text
    low = text.lower()
    for registered in BENCHMARKS:
        spec: BenchmarkSpec = BENCHMARKS.get(registered)
        if low == registered.lower() or low in spec.aliases:
            return registered
    return low


def get_spec(name: object) -> BenchmarkSpec:
    """The spec of a benchmark by name or alias; an unknown name is a one-line :class:`InputError`."""
    spec = BENCHMARKS.get(canonical_name(name))
    if not isinstance(spec, BenchmarkSpec):
        raise InputError(None, None, "benchmark", f"{name!r} is registered but is not a BenchmarkSpec")
    return spec


def load_benchmark(name: str, source: str | None = None, **options: Any) -> Benchmark:
    """Load a registered benchmark; ``source`` None means the spec's default source (a HF id) where it has one."""
    return get_spec(name).load(source, **options)
