"""``valueharms score``: judge a run's generations through the cache and append score records (resumable).

Why: scoring is separate from generation so a new judge needs no regeneration. Every judgement is stored as
it arrives -- in the SQLite cache first, then in ``scores/<judge>.jsonl`` -- so kill -9 or Ctrl-C loses at most
the requests in flight and a rerun pays for nothing already answered. A record is skipped only when its
``text_sha256`` equals the hash of the text the current generation gives (:func:`judges.textprep.build_item`);
a changed output is judged again (through the cache: an unchanged text costs nothing). One writer per score
file (:class:`valueharms.locking.RunLock`). A judge that covers only some measures scores those benchmarks and
names the others; ``--judge paper`` / ``auto`` pick a judge per measure, each writing its own file.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.registry import get_spec
from judges.base import Judge, Judgement, batched, resolved
from judges.cache import JudgementCache, judge_stream
from judges.registry import as_judge, expand_judge_argv
from judges.runs import GenerationRun, generation_runs, read_generations  # noqa: F401
from judges.textprep import build_item
from valueharms.errors import InputError
from valueharms.io import JsonlAppender, read_jsonl, sha256_text
from valueharms.locking import RunLock


@dataclass(frozen=True)
class Item:
    """One (generation, measure) to judge: the exact text, its context and its hash."""

    key: str
    benchmark: str
    measure: str
    text: str
    context: dict | None
    sha: str


def collect(gen_run: GenerationRun, wanted: set[str] | None, measure: str | None) -> tuple[list[Item], int]:
    """The items of one generation run (restricted to ``wanted`` benchmarks) and its record count."""
    records = read_generations(gen_run.files)
    items = []
    for path, row, rec in records:
        m, text, ctx = build_item(rec, measure, path=path, row=row)
        bench = get_spec(rec.get("benchmark")).name
        if wanted is None or bench in wanted:
            items.append(Item(rec["key"], bench, m, text, ctx, sha256_text(text)))
    return items, len(records)


def scored_hashes(path: Path) -> dict[tuple[str, str], str | None]:
    """(key, measure) -> ``text_sha256`` of its last successful record (None for records from before hashes)."""
    if not path.is_file():
        return {}
    return {(r["key"], r.get("measure")): r.get("text_sha256") for r in read_jsonl(path)
            if r.get("value") is not None and not r.get("error") and "key" in r}


def score_record(item: Item, judge: Any, judgement: Judgement) -> dict:
    return {"key": item.key, "judge": judge.name, "judge_version": judge.version, "measure": item.measure,
            "value": judgement.value, "label": judgement.label, "labels": judgement.labels,
            "scored_text": item.text, "text_sha256": item.sha, "raw": judgement.raw, "error": judgement.error}


def judge_items(judge: Any, store: JudgementCache, sink: JsonlAppender, items: list[Item], measure: str,
                batch_size: int, bar: Any) -> Counter:
    """Judge ``items`` chunk by chunk; each paid answer is written as soon as it arrives (after the cache)."""
    counts: Counter = Counter()
    streaming = hasattr(judge, "iter_score")
    for chunk in batched(items, batch_size):
        contexts = [i.context for i in chunk] if any(i.context for i in chunk) else None
        rows: list[dict] = []
        for indices, judgement, fresh in judge_stream(judge, store, [i.text for i in chunk], measure=measure,
                                                      contexts=contexts):
            counts["judge_calls"] += fresh
            counts["scored" if judgement.ok else "missing"] += len(indices)
            rows += [score_record(chunk[k], judge, judgement) for k in indices]
            if fresh and streaming:  # a paid answer reaches the file before the next one is awaited
                sink.write_many(rows)
                rows = []
            bar.update(len(indices))
        sink.write_many(rows)
    return counts


def _pending(items: list[Item], paths: dict[str, Path], budget: list[int | None]) -> tuple[dict, Counter]:
    """Items whose stored hash differs from the current text's, grouped by measure, within the budget."""
    counts: Counter = Counter()
    done = {p: scored_hashes(p) for p in set(paths.values())}
    pending: dict[str, list[Item]] = {}
    for item in items:
        previous = done[paths[item.measure]].get((item.key, item.measure), "")
        if previous == item.sha:
            counts["already"] += 1
            continue
        if budget[0] is not None:
            if budget[0] <= 0:
                continue
            budget[0] -= 1
        counts["stale"] += previous != ""
        pending.setdefault(item.measure, []).append(item)
    return pending, counts


def score_run(gen_run: GenerationRun, items: list[Item], judges: dict[str, Any], out: Path | None,
              cache: Path | None, batch_size: int, budget: list[int | None]) -> Counter:
    """Score one generation run folder under its score files' locks."""
    from valueharms.progress import progress

    paths = {m: out or gen_run.folder / "scores" / f"{j.name}.jsonl" for m, j in judges.items()}
    with ExitStack() as stack:
        for path in sorted(set(paths.values())):
            stack.enter_context(RunLock(path, what="score"))
        pending, counts = _pending([i for i in items if i.measure in judges], paths, budget)
        total = sum(len(v) for v in pending.values())
        if not total:
            return counts
        store = stack.enter_context(JudgementCache(cache or gen_run.folder / "scores" / "judge_cache.sqlite"))
        sinks = {p: stack.enter_context(JsonlAppender(p)) for p in {paths[m] for m in pending}}
        names = ",".join(sorted({judges[m].name for m in pending}))
        bar = stack.enter_context(progress(total=total, desc=f"score [{names}] {gen_run.folder.name}", unit="text"))
        for m, todo in pending.items():
            counts += judge_items(judges[m], store, sinks[paths[m]], todo, m, batch_size, bar)
    return counts


