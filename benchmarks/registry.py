"""Benchmark registry: name -> loader ``(source, **options) -> Benchmark``. Add a benchmark = one module + one line."""

from __future__ import annotations

from typing import Any

from benchmarks.base import Benchmark
from valueharms.registry import Registry

BENCHMARKS: Registry = Registry("benchmark")
BENCHMARKS.register("rtp", "benchmarks.rtp:load_rtp")
BENCHMARKS.register("holisticbiasr", "benchmarks.holisticbiasr:load_holisticbiasr")
BENCHMARKS.register("hexphi", "benchmarks.hexphi:load_hexphi")
BENCHMARKS.register("beavertails", "benchmarks.beavertails:load_beavertails")


def load_benchmark(name: str, source: str | None = None, **options: Any) -> Benchmark:
    """Load a registered benchmark; ``source`` None means the loader's default (HF id) where it has one."""
    loader = BENCHMARKS.get(name)
    return loader(source, **options) if source is not None else loader(**options)
