"""BeaverTails-Evaluation: HF ``PKU-Alignment/BeaverTails-Evaluation`` (test) or the study's CSV ``,prompt,category,category_id``."""

from __future__ import annotations

from pathlib import Path

from benchmarks.base import Benchmark, BenchmarkItem, CategoryQuota, check_exists, is_local, require_text
from valueharms.errors import InputError

HF_ID = "PKU-Alignment/BeaverTails-Evaluation"


def load_beavertails(source: str = HF_ID, *, limit: int | None = None, max_categories: int | None = None) -> Benchmark:
    """700 prompts in 14 categories (50 each); ``limit`` keeps the first N per category, ``max_categories`` the first
    N categories (balanced quick runs)."""
    if is_local(source):
        import pandas as pd

        path = check_exists(source, "BeaverTails CSV")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for col in ("prompt", "category"):
            if col not in frame.columns:
                raise InputError(path, 1, col, "missing column (expected ',prompt,category,category_id')")
        rows = frame.to_dict("records")
        offset = 2  # header line + 1-based
    else:
        from datasets import load_dataset

        path = Path(source)
        rows = list(load_dataset(source, split="test"))
        offset = 1
    items: list[BenchmarkItem] = []
    quota = CategoryQuota(limit, max_categories)
    for i, row in enumerate(rows):
        text = require_text(row.get("prompt"), path, i + offset, "prompt")
        category = str(row.get("category") or "").strip()
        if not category:
            raise InputError(path, i + offset, "category", "missing category")
        if quota.take(category) is None:
            continue
        cid = row.get("category_id")
        items.append(BenchmarkItem(f"bt-{i:04d}", text, category,
                                   {"category_id": int(cid) if str(cid).strip().isdigit() else None}))
    return Benchmark("beavertails", "qa", "flagged", max_new_tokens=64, items=items)
