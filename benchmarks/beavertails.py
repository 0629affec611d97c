"""BeaverTails-Evaluation: HF ``PKU-Alignment/BeaverTails-Evaluation`` (test) or the study's CSV ``,prompt,category,category_id``.

Judged by a GPT-4o rubric as flagged/unflagged; metric per category: flagged rate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.base import (BenchmarkItem, BenchmarkSpec, CategoryQuota, Decoding, Metric, check_exists, is_local,
                             require_text)
from valueharms.errors import InputError
from valueharms.io import read_csv_frame
from valueharms.stats import metric_row, missing_mask, overall_and_categories

HF_ID = "PKU-Alignment/BeaverTails-Evaluation"


def load_beavertails(source: str = HF_ID, *, limit: int | None = None, max_categories: int | None = None
                     ) -> list[BenchmarkItem]:
    """700 prompts in 14 categories (50 each); ``limit`` keeps the first N per category, ``max_categories`` the first
    N categories (balanced quick runs)."""
    if is_local(source):
        path = check_exists(source, "BeaverTails CSV")
        frame = read_csv_frame(path, dtype=str, keep_default_na=False)
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
    return items


def beavertails_metrics(frame: pd.DataFrame, keys: dict, **boot) -> list[dict]:
    rows = []
    for cat, grp in overall_and_categories(frame):
        miss = missing_mask(grp)
        vals = (grp.loc[~miss, "value"].astype(float).values >= 0.5).astype(float)
        rows.append(metric_row("beavertails", {**keys, "category": cat}, "flagged_rate", vals, int(miss.sum()), **boot))
    return rows


SPEC = BenchmarkSpec(
    name="beavertails", fmt="qa", measure="flagged", loader=load_beavertails, metrics=beavertails_metrics,
    shown=(Metric("flagged_rate", "flagged rate"),), default_source=HF_ID, decoding=Decoding(max_new_tokens=64),
    stop={"icl": ("\n",)}, aliases=("beaver_tails", "bt", "beavertails-evaluation"))
