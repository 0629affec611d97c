"""``valueharms prepare``: value distributions + value-labelled arguments -> VIM training files (stage 1 and 2).

Writes ``<out>/<distribution>/stage{1,2}_{train,valid,test}.jsonl`` and ``prepare_report.json`` atomically. A rerun
skips a distribution whose report carries the same data hash (inputs + settings), so it rewrites nothing.
Defaults are the study's files from ``valueharms data`` (stage 2 on its released argument split); every input and
setting is checked before anything is written.
"""

from __future__ import annotations

import functools
import json
import random
import warnings
from pathlib import Path
from typing import Any

from vim.data import (SPLITS, build_stage1, build_stage2, count_by, load_arguments, load_survey, split_items,
                      stratified_cap, touche_labels_path)
from valueharms.errors import InputError
from valueharms.io import atomic_write_json, sha256_file, sha256_text, write_jsonl_atomic
from valueharms.safenames import child
from valueharms.values import ValueProfile, load_distributions, read_names

#: The study's inputs as ``valueharms data`` lays them out (relative to the working directory).
STUDY_DATA = Path("data") / "original"
DEFAULT_DISTRIBUTIONS = str(STUDY_DATA / "extreme_distributions.csv")
DEFAULT_ARGUMENTS = str(STUDY_DATA / "valueEval_10.csv")
DEFAULT_SURVEY = str(STUDY_DATA / "argument_generation")
REPORT = "prepare_report.json"
FORMAT = 1


def _input_files(path: Path) -> list[Path]:
    if path.is_dir():
        return [path / "value_split" / "train.csv", path / "value_split" / "valid.csv", path / "test.csv"]
    labels = touche_labels_path(path)
    return [path, labels] if labels != path and labels.is_file() else [path]


def check_settings(threshold: float, seed: int, max_examples: int | None) -> None:
    """Settings outside their range are input errors, not silent no-ops (a threshold of 99 would make every
    argument negative)."""
    if not isinstance(threshold, (int, float)) or not 1.0 <= float(threshold) <= 6.0:
        raise InputError(None, None, "threshold", f"must be on the 1-6 value scale, got {threshold!r}")
    if max_examples is not None and max_examples < 1:
        raise InputError(None, None, "max_examples", f"must be a positive number, got {max_examples!r}")
    if not isinstance(seed, int):
        raise InputError(None, None, "seed", f"must be an integer, got {seed!r}")


