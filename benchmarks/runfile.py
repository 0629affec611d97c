"""A generation run folder: its recorded settings (``run.json``), its writer lock, its shard files, and resume.

Why: a rerun with other settings used to append new-style records beside old ones and rewrite ``config.yaml`` to
claim the new settings for all of them. Now:

* ``run.json`` records the resolved settings the first time (atomically). A rerun whose settings differ in any
  recorded field refuses with one line naming the fields; with ``overwrite`` the old generation files,
  ``run.json`` and ``config.yaml`` move to ``superseded/<UTC time>/`` and the run starts afresh. Settings that only
  add work (a new adapter, benchmark or mitigation) are added to ``run.json``; no recorded value is ever changed.
* one writer per output file (:class:`valueharms.locking.RunLock`); shards and ranks write separate files.
* a key counts as done only when a stored record of it has the same fingerprint (:mod:`benchmarks.provenance`).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from valueharms.errors import InputError
from valueharms.io import atomic_write_json, read_jsonl, same_input_path
from valueharms.locking import RunLock

RUN_FILE = "run.json"
SUPERSEDED = "superseded"
RUN_FORMAT = 1
SHOWN_FIELDS = 4


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): a deterministic share of a run's conditions."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str | None) -> "Shard | None":
        if text is None or str(text).strip() in ("", "0/1"):
            return None
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match or not int(match.group(1)) < int(match.group(2)):
            raise InputError(None, None, "shard", f"{text!r} is not 'i/n' with 0 <= i < n (e.g. 0/8)")
        return cls(int(match.group(1)), int(match.group(2)))

    def file(self, path: Path) -> Path:
        return path.with_name(f"{path.stem}.shard-{self.index}-of-{self.count}{path.suffix}")

    def select(self, costs: Mapping[str, int]) -> set[str]:
        """The conditions of this shard: longest first onto the least loaded shard (ties: first shard), so every
        shard computes the same split from the same conditions."""
        loads = [0] * self.count
        owner: dict[str, int] = {}
        for name, cost in sorted(costs.items(), key=lambda kv: -kv[1]):
            target = min(range(self.count), key=lambda s: (loads[s], s))
            owner[name] = target
            loads[target] += max(cost, 1)
        return {name for name, shard in owner.items() if shard == self.index}


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b.c": leaf}`` (lists are leaves)."""
    if isinstance(obj, Mapping) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: obj}


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 24 else text[:21] + "..."


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``field (old -> new)`` for every field recorded in both with a different value (a path only when it names
    other input: one file spelled relative and absolute is the same source)."""
    before, after = flatten(old), flatten(new)
    out = [f"{k} ({_short(before[k])} -> {_short(after[k])})" for k in sorted(before.keys() & after.keys())
           if before[k] != after[k] and not same_input_path(before[k], after[k])]
    # a field that became a mapping (or stopped being one) changed too, though no flattened path is shared
    reshaped = [k for k in sorted(before.keys() ^ after.keys())
                if any(other.startswith(k + ".") for other in (after if k in before else before))]
    return out + [f"{k} (changed shape)" for k in reshaped]


class GenerationRun:
    """The files one ``predict`` process writes: ``output`` (or its shard/rank file), under a lock."""

    def __init__(self, output: str | Path, *, shard: Shard | None = None, rank: int = 0, world_size: int = 1,
                 overwrite: bool = False) -> None:
        self.output = Path(output)
        self.folder = self.output.parent
        path = shard.file(self.output) if shard else self.output
        self.path = path if world_size <= 1 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")
        self.overwrite = overwrite
        self.notes: list[str] = []
        self._lock: RunLock | None = None

    @property
    def run_file(self) -> Path:
        return self.folder / RUN_FILE

    def generation_files(self) -> list[Path]:
        """This run's generation files: the output and its shard and rank siblings."""
        stem, suffix = re.escape(self.output.stem), re.escape(self.output.suffix)
        pattern = re.compile(rf"{stem}(\.shard-\d+-of-\d+)?(\.rank\d+)?{suffix}")
        return sorted(p for p in self.folder.glob(f"{self.output.stem}*{self.output.suffix}")
                      if p.is_file() and pattern.fullmatch(p.name))

    def open(self, config: Mapping[str, Any]) -> None:
        """Check ``config`` against ``run.json`` (record it, extend it, refuse, or start afresh), then take the
        writer lock of this process's file. Everything happens under a short lock on ``run.json``."""
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.run_file) + ".lock", timeout=600):
            recorded = json.loads(self.run_file.read_text(encoding="utf-8")) if self.run_file.is_file() else None
            changes = config_changes(recorded["config"], config) if recorded else []
            if changes and not self.overwrite:
                shown = ", ".join(changes[:SHOWN_FIELDS]) + (f" and {len(changes) - SHOWN_FIELDS} more"
                                                             if len(changes) > SHOWN_FIELDS else "")
                raise InputError(self.run_file, None, None, f"settings differ from this run's recorded ones: {shown}; "
                                 "rerun with --data.init_args.overwrite true to start afresh (old files move to "
                                 f"{SUPERSEDED}/) or write to another output")
            if changes:
                self._supersede()
                recorded = None
            full = _merge(recorded["config"], config) if recorded else config  # new fields join the recorded ones
            if recorded is None or full != recorded["config"]:
                atomic_write_json(self.run_file, {"format": RUN_FORMAT, "created": (recorded or {}).get("created")
                                                  or _now(), "command": " ".join(sys.argv), "config": full})
            lock = RunLock(self.path, what="predict")
            lock.__enter__()
            self._lock = lock

    def _supersede(self) -> None:
        """Move the run's generation files, run.json and config.yaml aside (refused while another writer is live)."""
        files = self.generation_files()
        for path in files:
            try:
                with RunLock(path, what="predict"):
                    pass
            except InputError as err:
                raise InputError(path, None, None, f"cannot start afresh: {err.message}") from None
        stamp = _now().replace(":", "")
        target = self.folder / SUPERSEDED / stamp
        n = 1
        while target.exists():  # two restarts within one second
            n += 1
            target = self.folder / SUPERSEDED / f"{stamp}-{n}"
        target.mkdir(parents=True)
        for path in [*files, self.run_file, self.folder / "config.yaml"]:
            if path.is_file():
                shutil.move(str(path), target / path.name)
        self.notes.append(f"settings changed: previous generations moved to {target}")

    def done(self, keys: Iterable[str] | None = None) -> dict[str, set[str]]:
        """Key -> fingerprints stored for it in any of the run's generation files (only ``keys`` when given)."""
        wanted = set(keys) if keys is not None else None
        out: dict[str, set[str]] = {}
        for path in self.generation_files():
            for rec in read_jsonl(path):
                key = rec.get("key") if isinstance(rec, dict) else None
                if key and (wanted is None or key in wanted):
                    out.setdefault(key, set()).add(rec.get("fingerprint") or "")
        return out

    @property
    def locked(self) -> bool:
        return self._lock is not None

    def release(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.__exit__(None, None, None)


def _merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``old`` with the fields only ``new`` has added (recorded values are kept)."""
    out = dict(old)
    for key, value in new.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], Mapping) and isinstance(value, Mapping):
            out[key] = _merge(out[key], value)
    return out


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
