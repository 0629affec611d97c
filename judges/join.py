"""The one reader of a scored run: generation records joined with judges' score records.

Why one: metrics, analysis and the report must agree on what was judged. A score record belongs to a generation
only when it judged that generation's CURRENT text: its ``text_sha256`` equals the hash of the text
:func:`judges.textprep.build_item` gives for the record (older records without the hash are compared by their
``scored_text``). Any other record is *stale* (the output or the text rule changed since it was judged): it is
never joined, and its generation counts as missing until ``valueharms score`` re-judges it.

Which judge: a name, ``auto`` (per measure, the most preferred judge with scores in the run,
:data:`judges.registry.PREFERENCE`) or ``paper`` (the paper's judge per measure,
:data:`judges.registry.PAPER`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.registry import get_spec
from judges.registry import PREFERENCE, PAPER, canonical_judge
from judges.runs import generation_runs, read_generations
from judges.textprep import build_item
from valueharms.errors import InputError
from valueharms.io import read_jsonl, sha256_text
from valueharms.measures import get_measure

GEN_REQUIRED = ("key", "benchmark", "prompt_id", "condition", "condition_kind")
SCORE_COLUMNS = ["run_name", "key", "measure", "judge", "judge_version", "value", "label", "error", "scored_text"]
JOIN = ["run_name", "key", "measure", "judge"]
NOT_SCORED = "not scored"
STALE = "stale score (text changed since judged; rerun 'valueharms score')"
DEFAULTS = (("mitigation", "none"), ("distribution", None), ("values", None), ("sample_index", 0), ("fields", None),
            ("suppressed_values", None), ("base_model", None), ("adapter", None))


def generation_files(run: str | Path) -> list[Path]:
    """Every generation file of a run (empty when there is none yet)."""
    try:
        return [p for g in generation_runs(run) for p in g.files]
    except InputError:
        return []


def study_root(run: str | Path) -> Path:
    """The study folder (holding ``adapters/``, ``data/``, ``generations/``) of a study or generation run path."""
    run = Path(run)
    folder = run.parent if run.is_file() else run
    return folder.parent.parent if folder.parent.name == "generations" else folder


@dataclass
class ScoredRun:
    """A run read once: every generation, the score records that match its current text, and the stale ones."""

    path: Path
    generations: pd.DataFrame  # one row per (run_name, key); ``measure``, ``judged_text``, ``expected_sha256``
    scores: pd.DataFrame  # matched records of every judge, the last per (run_name, key, measure, judge)
    stale: pd.DataFrame  # (run_name, key, measure, judge) whose only records judged another text

    def judges_for(self, measure: str) -> list[str]:
        return sorted(set(self.scores.loc[self.scores["measure"] == measure, "judge"]))

    @property
    def all_judges(self) -> list[str]:
        return sorted(set(self.scores["judge"]) | set(self.stale["judge"]))


def _generation_rows(folder: Path, files: tuple[Path, ...]) -> list[dict]:
    rows = []
    for path, row_no, rec in read_generations(files):
        for field in GEN_REQUIRED:
            if field not in rec:
                raise InputError(path, row_no, field, "generation record lacks this field")
        measure, text, _ = build_item(rec, path=path, row=row_no)
        row = dict(rec)
        row.update(run_name=folder.name, benchmark=get_spec(rec["benchmark"]).name, measure=measure,
                   judged_text=text, expected_sha256=sha256_text(text), item_category=rec.get("category") or None)
        for name, value in (rec.get("fields") or {}).items():
            row.setdefault(name, value)
        rows.append(row)
    return rows


def _score_rows(folder: Path) -> list[dict]:
    rows = []
    for path in sorted((folder / "scores").glob("*.jsonl")):
        for row_no, rec in enumerate(read_jsonl(path), start=1):
            if not isinstance(rec, dict) or "key" not in rec:
                raise InputError(path, row_no, "key", "score record without a key")
            rows.append({"run_name": folder.name, "key": rec["key"], "measure": rec.get("measure"),
                         "judge": canonical_judge(rec.get("judge") or path.stem),
                         **{c: rec.get(c) for c in ("judge_version", "value", "label", "error", "scored_text",
                                                     "text_sha256")}})
    return rows


def read_run(run: str | Path) -> ScoredRun:
    """Read every generation and score record of a run and split the scores into matched and stale."""
    gens, scores = [], []
    for g in generation_runs(run):
        gens += _generation_rows(g.folder, g.files)
        scores += _score_rows(g.folder)
    if not gens:
        raise InputError(run, None, None, "the run holds no generation records; run 'valueharms predict' first")
    generations = pd.DataFrame(gens).drop_duplicates(["run_name", "key"], keep="last").reset_index(drop=True)
    for column, default in DEFAULTS:
        if column not in generations:
            generations[column] = default
    generations["mitigation"] = generations["mitigation"].fillna("none")
    recs = pd.DataFrame(scores, columns=[*SCORE_COLUMNS, "text_sha256"])
    recs = recs.merge(generations[["run_name", "key", "measure", "judged_text", "expected_sha256"]],
                      on=["run_name", "key", "measure"], how="inner")
    by_hash = recs["text_sha256"].notna()
    matched = (by_hash & (recs["text_sha256"] == recs["expected_sha256"])) | (
        ~by_hash & (recs["scored_text"] == recs["judged_text"]))
    good = recs[matched].drop_duplicates(JOIN, keep="last")[SCORE_COLUMNS].reset_index(drop=True)
    good["value"] = pd.to_numeric(good["value"], errors="coerce")
    stale = recs[~matched][JOIN].drop_duplicates()
    stale = stale.merge(good[JOIN], on=JOIN, how="left", indicator=True)
    stale = stale[stale["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)
    return ScoredRun(Path(run), generations, good, stale)


def choose_judges(scored: ScoredRun, judge: str = "auto") -> dict[str, str | None]:
    """measure -> the judge whose scores are used (None: no judge has current scores for that measure)."""
    measures = sorted(set(scored.generations["measure"]))
    found = scored.all_judges
    if not found:
        raise InputError(scored.path, None, "judge", "no score records under scores/; run 'valueharms score RUN' first")
    if judge == "paper":
        chosen: dict[str, str | None] = {m: PAPER.get(get_measure(m).name) for m in measures}
        lacking = [f"{j or 'no paper judge'} for {m}" for m, j in chosen.items() if j not in scored.judges_for(m)]
        if lacking:
            raise InputError(scored.path, None, "judge", f"--judge paper needs scores from {', '.join(lacking)}; "
                             "run 'valueharms score RUN --judge paper' first")
        return chosen
    if judge == "auto":
        chosen = {}
        for m in measures:
            have = scored.judges_for(m)
            chosen[m] = next((j for j in PREFERENCE if j in have), have[0] if have else None)
        if not any(chosen.values()):
            raise InputError(scored.path, None, "judge", "every score record is stale (texts changed since they were "
                             "judged); rerun 'valueharms score RUN'")
        return chosen
    name = canonical_judge(judge)
    if name not in found:
        raise InputError(scored.path, None, "judge", f"no scores from judge {judge!r} (found: {', '.join(found)}); "
                         f"run 'valueharms score RUN --judge {judge}' first")
    return {m: name for m in measures}


def judge_label(chosen: dict[str, str | None]) -> str:
    """One judge name when every measure uses it, else ``measure: judge`` pairs."""
    names = {j for j in chosen.values() if j}
    if len(names) == 1 and all(chosen.values()):
        return names.pop()
    return ", ".join(f"{m}: {j or 'none'}" for m, j in sorted(chosen.items()))


def load_run(run: str | Path, judge: str = "auto", *, scored: ScoredRun | None = None) -> pd.DataFrame:
    """One row per generation: its fields (``fields`` also flattened: axis, descriptor, ...), ``measure``, the chosen
    ``judge`` and its ``value, label, error, judge_version, scored_text``, the analysis ``category`` (the item's own,
    else the benchmark's category field, else ``all``), ``item_category`` (the item's own or None) and ``harm``.

    A generation without a current score from its measure's judge has ``value`` NaN and ``error`` "not scored" or
    stale: it is counted as missing, never read as 0. ``frame.attrs``: ``judges`` (measure -> judge), ``judge``.
    """
    scored = read_run(run) if scored is None else scored
    chosen = choose_judges(scored, judge)
    gen = scored.generations.assign(judge=scored.generations["measure"].map(chosen))
    merged = gen.merge(scored.scores, on=JOIN, how="left", indicator=True)
    unscored = merged["_merge"] == "left_only"
    stale = merged[JOIN].merge(scored.stale.assign(_stale=True), on=JOIN, how="left")["_stale"].fillna(False).to_numpy()
    merged.loc[unscored, "error"] = NOT_SCORED
    merged.loc[unscored & stale.astype(bool), "error"] = STALE
    frame = merged.drop(columns="_merge")
    frame["category"] = [get_spec(b).category_of(c, f) for b, c, f in
                         zip(frame["benchmark"], frame["category"] if "category" in frame else [None] * len(frame),
                             frame["fields"])]
    frame["harm"] = [get_measure(m).harm(v, lab) if not isinstance(e, str) else float("nan")
                     for m, v, lab, e in zip(frame["measure"], frame["value"], frame["label"], frame["error"])]
    frame.attrs["judges"] = dict(chosen)
    frame.attrs["judge"] = judge_label(chosen)
    return frame
