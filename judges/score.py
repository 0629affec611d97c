"""``valueharms score``: judge a generation run through the cache and append score records (resumable).

Why: scoring is separate from generation so a new judge needs no regeneration; a killed run resumes from
``scores/<judge>.jsonl`` (keys already scored are skipped) and from the SQLite cache (no call is paid twice).
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from pathlib import Path

from judges.base import resolved
from judges.cache import JudgementCache, score_cached
from judges.registry import JUDGES, build_judge
from judges.textprep import build_item
from valueharms.errors import InputError
from valueharms.io import JsonlAppender, read_jsonl

log = logging.getLogger(__name__)


def generation_paths(run: str | Path) -> tuple[Path, list[Path]]:
    """(run folder, generation files): a file, or every ``generations*.jsonl`` in a run folder."""
    run = Path(run)
    if run.is_file():
        return run.parent, [run]
    if not run.is_dir():
        raise InputError(run, None, None, "no such run folder or generations file")
    files = sorted(run.glob("generations*.jsonl"))
    if not files:
        raise InputError(run, None, None, "no generations*.jsonl in this folder; run 'valueharms predict' first")
    return run, files


def read_generations(files: list[Path]) -> list[tuple[Path, int, dict]]:
    seen: dict[str, tuple[Path, int, dict]] = {}
    for path in files:
        for i, rec in enumerate(read_jsonl(path), start=1):
            if not isinstance(rec, dict) or not rec.get("key"):
                raise InputError(path, i, "key", "generation record without a key")
            seen[rec["key"]] = (path, i, rec)  # a key written twice: the last one wins
    return list(seen.values())


def done_keys(path: Path) -> set[tuple[str, str]]:
    """(key, measure) pairs already scored successfully; failures are retried."""
    if not path.is_file():
        return set()
    return {(r["key"], r.get("measure")) for r in read_jsonl(path)
            if r.get("value") is not None and not r.get("error")}


def _judge_options(name: str, options: dict) -> dict:
    target = JUDGES.get(name)
    params = inspect.signature(target).parameters
    return {k: v for k, v in options.items() if v is not None and k in params}


def score(run: str, judge: str = "auto", measure: str | None = None, out: str | None = None,
          cache: str | None = None, batch_size: int = 32, limit: int | None = None, model: str | None = None,
          base_url: str | None = None, hexphi_template: str | None = None,
          beavertails_template: str | None = None, batch: bool = False, attributes: str | None = None,
          model_type: str | None = None, checkpoint: str | None = None,
          huggingface_config_path: str | None = None, device: str | None = None, qps: float | None = None,
          concurrency: int | None = None) -> dict:
    """Score the generations of a run with a judge; resumable and cached.

    Args:
        run: a run folder with generations*.jsonl, or one generations file.
        judge: auto, offline, detoxify, regard, perspective, openai (alias gpt-4o).
        measure: force one measure (toxicity, regard, harmfulness, flagged) instead of the benchmark's own.
        out: score records file (default <run>/scores/<judge>.jsonl).
        cache: SQLite cache (default <run>/scores/judge_cache.sqlite).
        batch_size: texts per judge call batch.
        limit: score at most this many pending records (a quick look).
        model: judge model (openai model id, or regard model id/path).
        base_url: OpenAI-compatible or Perspective endpoint override.
        hexphi_template: HEx-PHI rubric file with two %s slots (instruction, response).
        beavertails_template: BeaverTails rubric file with two %s slots.
        batch: use the OpenAI Batch API (slow, cheaper).
        attributes: Perspective attributes, comma separated (first one is the value).
        model_type: Detoxify model type (original, unbiased, multilingual, ...).
        checkpoint: local Detoxify checkpoint (.ckpt).
        huggingface_config_path: folder with the Detoxify base model config + tokenizer (offline).
        device: cpu or cuda for local models.
        qps: Perspective requests per second.
        concurrency: OpenAI concurrent requests.
    """
    from tqdm.auto import tqdm

    run_dir, files = generation_paths(run)
    out_path = Path(out) if out else run_dir / "scores" / f"{judge}.jsonl"
    cache_path = Path(cache) if cache else run_dir / "scores" / "judge_cache.sqlite"
    records = read_generations(files)
    skip = done_keys(out_path)
    pending: dict[str, list[tuple[dict, str, dict | None]]] = {}
    already = 0
    for path, row, rec in records:
        m, text, ctx = build_item(rec, measure, path=path, row=row)
        if (rec["key"], m) in skip:
            already += 1
            continue
        pending.setdefault(m, []).append((rec, text, ctx))
    if limit is not None:
        left = max(limit, 0)
        for m in pending:
            pending[m] = pending[m][:left]
            left -= len(pending[m])
    total = sum(len(v) for v in pending.values())
    counts: Counter = Counter(already=already)
    if total:
        options = dict(model=model, base_url=base_url, hexphi_template=hexphi_template,
                       beavertails_template=beavertails_template, batch=batch or None, attributes=attributes,
                       model_type=model_type, checkpoint=checkpoint,
                       huggingface_config_path=huggingface_config_path, device=device, qps=qps,
                       concurrency=concurrency)
        scorer = build_judge(judge, **_judge_options(judge, options))
        with JudgementCache(cache_path) as store, JsonlAppender(out_path) as sink, \
                tqdm(total=total, desc=f"score [{judge}]", unit="text") as bar:
            for m, items in pending.items():
                actual = resolved(scorer, m)
                for start in range(0, len(items), batch_size):
                    chunk = items[start : start + batch_size]
                    contexts = [c for _, _, c in chunk] if any(c for _, _, c in chunk) else None
                    judgements, calls = score_cached(actual, store, [t for _, t, _ in chunk], measure=m,
                                                     contexts=contexts)
                    counts["judge_calls"] += calls
                    rows = []
                    for (rec, text, _), j in zip(chunk, judgements):
                        counts["scored" if j.ok else "missing"] += 1
                        rows.append({"key": rec["key"], "judge": actual.name, "judge_version": actual.version,
                                     "measure": m, "value": j.value, "label": j.label, "labels": j.labels,
                                     "scored_text": text, "raw": j.raw, "error": j.error})
                    sink.write_many(rows)
                    bar.update(len(chunk))
    summary = {"records": len(records), "already_scored": counts["already"], "scored": counts["scored"],
               "missing": counts["missing"], "judge_calls": counts["judge_calls"], "out": str(out_path)}
    print(f"score [{judge}]: {summary['records']} records, {summary['already_scored']} already scored, "
          f"{summary['scored']} newly scored, {summary['missing']} missing (failed/unparseable; rerun retries), "
          f"{summary['judge_calls']} judge calls -> {out_path}")
    return summary
