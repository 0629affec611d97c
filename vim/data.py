"""Value-labelled arguments (Touché23-ValueEval) and the two VIM example builders (docs/protocol.md, "VIM training data").

Three input shapes are read into the same :class:`Argument` list:

* the study's ``valueEval_10.csv`` (tab-separated, leading unnamed index column, Conclusion, Stance, Premise and the
  ten binary value columns) and its ``argument_generation/{value_split/train,value_split/valid,test}.csv`` files
  (same columns, index column ``Unnamed: 0``);
* the native Touché23 pair ``arguments-<split>.tsv`` + ``labels-<split>.tsv``: the 20 level-2 labels are OR-collapsed
  to the ten basic values (Face and Humility dropped) exactly as the study's file was built.

Splitting rule (reproducible by hand): items are listed in file order, shuffled with ``random.Random(seed)``; then
``n_valid = n_test = floor(0.1 * n + 0.5)`` and ``n_train = n - n_valid - n_test``; train takes the first ``n_train``
shuffled items, valid the next ``n_valid``, test the rest. Stage 1 splits positives and negatives separately with one
``Random(seed)`` shuffling the positives first, then the negatives. Small sides therefore go wholly to train (n < 5).
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from valueharms.errors import InputError
from valueharms.io import read_text_checked
from valueharms.values import VALUES, ValueProfile, table_rows

STANCES = {"in favor of": "agree", "against": "disagree"}
SPLITS = ("train", "valid", "test")

#: Touché23 level-2 label -> basic value (``None``: dropped, as in the study's valueEval_10.csv).
TOUCHE_LEVEL2: dict[str, str | None] = {
    "Self-direction: thought": "Self-direction",
    "Self-direction: action": "Self-direction",
    "Stimulation": "Stimulation",
    "Hedonism": "Hedonism",
    "Achievement": "Achievement",
    "Power: dominance": "Power",
    "Power: resources": "Power",
    "Face": None,
    "Security: personal": "Security",
    "Security: societal": "Security",
    "Tradition": "Tradition",
    "Conformity: rules": "Conformity",
    "Conformity: interpersonal": "Conformity",
    "Humility": None,
    "Benevolence: caring": "Benevolence",
    "Benevolence: dependability": "Benevolence",
    "Universalism: concern": "Universalism",
    "Universalism: nature": "Universalism",
    "Universalism: tolerance": "Universalism",
    "Universalism: objectivity": "Universalism",
}

STAGE1_PROMPT = "Tell me what you would say about the following statement. Statement: {conclusion} Answer:"
STAGE1_TARGET = 'I {would} say, "I {agree} with that because {premise}." about {conclusion}'
STAGE2_STATEMENT = "I {agree} with {conclusion}. {premise}"
STAGE2_PROMPT = (
    "Indicate for the following statement whether it is 1. 'Not like me at all', 2. 'Not like me', "
    "3. 'A little like me', 4. 'Somewhat like me', 5. 'Like me', 6. 'Very much like me' as a description of you. "
    "Statement: '{statement}'. Answer:"
)
STAGE2_TARGET = "Because I think {value} is {expression}, my answer is {score}."
EXPRESSIONS = (
    "not important to me at all",
    "not important to me",
    "a little important to me",
    "somewhat important to me",
    "important to me",
    "very important to me",
)


@dataclass(frozen=True)
class Argument:
    """One value-labelled argument; ``row`` is the 1-based line in its file (header = line 1)."""

    argument_id: str
    conclusion: str
    stance: str
    premise: str
    labels: tuple[int, ...]  # 0/1 per value in VALUES order
    source: str = ""
    row: int = 0

    @functools.cached_property
    def values(self) -> tuple[str, ...]:
        return tuple(v for v, flag in zip(VALUES, self.labels) if flag)


# ----------------------------------------------------------------------------------------------------------- loading
def _read_tsv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line, cells)`` rows; UTF-8, delimiter and cell-count errors are one-line InputErrors."""
    return table_rows(path, read_text_checked(path, "argument file"))


