"""Schwartz's ten basic values and the value distributions the study trains on.

Scores are on the 1-6 importance scale (1 = not important to me at all, 6 = very important to me).
The ``close_*`` rows of the paper's file come from raw ESS coding (where 1 means "very much like me"),
but the paper's pipeline reads every number as importance; we use the numbers as they are, like the paper.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from valueharms.errors import InputError
from valueharms.io import read_text_checked
from valueharms.registry import Registry
from valueharms.safenames import check_name

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


#: Order of the study's 14 extreme profiles (each is followed by its closest respondents in the names list).
EXTREME_NAMES: tuple[str, ...] = (*SHORT_NAMES, *HIGHER_ORDER)


def study_distribution_names(closest: int = 10) -> list[str]:
    """The study's trained distributions, in its order: each extreme profile, then ``close_<name>``,
    ``close_<name>_2`` ... ``close_<name>_<closest>`` (14 x 11 = 154 names with the default)."""
    names: list[str] = []
    for name in EXTREME_NAMES:
        names += [name, f"close_{name}"] + [f"close_{name}_{k}" for k in range(2, closest + 1)]
    return names


def table_rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line, cells)`` rows of a tab- or comma-separated table.

    The delimiter is read from the header line: a tab if it has one, else a comma; a header with neither is rejected.
    Tab files are read without quoting (as the study's files are written); comma files with standard CSV quoting.
    Every row must have as many cells as the header (a stray delimiter is an error, never a silent shift).
    """
    if not text.strip():
        raise InputError(path, 1, None, "empty file (expected a header row)")
    first = text.split("\n", 1)[0]
    if "\t" in first:
        delimiter, quoting = "\t", csv.QUOTE_NONE
    elif "," in first:
        delimiter, quoting = ",", csv.QUOTE_MINIMAL
    else:
        raise InputError(path, 1, None, "expected tab- or comma-separated columns (the header has neither)")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    try:
        for cells in reader:
            if header is None:
                header = [c.strip() for c in cells]
                continue
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, cells))
    except csv.Error as err:
        raise InputError(path, reader.line_num, None, f"malformed row ({err})") from None
    header = header or []
    dupes = sorted({c for c in header if c and header.count(c) > 1})
    if dupes:
        raise InputError(path, 1, dupes[0], "column appears twice in the header")
    for row_no, cells in rows:
        if len(cells) != len(header):
            raise InputError(path, row_no, None, f"has {len(cells)} cells, the header has {len(header)} "
                             f"(a stray {'tab' if delimiter == chr(9) else 'comma'} or a missing cell?)")
    return header, rows


def _score(path: Path, row_no: int, column: str, cell: str) -> float:
    try:
        score = float(cell.strip())
    except ValueError:
        raise InputError(path, row_no, column, f"not a number: {cell.strip()[:40]!r}") from None
    if not SCALE_MIN <= score <= SCALE_MAX:  # also rejects nan
        raise InputError(path, row_no, column, f"score {score} outside the 1-6 scale")
    return score


def read_table(path: Path) -> dict[str, ValueProfile]:
    """The study's layout: a tab- or comma-separated table with a name column (``Country`` or ``name``) and the ten
    value columns (full or short names, any order). Errors name the file, row and column of the first bad cell:
    invalid UTF-8 (with the byte offset), a row with more or fewer cells than the header, a duplicate or unsafe
    name, a score outside 1-6."""
    header, rows = table_rows(path, read_text_checked(path, "distribution file"))
    name_col = next((c for c in header if c.lower() in {"country", "name", "distribution"}), None)
    if name_col is None:
        raise InputError(path, 1, None, "no name column (expected 'Country' or 'name')")
    index = {c: i for i, c in enumerate(header)}
    columns: dict[str, str] = {}
    for col in header:
        try:
            value = canonical_value(col)
        except KeyError:
            continue
        if col != name_col and value in columns:
            raise InputError(path, 1, col, f"second column for {value} (first: {columns[value]!r})")
        columns.setdefault(value, col)
    missing = [v for v in VALUES if v not in columns]
    if missing:
        raise InputError(path, 1, missing[0], "missing value column")
    profiles: dict[str, ValueProfile] = {}
    first_row: dict[str, int] = {}
    for row_no, cells in rows:
        name = check_name(cells[index[name_col]].strip(), what="distribution name", path=path, row=row_no,
                          field=name_col)
        if name in profiles:
            raise InputError(path, row_no, name_col, f"duplicate distribution name {name!r} (also row {first_row[name]})")
        scores = tuple(_score(path, row_no, columns[v], cells[index[columns[v]]]) for v in VALUES)
        profiles[name] = ValueProfile(name, scores, str(path))
        first_row[name] = row_no
    return profiles


