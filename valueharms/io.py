"""Crash-safe file helpers: atomic writes, append-only JSONL that never leaves a torn line, content hashes."""

from __future__ import annotations

import csv
import filecmp
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from valueharms.errors import InputError


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file + rename, so readers never see half a file."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``), else set-and-restore."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file + fsync + rename (the temp file is removed on any failure).

    ``mkstemp`` creates 0600 files; the result gets the mode a plain ``open`` would give (0666 minus the umask), so
    collaborators on a shared cluster can read results under the usual umask 022.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl_atomic(path: str | Path, records: Iterable[dict]) -> Path:
    """Write a whole JSONL file atomically (for derived files that are rebuilt, not appended)."""
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_jsonl(path: str | Path, *, strict: bool = False) -> Iterator[dict]:
    """Yield the JSON objects of a JSONL file.

    A torn last line (a crash mid-write, even mid-character) is skipped unless ``strict``; any other bad line
    (invalid UTF-8 or JSON, not an object) is an :class:`InputError` naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, None, "file not found")
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    # split on "\n" only: U+2028 inside a JSON string is no line break
    lines = decode_utf8(data[:cut], path).split("\n")[:-1] if cut else []
    for i, line in enumerate(lines, start=1):
        if line.strip():
            yield _json_object(line, path, i)
    tail = data[cut:]
    if tail.strip():
        try:
            yield _json_object(decode_utf8(tail, path, len(lines) + 1, cut), path, len(lines) + 1)
        except InputError:
            if strict:
                raise


def _json_object(line: str, path: Path, row: int) -> dict:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as err:
        raise InputError(path, row, None, f"invalid JSON line ({getattr(err, 'msg', 'nested too deeply')})") from None
    if not isinstance(record, dict):
        raise InputError(path, row, None, "a line must be a JSON object")
    return record


def read_jsonl_rows(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Rows of a JSONL file with 1-based line numbers; a bad line raises InputError naming file + row.

    The strict reader for files a user supplies: every line must be a JSON object, none may be torn.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, None, "file not found")
    for lineno, line in iter_lines_checked(path):
        if line.strip():
            yield lineno, _json_object(line, path, lineno)


class JsonlAppender:
    """Append records to a JSONL file, one whole line per write, flushed and fsynced.

    On open it truncates a torn trailing line left by a crash, so a resumed run never
    glues a new record onto half an old one.
    """

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fh = self.path.open("a", encoding="utf-8")
        self._fsync = fsync

    def write(self, record: dict) -> None:
        self.write_many([record])

    def write_many(self, records: Iterable[dict]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if not data:
            return
        self._fh.write(data)
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair_torn_tail(path: str | Path) -> None:
    """Cut a JSONL file back to its last complete line (no-op if the file is missing or whole)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        fh.seek(cut)
        fh.truncate()


def decode_utf8(data: bytes, path: str | Path, first_line: int = 1, base_offset: int = 0) -> str:
    """Decode UTF-8 (a leading BOM dropped); an invalid byte is one :class:`InputError` naming line and byte offset.

    Why: a ``UnicodeDecodeError`` traceback tells a user nothing; the offset lets them find the bad byte
    (e.g. a Latin-1 export) with ``xxd -s OFFSET``.
    """
    skip = 3 if base_offset == 0 and data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        at = err.start + skip
        line = first_line + data.count(b"\n", 0, at)
        raise InputError(path, line, None, f"not UTF-8: byte 0x{data[at]:02x} at byte offset {base_offset + at} "
                         "(save the file as UTF-8)") from None


def read_text_checked(path: str | Path, what: str = "file") -> str:
    """The whole file as UTF-8 text; missing file or invalid byte -> one-line :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, None, f"{what} is not a file" if path.exists() else f"{what} not found")
    return decode_utf8(path.read_bytes(), path)


def iter_lines_checked(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file, streamed; a bad byte names its line and byte offset."""
    path = Path(path)
    offset = 0
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            yield lineno, decode_utf8(raw, path, lineno, offset)
            offset += len(raw)


def read_csv_frame(path: str | Path, **read_csv_options: Any) -> Any:
    """``pandas.read_csv`` for a file a user supplies: invalid UTF-8 (with the byte offset), an empty file or a
    malformed row is one :class:`InputError`, never a pandas or codec traceback."""
    import pandas as pd

    path = Path(path)
    text = read_text_checked(path)
    if not text.strip():
        raise InputError(path, 1, None, "empty file")
    try:
        return pd.read_csv(io.StringIO(text), **read_csv_options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(path, None, None, f"not a readable CSV file ({first[:160]})") from None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def same_input_path(old: Any, new: Any) -> bool:
    """True when two spellings name one existing input (``samples/x.tsv`` and ``/repo/samples/x.tsv``), or two
    files with the same bytes: a config rewritten with absolute paths must not look like other training data."""
    if not (isinstance(old, str) and isinstance(new, str)):
        return False
    a, b = Path(old).expanduser(), Path(new).expanduser()
    if not (a.exists() and b.exists()):
        return False
    if a.resolve() == b.resolve():
        return True
    return a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)