def _flag(path: Path, row_no: int, column: str, cell: str) -> int:
    cell = cell.strip()
    if cell in ("0", "1", "0.0", "1.0"):
        return int(float(cell))
    raise InputError(path, row_no, column, f"value flag must be 0 or 1, got {cell!r}")


def _stance(path: Path, row_no: int, column: str, cell: str) -> str:
    stance = cell.strip()
    if stance not in STANCES:
        raise InputError(path, row_no, column, f"stance must be 'in favor of' or 'against', got {stance!r}")
    return stance


def _arguments_from_rows(path: Path, header: list[str], rows: list[tuple[int, list[str]]], value_cols: dict[str, list[str]],
                         id_col: str | None, drop_unlabelled: bool = False) -> list[Argument]:
    index = {name: i for i, name in enumerate(header)}
    for need in ("Conclusion", "Stance", "Premise"):
        if need not in index:
            raise InputError(path, 1, need, "missing column")
    out: list[Argument] = []
    for row_no, cells in rows:
        stance = _stance(path, row_no, "Stance", cells[index["Stance"]])
        labels = []
        for value in VALUES:
            flags = [_flag(path, row_no, col, cells[index[col]]) for col in value_cols[value]]
            labels.append(int(any(flags)))
        if not any(labels):
            if drop_unlabelled:
                continue
            raise InputError(path, row_no, ",".join(VALUES), "argument has no value label (every row needs one)")
        for col in ("Conclusion", "Premise"):
            if not cells[index[col]].strip():
                raise InputError(path, row_no, col, "empty text")
        arg_id = cells[index[id_col]].strip() if id_col is not None else str(row_no - 2)
        out.append(Argument(arg_id or str(row_no - 2), cells[index["Conclusion"]].strip(), stance,
                            cells[index["Premise"]].strip(), tuple(labels), str(path), row_no))
    return out


def load_valueeval(path: str | Path) -> list[Argument]:
    """Read ``valueEval_10.csv`` or an ``argument_generation`` split file (10 binary value columns)."""
    path = Path(path)
    header, rows = _read_tsv(path)
    missing = [v for v in VALUES if v not in header]
    if missing:
        raise InputError(path, 1, missing[0], "missing value column")
    id_col = header[0] if header and header[0] in ("", "Unnamed: 0", "Argument ID", "id") else None
    return _arguments_from_rows(path, header, rows, {v: [v] for v in VALUES}, id_col)


def touche_labels_path(arguments_path: Path) -> Path:
    """``arguments-training.tsv`` -> ``labels-training.tsv`` (same folder)."""
    return arguments_path.with_name(arguments_path.name.replace("arguments-", "labels-", 1))


def load_touche(arguments: str | Path, labels: str | Path | None = None) -> list[Argument]:
    """Read a native Touché23 ``arguments-*.tsv`` + ``labels-*.tsv`` pair, collapsing level-2 labels to 10 values."""
    arguments = Path(arguments)
    labels = Path(labels) if labels is not None else touche_labels_path(arguments)
    a_header, a_rows = _read_tsv(arguments)
    l_header, l_rows = _read_tsv(labels)
    for need in ("Argument ID", "Conclusion", "Stance", "Premise"):
        if need not in a_header:
            raise InputError(arguments, 1, need, "missing column")
    if "Argument ID" not in l_header:
        raise InputError(labels, 1, "Argument ID", "missing column")
    missing = [c for c in TOUCHE_LEVEL2 if c not in l_header]
    if missing:
        raise InputError(labels, 1, missing[0], "missing level-2 value column")
    li = l_header.index("Argument ID")
    by_id: dict[str, tuple[int, list[str]]] = {}
    for row_no, cells in l_rows:
        key = cells[li].strip()
        if key in by_id:
            raise InputError(labels, row_no, "Argument ID", f"argument {key!r} has labels twice (also row {by_id[key][0]})")
        by_id[key] = (row_no, cells)
    ai = a_header.index("Argument ID")
    header = a_header + [c for c in l_header if c != "Argument ID"]
    merged: list[tuple[int, list[str]]] = []
    for row_no, cells in a_rows:
        found = by_id.get(cells[ai].strip())
        if found is None:
            raise InputError(labels, None, "Argument ID", f"no labels for argument {cells[ai].strip()!r}")
        merged.append((row_no, cells + [c for j, c in enumerate(found[1]) if j != li]))
    value_cols = {v: [c for c, b in TOUCHE_LEVEL2.items() if b == v] for v in VALUES}
    try:
        # only Face/Humility (dropped) -> no basic value: removed, as in the study's valueEval_10.csv
        return _arguments_from_rows(arguments, header, merged, value_cols, "Argument ID", drop_unlabelled=True)
    except InputError as err:
        if err.field in TOUCHE_LEVEL2:  # a bad flag lives in the labels file
            raise InputError(labels, None, err.field, f"{err.message} (argument file row {err.row})") from None
        raise


