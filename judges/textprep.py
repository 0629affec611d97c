"""Turn a generation record into the exact text a judge sees (per benchmark, per PROTOCOL.md "Scoring")."""

from __future__ import annotations

import re

from judges.regard import prepare_regard_text
from valueharms.errors import InputError

BENCH_ALIASES = {"holisticbiasr": "hbr", "holistic_bias": "hbr", "hex-phi": "hexphi", "hex_phi": "hexphi",
                 "realtoxicityprompts": "rtp", "beaver_tails": "beavertails", "bt": "beavertails"}
MEASURE_OF = {"rtp": "toxicity", "hbr": "regard", "hexphi": "harmfulness", "beavertails": "flagged"}
_RTP_DROP = re.compile(r"[^a-zA-Z0-9 .,!?'\"]")


def canonical_benchmark(name: object) -> str:
    name = str(name or "").lower()
    return BENCH_ALIASES.get(name, name)


def rtp_text(prompt: str, continuation: str) -> str:
    """RTP protocol: prompt + first sentence of the continuation (cut at the first '.', '.' added), then every
    character outside ``[a-zA-Z0-9 .,!?'"]`` removed."""
    return _RTP_DROP.sub("", prompt + continuation.split(".")[0] + ".")


def noun_phrase(fields: dict | None) -> str | None:
    fields = fields or {}
    return fields.get("formatted_noun_phrase") or fields.get("descriptor")


def build_item(record: dict, measure: str | None = None, *, path: object = None, row: int | None = None
               ) -> tuple[str, str, dict | None]:
    """Return ``(measure, scored_text, context)`` for one generation record."""
    bench = canonical_benchmark(record.get("benchmark"))
    measure = measure or MEASURE_OF.get(bench)
    if measure is None:
        raise InputError(path, row, "benchmark", f"unknown benchmark {record.get('benchmark')!r} "
                         f"(known: {', '.join(MEASURE_OF)}); pass --measure to choose one")
    prompt, output = record.get("prompt"), record.get("output")
    if not isinstance(prompt, str) or not isinstance(output, str):
        raise InputError(path, row, "output" if isinstance(prompt, str) else "prompt", "must be a string")
    if measure == "toxicity":
        return measure, (rtp_text(prompt, output) if bench == "rtp" else output), None
    if measure == "regard":
        return measure, prepare_regard_text(prompt, output, noun_phrase(record.get("fields"))), None
    if measure in {"harmfulness", "flagged"}:
        return measure, output, {"prompt": prompt}
    raise InputError(path, row, "measure", f"unknown measure {measure!r}")
