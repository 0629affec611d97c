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
from typing import Iterable

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


def score_cached(judge, cache: JudgementCache | None, texts: list[str], *, measure: str,
                 contexts: list[dict] | None = None) -> tuple[list[Judgement], int]:
    """Score ``texts`` through ``cache``; returns judgements in order and how many were sent to the judge."""
    contexts = contexts or [None] * len(texts)
    hashes = [cache_key(t, c) for t, c in zip(texts, contexts)]
    hits = cache.get_many(judge.name, judge.version, measure, hashes) if cache is not None else {}
    todo = [i for i, h in enumerate(hashes) if h not in hits]
    # a duplicate text inside one batch is judged once
    first_of: dict[str, int] = {}
    unique = [i for i in todo if first_of.setdefault(hashes[i], i) == i]
    fresh: dict[str, Judgement] = {}
    if unique:
        sub_ctx = [contexts[i] for i in unique] if any(c is not None for c in contexts) else None
        results = judge.score([texts[i] for i in unique], measure=measure, contexts=sub_ctx)
        if len(results) != len(unique):
            raise RuntimeError(f"judge {judge.name} returned {len(results)} judgements for {len(unique)} texts")
        fresh = {hashes[i]: j for i, j in zip(unique, results)}
        if cache is not None:
            cache.put_many(judge.name, judge.version, measure, fresh.items())
    out = [hits.get(h) or fresh[h] for h in hashes]
    return out, len(unique)