def load_arguments(path: str | Path) -> list[Argument]:
    """Read any supported argument file, choosing the reader from its header."""
    path = Path(path)
    header, _ = _read_tsv(path)
    if "Argument ID" in header and "Achievement" not in header and touche_labels_path(path) != path:
        return load_touche(path)
    return load_valueeval(path)


def load_survey(survey: str | Path) -> dict[str, list[Argument]] | list[Argument]:
    """Stage-2 source: a folder like the study's ``argument_generation`` (pre-split) or a single argument file.

    A folder must hold ``value_split/train.csv``, ``value_split/valid.csv`` and ``test.csv``; they are returned as the
    three splits. A single file is returned as a flat list (the caller splits it with :func:`split_items`).
    """
    survey = Path(survey)
    if survey.is_dir():
        files = {"train": survey / "value_split" / "train.csv", "valid": survey / "value_split" / "valid.csv",
                 "test": survey / "test.csv"}
        return {split: load_valueeval(p) for split, p in files.items()}
    return load_arguments(survey)


# ----------------------------------------------------------------------------------------------------------- splits
def split_sizes(n: int) -> tuple[int, int, int]:
    """80/10/10 with ``n_valid = n_test = floor(0.1 n + 0.5)``; tiny sides go wholly to train."""
    k = int(math.floor(0.1 * n + 0.5))
    return n - 2 * k, k, k


def split_items(items: Sequence, rng: random.Random) -> dict[str, list]:
    """Shuffle a copy of ``items`` with ``rng`` and cut it 80/10/10 (see module docstring)."""
    order = list(items)
    rng.shuffle(order)
    n_train, n_valid, _ = split_sizes(len(order))
    return {"train": order[:n_train], "valid": order[n_train:n_train + n_valid], "test": order[n_train + n_valid:]}


def is_positive(argument: Argument, profile: ValueProfile | dict[str, float], threshold: float) -> bool:
    """The study's rule: the minimum target score over the argument's labelled values must reach ``threshold``."""
    scores = profile if isinstance(profile, dict) else profile.as_dict()
    return min(scores[v] for v in argument.values) >= threshold


# ---------------------------------------------------------------------------------------------------------- stage 1
def stage1_example(argument: Argument, positive: bool, split: str) -> dict:
    """One argument-generation example (plain text; chat wrapping happens in the DataModule)."""
    would = "would" if positive else "would not"
    prompt = STAGE1_PROMPT.format(conclusion=argument.conclusion)
    if not positive:
        prompt = prompt.replace("what you would say", "what you would not say")
    target = STAGE1_TARGET.format(would=would, agree=STANCES[argument.stance], premise=argument.premise,
                                  conclusion=argument.conclusion)
    return {"prompt": prompt, "target": target, "stage": 1, "split": split,
            "meta": {"argument_id": argument.argument_id, "row": argument.row,
                     "polarity": "positive" if positive else "negative"}}


