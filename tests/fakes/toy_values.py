"""A value file format in one file: a reader and its register line (the recipe in docs/ARCHITECTURE.md).

The format: a YAML list of ``{name: ..., scores: {Power: 6, ...}}``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from valueharms.errors import InputError
from valueharms.values import VALUE_FORMATS, VALUES, ValueProfile, canonical_value


def read_yaml_profiles(path: Path) -> dict[str, ValueProfile]:
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    profiles = {}
    for row, entry in enumerate(entries, start=1):
        scores = {canonical_value(k): float(v) for k, v in (entry.get("scores") or {}).items()}
        missing = [v for v in VALUES if v not in scores]
        if missing:
            raise InputError(path, row, missing[0], "missing value")
        profiles[entry["name"]] = ValueProfile(entry["name"], tuple(scores[v] for v in VALUES), str(path))
    return profiles


VALUE_FORMATS.register(".yaml", f"{Path(__file__).stem}:read_yaml_profiles")
