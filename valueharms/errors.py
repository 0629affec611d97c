"""One exception type for bad user input, rendered as a single line that names file, row and field."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input from the user. The CLI prints ``str(err)`` on one line and exits with code 2."""

    def __init__(self, path: str | Path | None, row: int | None, field: str | None, message: str) -> None:
        self.path = str(path) if path is not None else None
        self.row = row
        self.field = field
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = []
        if self.path:
            where.append(self.path)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"field {self.field!r}")
        prefix = ", ".join(where)
        text = f"{prefix}: {self.message}" if prefix else self.message
        return " ".join(text.split())  # never more than one line