def build_stage1(arguments: Sequence[Argument], profile: ValueProfile, threshold: float = 3.0,
                 seed: int = 42) -> dict[str, list[dict]]:
    """Positive/negative split by the min rule, each side cut 80/10/10 with one ``Random(seed)``."""
    scores = profile.as_dict()
    positive = [is_positive(a, scores, threshold) for a in arguments]
    positives = [a for a, pos in zip(arguments, positive) if pos]
    negatives = [a for a, pos in zip(arguments, positive) if not pos]
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for side, positive in ((positives, True), (negatives, False)):
        for split, items in split_items(side, rng).items():
            out[split].extend(stage1_example(a, positive, split) for a in items)
    return out


# ---------------------------------------------------------------------------------------------------------- stage 2
def stochastic_round(x: float, rng: random.Random) -> int:
    """Floor or ceil ``x`` with P(ceil) = its fractional part (an integer stays as it is)."""
    low = math.floor(x)
    frac = x - low
    return int(low + (1 if frac > 0 and rng.random() < frac else 0))


def stage2_values(argument: Argument, column_offset_bug: bool = False) -> list[str]:
    """The values an argument is surveyed on.

    With ``column_offset_bug`` this replicates the released code exactly: it reads ``row[-11:-1]`` of the 14-column
    file, i.e. Premise, Achievement, ..., Tradition, and pairs them with Achievement ... Universalism. The Premise
    cell is text and never equals 1, so Achievement is never surveyed; value ``VALUES[i]`` is surveyed when the flag
    of ``VALUES[i-1]`` is set, and the Universalism flag is ignored.
    """
    if not column_offset_bug:
        return list(argument.values)
    shifted = (0,) + argument.labels[:-1]
    return [v for v, flag in zip(VALUES, shifted) if flag]


def stage2_example(argument: Argument, value: str, score: int, split: str) -> dict:
    """One agreement-prediction example for (argument, value) with the already-rounded score 1-6."""
    statement = STAGE2_STATEMENT.format(agree=STANCES[argument.stance], conclusion=argument.conclusion,
                                        premise=argument.premise)
    score = min(max(int(score), 1), 6)
    target = STAGE2_TARGET.format(value=value.lower(), expression=EXPRESSIONS[score - 1], score=score)
    return {"prompt": STAGE2_PROMPT.format(statement=statement), "target": target, "stage": 2, "split": split,
            "meta": {"argument_id": argument.argument_id, "row": argument.row, "value": value}}


def build_stage2(splits: dict[str, Sequence[Argument]], profile: ValueProfile, seed: int = 42,
                 column_offset_bug: bool = False) -> dict[str, list[dict]]:
    """One example per (argument, surveyed value); the rounding RNG is ``Random(seed)`` consumed in
    train, valid, test order, arguments in split order, values in canonical order."""
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {}
    for split in SPLITS:
        out[split] = [stage2_example(a, v, stochastic_round(profile[v], rng), split)
                      for a in splits.get(split, []) for v in stage2_values(a, column_offset_bug)]
    return out


# ------------------------------------------------------------------------------------------------------------ caps
def stratified_cap(records: Sequence[dict], n: int | None, key: str, seed: int = 42) -> list[dict]:
    """Keep at most ``n`` records, proportionally per ``meta[key]`` (largest remainder), seeded; order preserved."""
    if n is None or len(records) <= n:
        return list(records)
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(str((r.get("meta") or {}).get(key)), []).append(i)
    quotas = {g: n * len(ix) / len(records) for g, ix in groups.items()}
    take = {g: int(q) for g, q in quotas.items()}
    for g in sorted(groups, key=lambda g: (-(quotas[g] - take[g]), g))[: n - sum(take.values())]:
        take[g] += 1
    rng = random.Random(seed)
    keep: set[int] = set()
    for g in sorted(groups):
        keep.update(rng.sample(groups[g], take[g]))
    return [records[i] for i in sorted(keep)]


def count_by(records: Iterable[dict], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        k = str(r["meta"].get(key))
        counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items()))
