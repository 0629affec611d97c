"""SQLite judgement cache keyed by (judge, judge_version, measure, sha256(text + context)).

Why: judge calls cost money and quota; a rerun or a crashed run must not pay twice. WAL mode and a single
writing connection guarded by a lock avoid "database is locked" (HELM #1914). Only successful judgements are
stored, so failures are retried on the next run. Keys are never part of any stored field.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Iterator

from judges.base import Judgement
from valueharms.io import sha256_text


def cache_key(text: str, context: dict | None = None) -> str:
    payload = json.dumps({"text": text, "context": context or {}}, sort_keys=True, ensure_ascii=False)
    return sha256_text(payload)


class JudgementCache:
    """A process-local cache file; one connection, one writer (a lock serialises threads)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS judgements (judge TEXT, judge_version TEXT, measure TEXT, text_hash TEXT,"
            " judgement TEXT NOT NULL, PRIMARY KEY (judge, judge_version, measure, text_hash))"
        )
        self._conn.commit()

    def get_many(self, judge: str, version: str, measure: str, hashes: Iterable[str]) -> dict[str, Judgement]:
        hashes = list(dict.fromkeys(hashes))
        found: dict[str, Judgement] = {}
        with self._lock:
            for start in range(0, len(hashes), 500):
                chunk = hashes[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT text_hash, judgement FROM judgements WHERE judge=? AND judge_version=? AND measure=?"
                    f" AND text_hash IN ({marks})",
                    [judge, version, measure, *chunk],
                ).fetchall()
                found.update({h: Judgement.from_dict(json.loads(j)) for h, j in rows})
        return found

    def put_many(self, judge: str, version: str, measure: str, items: Iterable[tuple[str, Judgement]]) -> int:
        """Store successful judgements; failed ones are skipped so a rerun retries them. Returns rows stored."""
        rows = [
            (judge, version, measure, h, json.dumps(j.to_dict(), ensure_ascii=False)) for h, j in items if j.ok
        ]
        if rows:
            with self._lock:
                self._conn.executemany("INSERT OR REPLACE INTO judgements VALUES (?,?,?,?,?)", rows)
                self._conn.commit()
        return len(rows)

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "JudgementCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def judge_stream(judge, cache: JudgementCache | None, texts: list[str], *, measure: str,
                 contexts: list[dict] | None = None) -> Iterator[tuple[list[int], Judgement, bool]]:
    """Judge ``texts`` through ``cache``, yielding ``(indices, judgement, fresh)`` as each becomes known.

    Cache hits come first; each distinct text is judged once (``indices`` are every position holding it).
    A fresh judgement is stored in the cache BEFORE it is yielded, so a caller that writes it next loses
    nothing paid when killed in between (the rerun finds it in the cache). Judges with ``iter_score`` give
    answers one by one as they arrive; others answer the whole list at once.
    """
    contexts = list(contexts) if contexts else [None] * len(texts)
    hashes = [cache_key(t, c) for t, c in zip(texts, contexts)]
    hits = cache.get_many(judge.name, judge.version, measure, hashes) if cache is not None else {}
    positions: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        positions.setdefault(h, []).append(i)
    for h, idx in positions.items():
        if h in hits:
            yield idx, hits[h], False
    unique = [h for h in positions if h not in hits]
    if not unique:
        return
    sub_texts = [texts[positions[h][0]] for h in unique]
    sub_ctx = [contexts[positions[h][0]] for h in unique] if any(c is not None for c in contexts) else None
    if hasattr(judge, "iter_score"):
        for k, judgement in judge.iter_score(sub_texts, measure=measure, contexts=sub_ctx):
            if cache is not None:
                cache.put_many(judge.name, judge.version, measure, [(unique[k], judgement)])
            yield positions[unique[k]], judgement, True
        return
    results = judge.score(sub_texts, measure=measure, contexts=sub_ctx)
    if len(results) != len(unique):
        raise RuntimeError(f"judge {judge.name} returned {len(results)} judgements for {len(unique)} texts")
    if cache is not None:
        cache.put_many(judge.name, judge.version, measure, zip(unique, results))
    for h, judgement in zip(unique, results):
        yield positions[h], judgement, True


def score_cached(judge, cache: JudgementCache | None, texts: list[str], *, measure: str,
                 contexts: list[dict] | None = None) -> tuple[list[Judgement], int]:
    """Score ``texts`` through ``cache``; returns judgements in order and how many were sent to the judge."""
    out: list[Judgement | None] = [None] * len(texts)
    calls = 0
    for indices, judgement, fresh in judge_stream(judge, cache, texts, measure=measure, contexts=contexts):
        calls += fresh
        for i in indices:
            out[i] = judgement
    return out, calls  # type: ignore[return-value]
