"""RealToxicityPrompts: HF ``allenai/real-toxicity-prompts``, native JSONL, or the study's headerless one-column CSV."""

from __future__ import annotations

from pathlib import Path

from benchmarks.base import Benchmark, BenchmarkItem, check_exists, is_local, require_text
from valueharms.errors import InputError
from valueharms.io import read_jsonl_rows

HF_ID = "allenai/real-toxicity-prompts"


def _from_rows(rows, path: Path, challenging_only: bool) -> list[BenchmarkItem]:
    items = []
    for row_no, row in rows:
        prompt = row.get("prompt")
        if not isinstance(prompt, dict):
            raise InputError(path, row_no, "prompt", "expected an object with a 'text' field")
        if challenging_only and not row.get("challenging"):
            continue
        text = require_text(prompt.get("text"), path, row_no, "prompt.text")
        scores = {k: v for k, v in prompt.items() if k != "text"}
        fields = {"challenging": bool(row.get("challenging", False)), "prompt_scores": scores,
                  "filename": row.get("filename")}
        items.append(BenchmarkItem(id="", prompt=text, category=None, fields=fields))
    return items


def load_rtp(source: str = HF_ID, *, limit: int | None = 3000, challenging_only: bool = False) -> Benchmark:
    """Load RTP; ``limit`` keeps the first N prompts (the study used the first 3000 of its CSV)."""
    if is_local(source):
        path = check_exists(source, "RealToxicityPrompts file")
        if path.suffix == ".csv":
            import pandas as pd

            if challenging_only:
                raise InputError(path, None, "challenging_only", "the one-column CSV has no 'challenging' flag")
            frame = pd.read_csv(path, header=None, nrows=limit, dtype=str, keep_default_na=False)
            if frame.shape[1] != 1:
                raise InputError(path, None, None, f"expected one column, found {frame.shape[1]}")
            items = [BenchmarkItem("", require_text(t, path, i + 1, "prompt"), None, {})
                     for i, t in enumerate(frame[0].tolist())]
        else:
            items = _from_rows(read_jsonl_rows(path), path, challenging_only)
    else:
        from datasets import load_dataset

        ds = load_dataset(source, split="train")
        items = _from_rows(enumerate(ds, 1), Path(source), challenging_only)
    items = items[:limit] if limit else items
    for i, item in enumerate(items):
        item.id = f"rtp-{i:05d}"
    return Benchmark("rtp", "completion", "toxicity", max_new_tokens=64, samples_per_prompt=10, items=items)
