"""Names that become file or folder names (distributions, adapters, runs) must stay inside their parent folder.

Why: a distribution named ``../../x`` or ``/etc/x`` would make ``prepare``/``sweep``/``fit`` write outside ``--out``.
One check, used wherever a user-supplied name is joined to a path.
"""

from __future__ import annotations

import os
from pathlib import Path

from valueharms.errors import InputError

_SEPARATORS = {"/", "\\"} | {s for s in (os.sep, os.altsep) if s}


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a file name, or None when it can."""
    if not isinstance(name, str):
        return f"must be text, got {type(name).__name__}"
    if not name.strip():
        return "is empty"
    if name != name.strip():
        return "has leading or trailing spaces"
    if name in (".", ".."):
        return f"{name!r} is not a name"
    if any(sep in name for sep in _SEPARATORS):
        return "contains a path separator"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "contains a control character"
    if Path(name).is_absolute() or name.startswith("~"):
        return "looks like a path"
    if len(name.encode("utf-8")) > 200:
        return "is longer than 200 bytes"
    return None


def check_name(name: object, *, what: str = "name", path: str | Path | None = None, row: int | None = None,
               field: str | None = None) -> str:
    """``name`` unchanged when it is safe as one path component; otherwise a one-line :class:`InputError`."""
    problem = name_problem(name)
    if problem is not None:
        raise InputError(path, row, field or what, f"{what} {name!r} {problem} (it is used as a folder name)")
    return name  # type: ignore[return-value]


def child(parent: str | Path, name: str, *, what: str = "name") -> Path:
    """``parent / name`` after :func:`check_name` (the joined path cannot leave ``parent``)."""
    return Path(parent) / check_name(name, what=what)
