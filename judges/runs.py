"""Where a run's generations are: a study folder, one generation run folder, or one generations file.

Why: every command takes the run the same way (the first positional ``RUN``); scores live beside the
generations they judge, in ``<generation run folder>/scores/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from valueharms.errors import InputError
from valueharms.io import read_jsonl


@dataclass(frozen=True)
class GenerationRun:
    """One generation run folder and its ``generations*.jsonl`` files (scores go to ``folder/scores``)."""

    folder: Path
    files: tuple[Path, ...]


def generation_runs(run: str | Path) -> list[GenerationRun]:
    """A generations file, a folder holding ``generations*.jsonl``, or a study folder with ``generations/*/``."""
    run = Path(run)
    if run.is_file():
        return [GenerationRun(run.parent, (run,))]
    if not run.is_dir():
        raise InputError(run, None, None, "no such study folder, run folder or generations file")
    own = sorted(run.glob("generations*.jsonl"))
    if own:
        return [GenerationRun(run, tuple(own))]
    found: dict[Path, list[Path]] = {}
    for path in sorted(run.glob("generations/*/generations*.jsonl")):
        found.setdefault(path.parent, []).append(path)
    if not found:
        raise InputError(run, None, None, "no generations*.jsonl here or under generations/*/; run 'valueharms "
                         "predict' first")
    return [GenerationRun(folder, tuple(files)) for folder, files in found.items()]


def read_generations(files: list[Path] | tuple[Path, ...]) -> list[tuple[Path, int, dict]]:
    """``(file, row, record)`` per generation key; a key written twice: the last one wins."""
    seen: dict[str, tuple[Path, int, dict]] = {}
    for path in files:
        for i, rec in enumerate(read_jsonl(path), start=1):
            if not isinstance(rec, dict) or not rec.get("key"):
                raise InputError(path, i, "key", "generation record without a key")
            seen[rec["key"]] = (path, i, rec)
    return list(seen.values())
