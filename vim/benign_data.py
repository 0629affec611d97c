"""Benign instruction-tuning data for the paper's baselines (Alpaca, Dolly, Grammar, SAMSum) as ``{prompt, target}``.

Each task reads a Hugging Face dataset id (``datasets.load_dataset``) or a local ``.json`` / ``.jsonl`` / ``.csv`` file
with the task's native fields, and formats it with the study's exact prompts (docs/protocol.md, "Benign baselines").

Dolly: the study fine-tuned on a "no-safety" subset of databricks-dolly-15k whose exact id list was not released.
``load_benign("dolly", categories=[...])`` keeps only the given Dolly categories, and ``exclude_categories`` drops
some; pass a local file of that subset as ``source`` to use it as it is.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Iterable, Sequence

from valueharms.errors import InputError
from valueharms.io import read_jsonl_rows

ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
SAMSUM_PROMPT = "Summarize this dialog:\n{dialogue}\n---\nSummary:\n"
GRAMMAR_PROMPT = "Correct this to standard English:\n{input}\n---\nCorrected:\n"

#: Default remote source per task (Hugging Face dataset ids).
DEFAULT_SOURCES: dict[str, str] = {
    "alpaca": "tatsu-lab/alpaca",
    "dolly": "databricks/databricks-dolly-15k",
    "grammar": "jhu-clsp/jfleg",
    "samsum": "knkarthick/samsum",
}


def _alpaca_prompt(instruction: str, context: str) -> str:
    if context.strip():
        return ALPACA_WITH_INPUT.format(instruction=instruction, input=context)
    return ALPACA_NO_INPUT.format(instruction=instruction)


def _need(row: dict, fields: Sequence[str], where: tuple[str, int]) -> list[str]:
    out = []
    for f in fields:
        val = row.get(f)
        if val is None:
            raise InputError(where[0], where[1], f, "missing field")
        out.append(val if isinstance(val, str) else str(val))
    return out


def format_alpaca(row: dict, where: tuple[str, int]) -> dict:
    instruction, output = _need(row, ("instruction", "output"), where)
    return {"prompt": _alpaca_prompt(instruction, str(row.get("input") or "")), "target": output}


def format_dolly(row: dict, where: tuple[str, int]) -> dict:
    instruction, response = _need(row, ("instruction", "response"), where)
    return {"prompt": _alpaca_prompt(instruction, str(row.get("context") or "")), "target": response}


def format_grammar(row: dict, where: tuple[str, int]) -> dict:
    if "sentence" in row and "input" not in row:  # jhu-clsp/jfleg: sentence + list of corrections
        corrections = row.get("corrections") or []
        if not corrections:
            raise InputError(where[0], where[1], "corrections", "no correction")
        row = {"input": row["sentence"], "target": corrections[0]}
    text, target = _need(row, ("input", "target"), where)
    return {"prompt": GRAMMAR_PROMPT.format(input=text.strip()), "target": target.strip()}


def format_samsum(row: dict, where: tuple[str, int]) -> dict:
    dialogue, summary = _need(row, ("dialogue", "summary"), where)
    return {"prompt": SAMSUM_PROMPT.format(dialogue=dialogue), "target": summary}


FORMATTERS: dict[str, Callable[[dict, tuple[str, int]], dict]] = {
    "alpaca": format_alpaca,
    "dolly": format_dolly,
    "grammar": format_grammar,
    "samsum": format_samsum,
}


def _read_local(path: Path) -> Iterable[tuple[int, dict]]:
    """Rows of a local file with their 1-based row number (CSV: header is row 1; JSON array: element index + 1)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            yield from enumerate(csv.DictReader(fh), start=2)
    elif suffix == ".jsonl":
        yield from read_jsonl_rows(path)
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InputError(path, err.lineno, None, f"invalid JSON ({err.msg})") from None
        if not isinstance(data, list):
            raise InputError(path, None, None, "expected a JSON array of records")
        yield from enumerate(data, start=1)
    else:
        raise InputError(path, None, None, "unsupported file type (use .json, .jsonl or .csv)")


def _read_hub(source: str, split: str) -> Iterable[tuple[int, dict]]:
    import datasets

    try:
        ds = datasets.load_dataset(source, split=split)
    except Exception as err:  # offline / unknown id: one clear line
        raise InputError(source, None, None, f"cannot load dataset split {split!r}: {type(err).__name__}: {err}") \
            from None
    return enumerate(ds, start=1)


def load_benign(task: str, source: str | None = None, split: str = "train", limit: int | None = None, *,
                categories: Sequence[str] | None = None,
                exclude_categories: Sequence[str] | None = None) -> list[dict]:
    """Load one benign task as ``[{"prompt", "target"}]`` in file order (``limit`` keeps the first rows).

    ``source``: a local .json/.jsonl/.csv path or a Hugging Face dataset id (default :data:`DEFAULT_SOURCES`).
    ``categories`` / ``exclude_categories`` filter Dolly rows by their ``category`` field.
    """
    task = task.lower()
    if task not in FORMATTERS:
        raise InputError(None, None, "task", f"unknown benign task {task!r}; use one of {sorted(FORMATTERS)}")
    source = source or DEFAULT_SOURCES[task]
    path = Path(source)
    is_local = path.suffix.lower() in {".json", ".jsonl", ".csv"} or path.exists()
    if is_local and not path.is_file():
        raise InputError(path, None, None, "file not found")
    rows = _read_local(path) if is_local else _read_hub(source, split)
    keep = set(categories) if categories else None
    drop = set(exclude_categories or ())
    out: list[dict] = []
    for row_no, row in rows:
        if not isinstance(row, dict):
            raise InputError(source, row_no, None, "record is not an object")
        if task == "dolly" and (keep is not None or drop):
            cat = str(row.get("category", ""))
            if (keep is not None and cat not in keep) or cat in drop:
                continue
        out.append(FORMATTERS[task](row, (source, row_no)))
        if limit is not None and len(out) >= limit:
            break
    return out
