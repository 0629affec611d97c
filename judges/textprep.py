"""Turn a generation record into the exact text a judge sees; the benchmark's spec says how (why: one owner)."""

from __future__ import annotations

from benchmarks.registry import get_spec
from valueharms.errors import InputError
from valueharms.measures import get_measure


def build_item(record: dict, measure: str | None = None, *, path: object = None, row: int | None = None
               ) -> tuple[str, str, dict | None]:
    """Return ``(measure, scored_text, context)`` for one generation record.

    The measure is ``measure`` if given, else the record's own ``measure`` field, else its benchmark's.
    """
    try:
        spec = get_spec(record.get("benchmark"))
        measure = get_measure(measure or record.get("measure") or spec.measure).name
    except InputError as err:
        raise InputError(path, row, err.field, err.message) from None
    prompt, output = record.get("prompt"), record.get("output")
    if not isinstance(prompt, str) or not isinstance(output, str):
        raise InputError(path, row, "output" if isinstance(prompt, str) else "prompt", "must be a string")
    text, context = spec.scored_text(record, measure)
    return measure, text, context
