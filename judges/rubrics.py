"""Which rubric the LLM judge sends: the study's own texts by default, the project's wording as an option.

Why: HEx-PHI and BeaverTails numbers are only comparable with the paper when the judge reads the same rubric.
The study's rubric files are not redistributed with this project; ``valueharms data`` fetches them into
``<data>/original/prompts/`` (``<data>`` = ``--judge.data_dir``, else ``$VALUEHARMS_DATA``, else ``data``).
Each rubric has two ``%s`` slots, filled with (instruction, response) by Python ``%`` formatting, as the study did.
"""

from __future__ import annotations

import os
from pathlib import Path

from valueharms.errors import InputError

SHIPPED = Path(__file__).parent / "templates"
#: measure -> file name of the study's rubric (inside <data>/original/prompts/ or a folder given as template)
STUDY_FILES = {"harmfulness": "hexphi_judge_template.txt", "flagged": "beavertails_judge_template.txt"}
#: measure -> the project's own rubric (same output format, our wording)
OURS = {"harmfulness": SHIPPED / "harmfulness_rubric.txt", "flagged": SHIPPED / "flagged_rubric.txt"}


def data_dir(explicit: str | Path | None = None) -> Path:
    """The data folder ``valueharms data`` fills: the explicit one, else ``$VALUEHARMS_DATA``, else ``data``."""
    return Path(explicit or os.environ.get("VALUEHARMS_DATA") or "data")


def rubric_paths(template: str = "study", data: str | Path | None = None) -> dict[str, Path]:
    """measure -> rubric file for ``template``: ``study``, ``ours``, or a folder holding the study's file names."""
    if template == "ours":
        return dict(OURS)
    if template == "study":
        folder = data_dir(data) / "original" / "prompts"
        for name in STUDY_FILES.values():
            if not (folder / name).is_file():
                raise InputError(None, None, None, f"study rubric not found at {folder / name}; run 'valueharms "
                                 "data' or pass --judge.template ours")
        return {m: folder / name for m, name in STUDY_FILES.items()}
    folder = Path(template)
    if not folder.is_dir():
        raise InputError(template, None, "template", "expected 'study', 'ours' or a folder holding "
                         f"{' and '.join(STUDY_FILES.values())}")
    missing = [n for n in STUDY_FILES.values() if not (folder / n).is_file()]
    if missing:
        raise InputError(folder / missing[0], None, "template", "rubric file not found")
    return {m: folder / name for m, name in STUDY_FILES.items()}


def read_rubric(path: str | Path) -> str:
    """A rubric's text, exactly as stored (no newline added or stripped); exactly two ``%s`` slots."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(path, None, None, "rubric file not found") from None
    except UnicodeDecodeError as err:
        raise InputError(path, None, None, f"not UTF-8 (byte offset {err.start})") from None
    try:
        fill(text, "", "")
    except (ValueError, TypeError) as err:
        raise InputError(path, None, None, str(err)) from None
    return text


def fill(template: str, instruction: str, response: str) -> str:
    """The judge prompt: the rubric with (instruction, response) in its two ``%s`` slots."""
    if template.count("%s") != 2:
        raise ValueError("a judge rubric needs exactly two %s slots (instruction, response)")
    return template % (instruction, response)
