"""``valueharms analyze``: every table (CSV) and plot (PNG) of the study from one scored run.

Outputs in ``out`` (default ``RUN/report``): comparison.csv/.png (vanilla vs VIM vs benign vs ICL),
metrics.csv (per-condition benchmark metrics from :mod:`judges.metrics`, incl. the HolisticBiasR bias score),
regression.csv (long), regression_table.csv (paper-style), regression_heatmap.png, mitigation.csv/.png,
auto_suppress.yaml (+ auto_suppress_effect.csv when measurable), missing.csv (missing judgements) and
analysis.json (what was computed from what).
"""

from __future__ import annotations

from benchmarks.registry import get_spec

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from analysis import auto_suppress, compare, mitigation, regression
from analysis.data import group_label, load_run
from valueharms.io import atomic_write_json, atomic_write_text


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    return atomic_write_text(path, frame.to_csv(index=False))


def missing_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing judgements per benchmark and condition kind, with the most common reason."""
    rows = []
    for (bench, kind), g in frame.groupby(["benchmark", "condition_kind"]):
        miss = g[g["harm"].isna()]
        reason = miss["error"].fillna("no value").value_counts()
        rows.append({"benchmark": bench, "condition_kind": kind, "generations": len(g), "missing": len(miss),
                     "top_reason": reason.index[0] if len(reason) else ""})
    return pd.DataFrame(rows)


def condition_metrics(frame: pd.DataFrame, n_resamples: int = 999) -> pd.DataFrame:
    """Per-condition metrics from the judges package (one implementation of the paper's numbers)."""
    from judges.metrics import compute_metrics

    work = frame.copy()
    for col in ("axis", "descriptor"):
        work[col] = [f.get(col) if isinstance(f, dict) else None for f in work["fields"]]
    work["value"] = pd.to_numeric(work["value"], errors="coerce")
    # metrics group by the items' own categories (HEx-PHI, BeaverTails), not by a derived one (HolisticBiasR's axis)
    own = [get_spec(b).category_field is None and c != "all" for b, c in zip(work["benchmark"], work["category"])]
    work["category"] = work["category"].where(own, None)
    return compute_metrics(work, n_resamples=n_resamples)


def _bias_rows(metrics: pd.DataFrame, comparison: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Add the HolisticBiasR bias score per group (mean over the group's conditions) to the comparison.

    ``kinds``: condition -> condition kind, from the same frame the metrics were computed from.
    """
    from analysis.paper import paper_value

    bias = metrics[(metrics["metric"] == "bias_score") & (metrics["mitigation"] == "none")]
    if bias.empty or comparison.empty:
        return comparison
    bias = bias.assign(group=[group_label(kinds[c], c) for c in bias["condition"]])
    rows = [{"benchmark": "holisticbiasr", "measure": "bias_score", "measure_label": "bias score", "group": grp,
             "conditions": len(g), "n": int(g["n"].sum()), "missing": int(g["n_missing"].sum()),
             "value": float(g["value"].mean()), "ci_low": np.nan, "ci_high": np.nan,
             "paper": paper_value("holisticbiasr", grp, "bias_score"), "delta_vs_vanilla": np.nan, "p": np.nan,
             "test": "no test (one number per condition)"} for grp, g in bias.groupby("group")]
    return pd.concat([comparison, pd.DataFrame(rows)], ignore_index=True)


def run_analysis(run: str | Path, judge: str = "auto", out: str | Path | None = None, n_boot: int = 9999,
                 n_permutations: int = 9999, family: Literal["value", "all"] = "value", k: int = 1,
                 alpha: float = 0.05) -> dict:
    """Compute everything; returns a dict of tables and file paths (the report reuses it)."""
    frame = load_run(run, judge)
    out_dir = Path(out) if out else Path(run) / "report"
    result: dict = {"judge": frame.attrs["judge"], "files": {}}
    comp = compare.compare(frame, n_boot=n_boot, n_permutations=n_permutations)
    try:
        metrics = condition_metrics(frame, n_resamples=n_boot)
        result["files"]["metrics"] = str(_csv(metrics, out_dir / "metrics.csv"))
        comp = _bias_rows(metrics, comp, dict(zip(frame["condition"], frame["condition_kind"])))
    except (ImportError, KeyError, ValueError) as err:  # the judges package is optional for analysis
        result["metrics_error"] = f"{type(err).__name__}: {err}"
    reg = regression.regress(frame, family=family, alpha=alpha)
    pairs = mitigation.paired_deltas(frame)
    mit = mitigation.mitigation_table(frame, pairs)
    mapping, yaml_path = auto_suppress.write(reg, out_dir, k=k, alpha=alpha)
    effect = auto_suppress.measure(frame, mapping, pairs)
    missing = missing_counts(frame)
    result.update(frame=frame, comparison=comp, regression=reg, regression_table=regression.paper_table(reg),
                  mitigation=mit, auto_suppress=mapping, auto_suppress_effect=effect, missing=missing)
    files = result["files"]
    for name in ("comparison", "regression", "regression_table", "mitigation", "missing"):
        files[name] = str(_csv(result[name], out_dir / f"{name}.csv"))
    if not effect.empty:
        files["auto_suppress_effect"] = str(_csv(effect, out_dir / "auto_suppress_effect.csv"))
    files["auto_suppress"] = str(yaml_path)
    for name, path in (("comparison_png", compare.plot(comp[comp["measure"] != "bias_score"], out_dir / "comparison.png")),
                       ("regression_png", regression.heatmap(reg, out_dir / "regression_heatmap.png")),
                       ("mitigation_png", mitigation.plot(mit, out_dir / "mitigation.png"))):
        if path is not None:
            files[name] = str(path)
    methods = sorted(set(reg["method"])) if not reg.empty else []
    atomic_write_json(out_dir / "analysis.json", {
        "run": str(run), "judge": result["judge"], "generations": int(len(frame)),
        "missing_judgements": int(frame["harm"].isna().sum()), "regression_methods": methods,
        "bh_family": family, "alpha": alpha, "auto_suppress": mapping, "files": files,
        "metrics_error": result.get("metrics_error")})
    return result


def analyze(run: str = "runs/quickstart", judge: str = "auto", out: str | None = None, n_boot: int = 9999,
            n_permutations: int = 9999, family: Literal["value", "all"] = "value", k: int = 1,
            alpha: float = 0.05) -> dict:
    """Regressions, comparisons, mitigation effects and auto-suppression: CSV tables + PNG plots.

    Args:
        run: a study folder (``RUN/generations/*/generations*.jsonl``) or one generation run folder.
        judge: which judge's scores to analyse (``auto`` = the best one present).
        out: output folder (default ``RUN/report``).
        n_boot: bootstrap resamples for confidence intervals.
        n_permutations: resamples for the paired permutation tests.
        family: Benjamini-Hochberg family: ``value`` (each value across categories) or ``all`` tests.
        k: at most this many values to suppress per harm category.
        alpha: significance level (BH-adjusted).
    """
    result = run_analysis(run, judge, out, n_boot, n_permutations, family, k, alpha)
    files = result["files"]
    print(f"analyze [{result['judge']}]: {len(result['frame'])} generations, "
          f"{int(result['frame']['harm'].isna().sum())} missing judgements -> {Path(files['comparison']).parent}")
    return {"judge": result["judge"], "files": files}