def _judges_for(scorer: Any, items: list[Item]) -> tuple[dict[str, Any], list[str]]:
    """measure -> the judge that really scores it (built now, before anything is written); and the benchmarks
    this judge cannot score, in the run's order."""
    judges: dict[str, Any] = {}
    unscored: list[str] = []
    for item in items:
        if item.measure in judges:
            continue
        if item.measure in scorer.measures:
            judges[item.measure] = resolved(scorer, item.measure)
        elif item.benchmark not in unscored:
            unscored.append(item.benchmark)
    return judges, unscored


def _wanted(benchmarks: list[str] | None) -> set[str] | None:
    if benchmarks is None:
        return None
    if not benchmarks:
        raise InputError(None, None, "benchmarks", "empty list; leave --benchmarks out to score every benchmark")
    return {get_spec(b).name for b in benchmarks}


def score(run: str, judge: Judge = "auto", benchmarks: list[str] | None = None, measure: str | None = None,
          out: str | None = None, cache: str | None = None, batch_size: int = 32, limit: int | None = None) -> dict:
    """Score a run's generations with a judge; cached, resumable, one writer per score file.

    Args:
        run: a study folder (generations/*/), one generation run folder, or one generations file.
        judge: a judge name -- auto (best local judge per measure), paper (the study's judge per measure),
            offline, detoxify, regard, perspective, openai (alias gpt-4o) -- or a class path. Its own options
            follow as --judge.OPTION VALUE; 'valueharms score --judge.help NAME' lists them.
        benchmarks: score only these benchmarks, e.g. '[hexphi, beavertails]' (default: all in the run).
        measure: force one measure (toxicity, regard, harmfulness, flagged) instead of each benchmark's own.
        out: score records file (default <generation run>/scores/<judge>.jsonl; one judge, one run only).
        cache: SQLite judgement cache (default <generation run>/scores/judge_cache.sqlite).
        batch_size: texts per judge batch.
        limit: score at most this many pending records (a quick look).
    """
    scorer = as_judge(judge)
    wanted = _wanted(benchmarks)
    if batch_size < 1:
        raise InputError(None, None, "batch_size", "must be at least 1")
    runs = generation_runs(run)
    out_path = _check_out(out, len(runs))
    collected = [(g, *collect(g, wanted, measure)) for g in runs]
    items = [i for _, its, _ in collected for i in its]
    if not items:
        raise InputError(run, None, "benchmarks", f"no generations of {', '.join(sorted(wanted or []))} in this run")
    judges, unscored = _judges_for(scorer, items)
    if not judges:
        raise InputError(run, None, "judge", f"judge {scorer.name!r} scores {', '.join(scorer.measures)}; this run "
                         f"has none of them ({', '.join(unscored)}); try --judge paper or --judge auto")
    if out_path and len({j.name for j in judges.values()}) > 1:
        raise InputError(out, None, "out", "one file cannot hold several judges' scores; drop --out")
    if unscored:
        print(f"{', '.join(unscored)}: not scored by {scorer.name} (it scores {', '.join(scorer.measures)}); "
              "--judge paper or auto score every benchmark")
    budget: list[int | None] = [limit]
    counts: Counter = Counter()
    for gen_run, its, _ in collected:
        counts += score_run(gen_run, its, judges, out_path, Path(cache) if cache else None, batch_size, budget)
    return _summary(scorer, judges, runs, out_path, sum(n for *_, n in collected), counts, unscored)


score.cli_argv = expand_judge_argv  # type: ignore[attr-defined]  # '--judge NAME' -> the judge's class path


def _check_out(out: str | None, n_runs: int) -> Path | None:
    if out is None:
        return None
    if n_runs > 1:
        raise InputError(out, None, "out", "a study folder has one score file per generation run; drop --out")
    if Path(out).is_dir():
        raise InputError(out, None, "out", "is a folder; --out names the score records file")
    return Path(out)


def _summary(scorer: Any, judges: dict[str, Any], runs: list[GenerationRun], out: Path | None, records: int,
             counts: Counter, unscored: list[str]) -> dict:
    names = sorted({j.name for j in judges.values()})
    files = [str(out)] if out else [str(g.folder / "scores" / f"{n}.jsonl") for g in runs for n in names]
    summary = {"records": records, "already_scored": counts["already"], "scored": counts["scored"],
               "missing": counts["missing"], "stale": counts["stale"], "judge_calls": counts["judge_calls"],
               "judges": {m: j.name for m, j in judges.items()}, "not_scored": unscored, "out": files}
    print(f"score [{scorer.name}]: {records} records, {summary['already_scored']} already scored, "
          f"{summary['scored']} newly scored, {summary['missing']} missing (failed/unparseable; rerun retries), "
          f"{summary['stale']} re-judged because their text changed, {summary['judge_calls']} judge calls "
          f"-> {', '.join(files)}")
    return summary