def read_json(path: Path) -> dict[str, ValueProfile]:
    """``{"<name>": {"Power": 6, ...}, ...}``: one object per distribution with all ten values (full or short
    names); the entry number is reported as the row of an error."""
    import json

    try:
        data = json.loads(read_text_checked(path, "distribution file"))
    except json.JSONDecodeError as err:
        raise InputError(path, err.lineno, None, f"invalid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise InputError(path, None, None, "expected an object mapping distribution names to value scores")
    profiles: dict[str, ValueProfile] = {}
    for row_no, (raw_name, scores) in enumerate(data.items(), start=1):
        name = check_name(str(raw_name).strip(), what="distribution name", path=path, row=row_no)
        if not isinstance(scores, dict):
            raise InputError(path, row_no, name, "expected an object of value scores")
        given: dict[str, str] = {}
        for key in scores:
            try:
                given[canonical_value(str(key))] = str(key)
            except KeyError:
                raise InputError(path, row_no, str(key), "not one of the ten Schwartz values") from None
        missing = [v for v in VALUES if v not in given]
        if missing:
            raise InputError(path, row_no, missing[0], "missing value")
        values = tuple(_score(path, row_no, given[v], str(scores[given[v]])) for v in VALUES)
        profiles[name] = ValueProfile(name, values, str(path))
    return profiles


#: Value file formats by file suffix -> ``reader(path) -> {name: ValueProfile}``. Adding a format is one reader
#: and one ``register`` line; a suffix not listed is read as a table (the study's file is a tab-separated ``.csv``).
VALUE_FORMATS: Registry = Registry("value file format")
for _suffix in (".tsv", ".csv", ".txt"):
    VALUE_FORMATS.register(_suffix, "valueharms.values:read_table")
VALUE_FORMATS.register(".json", "valueharms.values:read_json")


def load_distributions(path: str | Path, names: Iterable[str] | None = None) -> dict[str, ValueProfile]:
    """Read a value distribution file with the reader registered for its suffix (:data:`VALUE_FORMATS`).

    ``names`` selects (and orders) distributions; an empty selection is an error, never "all".
    """
    path = Path(path)
    suffix = path.suffix.lower()
    profiles = VALUE_FORMATS.get(suffix if suffix in VALUE_FORMATS else ".tsv")(path)
    if names is None:
        return profiles
    wanted = list(names)
    if not wanted:
        raise InputError(path, None, "names", "the list of distribution names is empty")
    seen: set[str] = set()
    for n in wanted:
        if n not in profiles:
            raise InputError(path, None, "names", f"no distribution named {n!r}")
        if n in seen:
            raise InputError(path, None, "names", f"distribution {n!r} is listed twice")
        seen.add(n)
    return {n: profiles[n] for n in wanted}


def read_names(path: str | Path) -> list[str]:
    """One distribution name a line (blank lines and ``#`` comments ignored); names must be safe folder names,
    listed once, and at least one must be given."""
    path = Path(path)
    names: list[str] = []
    for row, line in enumerate(read_text_checked(path, "names file").split("\n"), start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        check_name(name, what="distribution name", path=path, row=row)
        if name in names:
            raise InputError(path, row, None, f"distribution {name!r} is listed twice")
        names.append(name)
    if not names:
        raise InputError(path, None, None, "names file lists no distribution")
    return names
