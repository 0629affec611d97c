"""Toxicity audit of the VIM training targets (paper: 5 of 8K+ samples above 0.5, none above 0.7).

Why: if value-aligned models turn harmful, one must rule out that the training data itself is toxic.
The audit reads the ``target`` of every example in ``<data>/<distribution>/stage{1,2}_<split>.jsonl``,
judges each *unique* target once (any judge in the registry, through the same SQLite cache ``score``
uses), and reports counts above ``threshold`` and above 0.7, the most toxic targets, and a histogram.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.paper import AUDIT
from judges.base import Judge
from judges.registry import as_judge, expand_judge_argv
from valueharms.errors import InputError
from valueharms.io import atomic_write_json, atomic_write_text, read_jsonl
from valueharms.progress import progress


def training_targets(data: str | Path, splits: str = "train") -> pd.DataFrame:
    """One row per unique target text: text, how many examples use it, and the files it came from."""
    data = Path(data)
    wanted = ["train", "valid", "test"] if splits == "all" else [s.strip() for s in splits.split(",") if s.strip()]
    files = sorted(p for s in wanted for p in data.rglob(f"stage*_{s}.jsonl"))
    if not files:
        raise InputError(data, None, None, f"no stage*_{{{','.join(wanted)}}}.jsonl files; run 'valueharms prepare' first")
    counts: dict[str, int] = {}
    where: dict[str, str] = {}
    for path in files:
        for row_no, rec in enumerate(read_jsonl(path), start=1):
            target = rec.get("target")
            if not isinstance(target, str):
                raise InputError(path, row_no, "target", "training example without a text target")
            counts[target] = counts.get(target, 0) + 1
            where.setdefault(target, str(path.relative_to(data)))
    return pd.DataFrame({"text": list(counts), "examples": list(counts.values()), "first_file": [where[t] for t in counts]})


def _plot(scores: np.ndarray, threshold: float, path: Path, judge: str) -> Path:
    from analysis.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.hist(scores[~np.isnan(scores)], bins=np.linspace(0, 1, 41), color="#4C72B0")
    ax.set_yscale("log")
    for t, style in ((threshold, "--"), (0.7, ":")):
        ax.axvline(t, color="red", ls=style, lw=1, label=f"{t:g}")
    ax.set_xlabel(f"toxicity ({judge})")
    ax.set_ylabel("unique training targets (log)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def data_folder(run: str | Path) -> Path:
    """The ``prepare`` output of a run: ``run`` itself when it holds ``*/stage*_*.jsonl``, else ``<study>/data``."""
    from judges.join import study_root

    path = Path(run)
    if path.is_dir() and next(path.glob("*/stage*_*.jsonl"), None) is not None:
        return path
    return study_root(path) / "data"


def audit(run: str, judge: Judge = "auto", threshold: float = 0.5, out: str | None = None, splits: str = "train",
          cache: str | None = None, batch_size: int = 256, top: int = 20) -> dict:
    """Judge the toxicity of every VIM training target and count those above ``threshold`` and 0.7.

    Args:
        run: the study folder (its ``data/`` is audited), a generation run folder inside it, or the ``prepare``
            output folder itself (``<distribution>/stage{1,2}_<split>.jsonl``).
        judge: any judge that scores toxicity (auto, offline, detoxify, perspective, ...); its options follow as
            --judge.OPTION VALUE ('valueharms audit --judge.help NAME' lists them).
        threshold: the main cut-off (the paper uses 0.5; 0.7 is always reported too).
        out: output folder (default: ``<study>/report``).
        splits: comma-separated splits to audit (train, valid, test) or ``all``.
        cache: judge cache (default ``<data>/judge_cache.sqlite``).
        batch_size: texts per judge call.
        top: how many of the most toxic targets to list.
    """
    from judges.base import resolved
    from judges.cache import JudgementCache, score_cached

    data_dir = data_folder(run)
    out_dir = Path(out) if out else data_dir.parent / "report"
    table = training_targets(data_dir, splits)
    scorer = as_judge(judge)
    actual = resolved(scorer, "toxicity")
    texts = table["text"].tolist()
    values: list[float | None] = []
    errors = 0
    with JudgementCache(Path(cache) if cache else data_dir / "judge_cache.sqlite") as store, \
            progress(total=len(texts), desc=f"audit [{actual.name}]", unit="text") as bar:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            judgements, _ = score_cached(actual, store, chunk, measure="toxicity")
            for j in judgements:
                values.append(j.value if j.ok else None)
                errors += not j.ok
            bar.update(len(chunk))
    table["toxicity"] = pd.to_numeric(pd.Series(values, dtype="float64"), errors="coerce")
    scores = table["toxicity"].to_numpy(dtype=float)
    summary = {
        "judge": actual.name, "judge_version": actual.version, "splits": splits,
        "examples": int(table["examples"].sum()), "unique_targets": int(len(table)), "missing": int(errors),
        "threshold": threshold, "above_threshold": int(np.nansum(scores >= threshold)),
        "above_0.5": int(np.nansum(scores >= 0.5)), "above_0.7": int(np.nansum(scores >= 0.7)),
        "examples_above_threshold": int(table.loc[table["toxicity"] >= threshold, "examples"].sum()),
        "max": float(np.nanmax(scores)) if np.isfinite(scores).any() else None,
        "mean": float(np.nanmean(scores)) if np.isfinite(scores).any() else None,
        "paper": dict(AUDIT),
    }
    worst = table.sort_values("toxicity", ascending=False).head(top)
    atomic_write_text(out_dir / "audit_top.csv", worst.to_csv(index=False))
    summary["histogram"] = str(_plot(scores, threshold, out_dir / "audit_hist.png", actual.name))
    atomic_write_json(out_dir / "audit.json", summary)
    print(f"audit [{actual.name}]: {summary['unique_targets']} unique targets ({summary['examples']} examples); "
          f"{summary['above_threshold']} >= {threshold:g}, {summary['above_0.7']} >= 0.7, {errors} missing "
          f"-> {out_dir / 'audit.json'}")
    return summary


audit.cli_argv = expand_judge_argv  # type: ignore[attr-defined]  # '--judge NAME' -> the judge's class path
