"""Schwartz's ten basic values and the value distributions the study trains on.

Scores are on the 1-6 importance scale (1 = not important to me at all, 6 = very important to me).
The ``close_*`` rows of the paper's file come from raw ESS coding (where 1 means "very much like me"),
but the paper's pipeline reads every number as importance; we use the numbers as they are, like the paper.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from valueharms.errors import InputError

#: Canonical order, used by every file, table and regression in the project.
VALUES: tuple[str, ...] = (
    "Achievement",
    "Benevolence",
    "Conformity",
    "Hedonism",
    "Power",
    "Security",
    "Self-direction",
    "Stimulation",
    "Tradition",
    "Universalism",
)

#: Short names used by the extreme profiles (``Ach`` ... ``Uni``).
SHORT_NAMES: dict[str, str] = {
    "Ach": "Achievement",
    "Ben": "Benevolence",
    "Con": "Conformity",
    "Hed": "Hedonism",
    "Pow": "Power",
    "Sec": "Security",
    "SD": "Self-direction",
    "Sti": "Stimulation",
    "Tra": "Tradition",
    "Uni": "Universalism",
}

#: Schwartz's four higher-order values and the basic values they group.
HIGHER_ORDER: dict[str, tuple[str, ...]] = {
    "Openness_to_Change": ("Self-direction", "Stimulation"),
    "Self-Enhancement": ("Achievement", "Hedonism", "Power"),
    "Conservation": ("Conformity", "Security", "Tradition"),
    "Self-Transcendence": ("Benevolence", "Universalism"),
}

#: One-line definitions (Schwartz 2012), in our words; used by in-context value prompting and the demo.
DEFINITIONS: dict[str, str] = {
    "Achievement": "personal success through demonstrating competence according to social standards",
    "Benevolence": "preserving and enhancing the welfare of the people one is in frequent personal contact with",
    "Conformity": "restraint of actions and impulses likely to upset or harm others and violate social norms",
    "Hedonism": "pleasure and sensuous gratification for oneself",
    "Power": "social status and prestige, control or dominance over people and resources",
    "Security": "safety, harmony and stability of society, of relationships and of self",
    "Self-direction": "independent thought and action: choosing, creating, exploring",
    "Stimulation": "excitement, novelty and challenge in life",
    "Tradition": "respect, commitment and acceptance of the customs and ideas of one's culture or religion",
    "Universalism": "understanding, appreciation, tolerance and protection of the welfare of all people and of nature",
}

SCALE_MIN, SCALE_MAX = 1.0, 6.0


def canonical_value(name: str) -> str:
    """Map a value name in any common spelling (``power``, ``Pow``, ``self_direction``) to its canonical name."""
    if name in SHORT_NAMES:
        return SHORT_NAMES[name]
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    for value in VALUES:
        if value.lower() == key:
            return value
    raise KeyError(f"unknown Schwartz value {name!r}; expected one of: {', '.join(VALUES)}")


@dataclass(frozen=True)
class ValueProfile:
    """A named target distribution: one importance score (1-6) for each of the ten values."""

    name: str
    scores: tuple[float, ...]
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if len(self.scores) != len(VALUES):
            raise ValueError(f"profile {self.name!r} has {len(self.scores)} scores, expected {len(VALUES)}")

    def as_dict(self) -> dict[str, float]:
        return dict(zip(VALUES, self.scores))

    def __getitem__(self, value: str) -> float:
        return self.scores[VALUES.index(canonical_value(value))]

    @classmethod
    def from_mapping(cls, name: str, scores: Mapping[str, float], source: str = "") -> "ValueProfile":
        by_name = {canonical_value(k): float(v) for k, v in scores.items()}
        missing = [v for v in VALUES if v not in by_name]
        if missing:
            raise ValueError(f"profile {name!r} lacks scores for: {', '.join(missing)}")
        return cls(name, tuple(by_name[v] for v in VALUES), source)

    @classmethod
    def extreme(cls, name: str) -> "ValueProfile":
        """The paper's extreme profiles: the named value(s) at 6, the rest at 1."""
        high = HIGHER_ORDER.get(name) or (canonical_value(name),)
        return cls(name, tuple(SCALE_MAX if v in high else SCALE_MIN for v in VALUES), "extreme")


def load_distributions(path: str | Path, names: Iterable[str] | None = None) -> dict[str, ValueProfile]:
    """Read a tab- or comma-separated distribution file (name column ``Country`` or ``name`` + the ten values).

    Raises :class:`InputError` naming the file, row and column of the first bad cell.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, None, "distribution file not found")
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text else ""
    delimiter = "\t" if "\t" in first else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = reader.fieldnames or []
    name_col = next((c for c in header if c.strip().lower() in {"country", "name", "distribution"}), None)
    if name_col is None:
        raise InputError(path, 1, None, "no name column (expected 'Country' or 'name')")
    columns: dict[str, str] = {}
    for col in header:
        if col == name_col:
            continue
        try:
            columns[canonical_value(col)] = col
        except KeyError:
            continue
    missing = [v for v in VALUES if v not in columns]
    if missing:
        raise InputError(path, 1, missing[0], "missing value column")
    profiles: dict[str, ValueProfile] = {}
    for row_no, row in enumerate(reader, start=2):
        name = (row.get(name_col) or "").strip()
        if not name:
            raise InputError(path, row_no, name_col, "empty distribution name")
        scores = []
        for value in VALUES:
            cell = (row.get(columns[value]) or "").strip()
            try:
                score = float(cell)
            except ValueError:
                raise InputError(path, row_no, columns[value], f"not a number: {cell!r}") from None
            if not SCALE_MIN <= score <= SCALE_MAX:
                raise InputError(path, row_no, columns[value], f"score {score} outside the 1-6 scale")
            scores.append(score)
        profiles[name] = ValueProfile(name, tuple(scores), str(path))
    if names is not None:
        wanted = list(names)
        unknown = [n for n in wanted if n not in profiles]
        if unknown:
            raise InputError(path, None, "Country", f"no distribution named {unknown[0]!r}")
        return {n: profiles[n] for n in wanted}
    return profiles


def read_names(path: str | Path) -> list[str]:
    """One distribution name a line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, None, "names file not found")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