def check_out_folder(out: str | Path) -> Path:
    """``--out`` must be a folder (or not exist yet): never write beside or over a file the user named."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, None, "out", "exists and is not a folder")
    return out


def require_input(path: str | Path, what: str, default: str) -> Path:
    """A missing input names the file; a missing study default also says how to get it."""
    path = Path(path)
    if not path.exists():
        hint = " (run `valueharms data` to fetch the study's inputs, or pass your own)" if str(path) == default else ""
        raise InputError(path, None, None, f"{what} not found{hint}")
    return path


def input_hashes(arguments: Path, survey: Path | None) -> list[str]:
    """sha256 of every input file (the same for all distributions of one ``prepare`` call: hash them once)."""
    files = _input_files(arguments) + (_input_files(survey) if survey is not None else [])
    for f in files:
        if not f.is_file():
            raise InputError(f, None, None, "file not found")
    return [sha256_file(f) for f in files]


def data_hash(profile: ValueProfile, arguments: Path, survey: Path | None, settings: dict[str, Any],
              file_hashes: list[str] | None = None) -> str:
    """sha256 over the input files' contents, the profile's scores and every setting that changes the output.

    ``file_hashes``: :func:`input_hashes` of ``arguments``/``survey`` when the caller already has them.
    """
    if file_hashes is None:
        file_hashes = input_hashes(arguments, survey)
    parts = {"format": FORMAT, "files": file_hashes, "scores": list(profile.scores), "settings": settings}
    return sha256_text(json.dumps(parts, sort_keys=True, default=str))


def truncation_stats(records: list[dict], tokenizer: Any, max_length: int) -> dict[str, int]:
    """What the original collator loses: prompt+target(+EOS) longer than ``max_length`` is cut from the right, so
    ``target_truncated`` examples lose the end of their target and ``target_lost`` ones (prompt alone too long) all of it."""
    cut = lost = 0
    for start in range(0, len(records), 1024):  # batched: the fast tokenizers encode lists in parallel
        chunk = records[start:start + 1024]
        prompts = tokenizer([r["prompt"] for r in chunk], add_special_tokens=True)["input_ids"]
        targets = tokenizer([" " + r["target"] for r in chunk], add_special_tokens=False)["input_ids"]
        for p, t in zip(prompts, targets):
            if len(p) + len(t) + 1 > max_length:  # + EOS
                cut += 1  # the right truncation eats the end of the target first
                lost += int(len(p) >= max_length)
    return {"examples": len(records), "target_truncated": cut, "target_lost": lost}


def prepare_distribution(profile: ValueProfile, out_dir: Path, *, arguments: str | Path,
                         survey: str | Path | None = None, threshold: float = 3.0, seed: int = 42,
                         max_examples: int | None = None, tokenizer: Any = None, max_length: int = 128,
                         stage2_column_offset_bug: bool = False, digest: str | None = None) -> dict:
    """Build and write both stages for one distribution; returns the report written to ``prepare_report.json``.

    ``digest``: this distribution's :func:`data_hash` when the caller already computed it.

    ``survey`` (stage 2) is a folder like the study's ``argument_generation`` (pre-split train/valid/test) or an
    argument file; None re-splits ``arguments`` 80/10/10 by argument with ``Random(seed)``.
    """
    check_settings(threshold, seed, max_examples)
    out_dir = Path(out_dir)
    arguments = Path(arguments)
    survey_path = Path(survey) if survey is not None else None
    settings = {"threshold": threshold, "seed": seed, "max_examples": max_examples,
                "stage2_column_offset_bug": stage2_column_offset_bug}
    digest = digest or data_hash(profile, arguments, survey_path, settings)

    args = _load_arguments_cached(arguments)
    stage1 = build_stage1(args, profile, threshold, seed)
    source = _load_survey_cached(survey_path) if survey_path is not None else args
    survey_splits = source if isinstance(source, dict) else split_items(source, random.Random(seed))
    stage2 = build_stage2(survey_splits, profile, seed, stage2_column_offset_bug)
    for split in SPLITS:
        stage1[split] = stratified_cap(stage1[split], max_examples, "polarity", seed)
        stage2[split] = stratified_cap(stage2[split], max_examples, "value", seed)

    polarity = count_by(stage1["train"] + stage1["valid"] + stage1["test"], "polarity")
    for side in ("positive", "negative"):
        if not polarity.get(side):
            warnings.warn(f"distribution {profile.name!r}: no {side} stage-1 examples at threshold {threshold}; "
                          "training on the other side only", stacklevel=2)

    report: dict[str, Any] = {
        "format": FORMAT, "distribution": profile.name, "values": profile.as_dict(), "data_hash": digest,
        "arguments": str(arguments), "survey": str(survey_path) if survey_path else None, "settings": settings,
        "counts": {
            "stage1": {s: {"total": len(stage1[s]), **count_by(stage1[s], "polarity")} for s in SPLITS},
            "stage2": {s: {"total": len(stage2[s]), "by_value": count_by(stage2[s], "value")} for s in SPLITS},
        },
    }
    if tokenizer is not None:
        report["truncation"] = {"max_length": max_length, "behaviour": "original: left-pad, right-truncate",
                                **{f"stage{st}_{s}": truncation_stats(recs[s], tokenizer, max_length)
                                   for st, recs in ((1, stage1), (2, stage2)) for s in SPLITS}}
    for st, recs in ((1, stage1), (2, stage2)):
        for s in SPLITS:
            write_jsonl_atomic(out_dir / f"stage{st}_{s}.jsonl", recs[s])
    atomic_write_json(out_dir / REPORT, report)  # written last: its presence marks a complete folder
    return report


def _stamp(path: Path) -> tuple:
    """Cache key that changes when the file (or a folder's input files) changes."""
    files = _input_files(path) if path.is_dir() else [path]
    return (str(path.resolve()),) + tuple((f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())


@functools.lru_cache(maxsize=4)
def _arguments_at(stamp: tuple) -> tuple:
    return tuple(load_arguments(stamp[0]))


@functools.lru_cache(maxsize=4)
def _survey_at(stamp: tuple) -> Any:
    return load_survey(stamp[0])


def _load_arguments_cached(path: Path) -> list:
    """Parse an argument file once per process (a sweep prepares 154 distributions from the same file)."""
    if not path.is_file():
        raise InputError(path, None, None, "file not found")
    return list(_arguments_at(_stamp(path)))


def _load_survey_cached(path: Path) -> Any:
    if not path.exists():
        raise InputError(path, None, None, "file or folder not found")
    return _survey_at(_stamp(path))


def is_prepared(out_dir: Path, digest: str) -> bool:
    """True when ``out_dir`` holds all six files and a report with this data hash."""
    report = out_dir / REPORT
    if not report.is_file() or not all((out_dir / f"stage{st}_{s}.jsonl").is_file() for st in (1, 2) for s in SPLITS):
        return False
    try:
        return json.loads(report.read_text()).get("data_hash") == digest
    except json.JSONDecodeError:
        return False


def resolve_names(names: list[str] | None) -> list[str] | None:
    """``--names``: None = every distribution; one existing file = a names file; an empty list is an error."""
    if names is None:
        return None
    if len(names) == 0:
        raise InputError(None, None, "names", "empty list of distribution names (omit --names to prepare all)")
    if len(names) == 1 and Path(names[0]).is_file():
        return read_names(names[0])
    return list(names)


def prepare(distributions: str = DEFAULT_DISTRIBUTIONS, out: str = "runs/data", names: list[str] | None = None,
            arguments: str = DEFAULT_ARGUMENTS, survey: str | None = DEFAULT_SURVEY, threshold: float = 3.0,
            seed: int = 42, max_examples: int | None = None, model: str | None = None, max_length: int = 128,
            stage2_column_offset_bug: bool = False) -> dict[str, dict]:
    """Prepare VIM training data for each value distribution (skips ones already prepared with the same inputs).

    Args:
        distributions: TSV/CSV of value distributions (name column ``Country`` + the ten values, 1-6); default the
            study's file from ``valueharms data``.
        out: output folder; each distribution goes to ``<out>/<name>/``.
        names: distribution names to prepare, or one path to a names file (one name a line); default all.
        arguments: value-labelled arguments for stage 1 (valueEval_10.csv format or a Touché23 ``arguments-*.tsv``).
        survey: stage-2 arguments: the study's ``argument_generation`` folder (default), another such folder or an
            argument file; ``null`` re-splits ``arguments`` 80/10/10 instead.
        threshold: stage-1 rule (1-6): an argument is positive when its lowest labelled value score is >= threshold.
        seed: split / rounding / sampling seed.
        max_examples: cap on examples per stage and split (stratified), for quick runs.
        model: tokenizer (alias or path) used to report how many examples exceed ``max_length``.
        max_length: token limit checked when ``model`` is given (128 in the paper, 512 for chat models).
        stage2_column_offset_bug: reproduce the released code's one-column-off value mapping in stage 2.
    """
    from valueharms.progress import progress

    check_settings(threshold, seed, max_examples)
    out_dir = check_out_folder(out)
    profiles = load_distributions(require_input(distributions, "distribution file", DEFAULT_DISTRIBUTIONS),
                                  resolve_names(names))
    arguments_path = require_input(arguments, "argument file", DEFAULT_ARGUMENTS)
    survey_path = require_input(survey, "stage-2 argument split", DEFAULT_SURVEY) if survey else None
    _load_arguments_cached(arguments_path)  # validate every input before anything is written
    if survey_path is not None:
        _load_survey_cached(survey_path)
    tokenizer = None
    if model is not None:
        from valueharms.model_loading import load_tokenizer

        tokenizer = load_tokenizer(model)
    settings = {"threshold": threshold, "seed": seed, "max_examples": max_examples,
                "stage2_column_offset_bug": stage2_column_offset_bug}
    hashes = input_hashes(arguments_path, survey_path)
    reports: dict[str, dict] = {}
    status: dict[str, str] = {}
    for name, profile in progress(profiles.items(), desc="prepare", unit="dist"):
        folder = child(out_dir, name, what="distribution name")
        digest = data_hash(profile, arguments_path, survey_path, settings, hashes)
        if is_prepared(folder, digest) and (tokenizer is None or "truncation" in json.loads((folder / REPORT).read_text())):
            reports[name] = json.loads((folder / REPORT).read_text())
            status[name] = "cached"
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reports[name] = prepare_distribution(profile, folder, arguments=arguments_path, survey=survey_path,
                                                 threshold=threshold, seed=seed, max_examples=max_examples,
                                                 tokenizer=tokenizer, max_length=max_length,
                                                 stage2_column_offset_bug=stage2_column_offset_bug, digest=digest)
        status[name] = "written" + (" (one-sided)" if caught else "")
    _print_table(reports, status)
    return reports


def _print_table(reports: dict[str, dict], status: dict[str, str]) -> None:
    header = f"{'distribution':<24} {'s1 pos':>7} {'s1 neg':>7} {'s2 train':>9} {'cut@max':>8}  status"
    print(header)
    for name, rep in reports.items():
        c1 = rep["counts"]["stage1"]
        pos = sum(c1[s].get("positive", 0) for s in SPLITS)
        neg = sum(c1[s].get("negative", 0) for s in SPLITS)
        cut = "-"
        if "truncation" in rep:
            cut = str(sum(v["target_truncated"] for k, v in rep["truncation"].items() if isinstance(v, dict)))
        print(f"{name:<24} {pos:>7} {neg:>7} {rep['counts']['stage2']['train']['total']:>9} {cut:>8}  {status[name]}")
