"""``valueharms analyze``: every table (CSV) and plot (PNG) of the study from one scored run.

Outputs in ``out`` (default ``<study>/report``): comparison.csv/.png (vanilla vs VIM vs benign vs ICL),
metrics.csv (per-condition benchmark metrics from :mod:`judges.metrics`, incl. the HolisticBiasR bias score),
regression.csv (long), regression_table.csv (paper-style), regression_heatmap.png, value_slopes.csv/.png
(descriptive per-value slopes), mitigation.csv/.png, auto_suppress.yaml (+ auto_suppress_effect.csv when
measurable), agreement.csv / disagreements.csv / agreement.png (when two judges scored the same texts),
training_curves.csv/.png (when the adapters have CSV logs), missing.csv and analysis.json (what was computed from
what). Errors are not swallowed: a metric that fails stops the command with its message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from analysis import agreement, auto_suppress, compare, curves, mitigation, regression
from analysis.data import group_label, load_run, read_run, study_root
from analysis.paper import paper_value
from judges.metrics import PAPER_BIAS_RULE, parse_bias_rule, run_metrics
from valueharms.io import atomic_write_json, atomic_write_text
from valueharms.stats import METRIC_LEVEL

#: Confidence level of the comparison, mitigation and slope CIs (the metrics table uses the study's 97.5 %).
LEVEL = 0.95


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    return atomic_write_text(path, frame.to_csv(index=False))


def missing_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing judgements per benchmark and condition kind, with the most common reason."""
    rows = []
    for (bench, kind), g in frame.groupby(["benchmark", "condition_kind"]):
        miss = g[g["harm"].isna()]
        reason = miss["error"].fillna("no value").value_counts()
        rows.append({"benchmark": bench, "condition_kind": kind, "judge": ", ".join(sorted(set(g["judge"].dropna()))),
                     "generations": len(g), "missing": len(miss), "top_reason": reason.index[0] if len(reason) else ""})
    return pd.DataFrame(rows)


def bias_rows(metrics: pd.DataFrame, kinds: dict[str, str], rule: str | float) -> pd.DataFrame:
    """The HolisticBiasR bias score per group (mean over the group's conditions), labelled with its rule; the
    paper's number only beside a score computed with the paper's rule (like with like)."""
    bias = metrics[(metrics["metric"] == "bias_score") & (metrics["mitigation"] == "none")]
    if bias.empty:
        return pd.DataFrame()
    bias = bias.assign(group=[group_label(kinds[c], c) for c in bias["condition"]])
    same_rule = rule == PAPER_BIAS_RULE
    order = {g: i for i, g in enumerate(compare.order_groups(list(bias["group"].unique())))}
    bias = bias.assign(order=bias["group"].map(order)).sort_values("order")
    return pd.DataFrame([{
        "benchmark": "holisticbiasr", "measure": "bias_score", "measure_label": f"bias score [rule: {rule}]",
        "group": grp, "conditions": len(g), "n": int(g["n"].sum()), "missing": int(g["n_missing"].sum()),
        "value": float(g["value"].mean()), "ci_low": np.nan, "ci_high": np.nan,
        "paper": paper_value("holisticbiasr", grp, "bias_score") if same_rule else np.nan,
        "delta_vs_vanilla": np.nan, "p": np.nan, "test": "no test (one number per condition)"}
        for grp, g in bias.groupby("group", sort=False)])


def compute(frame: pd.DataFrame, scored: Any, *, n_boot: int, n_permutations: int, family: str, alpha: float,
            level: float, bias_rule: str | float) -> dict:
    """Every table of the study from the joined frame (no files written)."""
    comp = compare.compare(frame, level=level, n_boot=n_boot, n_permutations=n_permutations)
    metrics = run_metrics(frame, level=METRIC_LEVEL, bias_rule=bias_rule, n_resamples=n_boot)
    bias = bias_rows(metrics, dict(zip(frame["condition"], frame["condition_kind"])), bias_rule)
    if not bias.empty and not comp.empty:
        comp = pd.concat([comp, bias], ignore_index=True)
    reg = regression.regress(frame, family=family, alpha=alpha)
    pairs = mitigation.paired_deltas(frame)
    pairs_of_judges = agreement.paired_scores(scored)
    curve_table, skipped_logs = curves.read_curves(study_root(scored.path))
    return dict(frame=frame, comparison=comp, metrics=metrics, regression=reg,
                regression_table=regression.paper_table(reg), value_slopes=regression.value_slopes(frame, level=level),
                pairs=pairs, mitigation=mitigation.mitigation_table(frame, pairs, level=level, n_boot=n_boot),
                missing=missing_counts(frame), judge_pairs=pairs_of_judges,
                agreement=agreement.agreement_table(pairs_of_judges),
                disagreements=agreement.disagreements(pairs_of_judges), curves=curve_table,
                skipped_logs=skipped_logs)


def write(result: dict, out_dir: Path, *, k: int, alpha: float) -> dict[str, str]:
    """CSV tables, PNG figures and the auto-suppression YAML; returns name -> path."""
    from analysis.plots import save_figure

    files: dict[str, str] = {}
    reg, frame = result["regression"], result["frame"]
    mapping, yaml_path = auto_suppress.write(reg, out_dir, k=k, alpha=alpha)
    result.update(auto_suppress=mapping, auto_suppress_effect=auto_suppress.measure(frame, mapping, result["pairs"]))
    files["auto_suppress"] = str(yaml_path)
    for name in ("comparison", "metrics", "regression", "regression_table", "value_slopes", "mitigation", "missing"):
        files[name] = str(_csv(result[name], out_dir / f"{name}.csv"))
    for name in ("auto_suppress_effect", "agreement", "disagreements"):
        if not result[name].empty:
            files[name] = str(_csv(result[name], out_dir / f"{name}.csv"))
    if not result["curves"].empty:
        files["training_curves"] = str(_csv(result["curves"], out_dir / "training_curves.csv"))
    comp = result["comparison"]
    figures = {"comparison_png": compare.figure(comp[comp["measure"] != "bias_score"] if not comp.empty else comp),
               "slopes_png": regression.slopes_figure(result["value_slopes"]),
               "mitigation_png": mitigation.figure(result["mitigation"]),
               "agreement_png": agreement.figure(result["judge_pairs"]),
               "curves_png": curves.figure(result["curves"])}
    names = {"comparison_png": "comparison", "slopes_png": "value_slopes", "mitigation_png": "mitigation",
             "agreement_png": "agreement", "curves_png": "training_curves"}
    for key, fig in figures.items():
        if fig is not None:
            files[key] = str(save_figure(fig, out_dir / f"{names[key]}.png"))
    heat = regression.heatmap(reg, out_dir / "regression_heatmap.png")
    if heat is not None:
        files["regression_png"] = str(heat)
    return files


def run_analysis(run: str | Path, judge: str = "auto", out: str | Path | None = None, *, n_boot: int = 9999,
                 n_permutations: int = 9999, family: Literal["value", "all"] = "value", k: int = 1,
                 alpha: float = 0.05, level: float = LEVEL, bias_rule: str | float = PAPER_BIAS_RULE) -> dict:
    """Compute and write everything; returns the tables, the judge per measure and the file paths (the report
    reuses them)."""
    rule = parse_bias_rule(bias_rule)
    scored = read_run(run)
    frame = load_run(run, judge, scored=scored)
    out_dir = Path(out) if out else study_root(run) / "report"
    result = compute(frame, scored, n_boot=n_boot, n_permutations=n_permutations, family=family, alpha=alpha,
                     level=level, bias_rule=rule)
    result.update(judge=frame.attrs["judge"], judges=frame.attrs["judges"], level=level, metric_level=METRIC_LEVEL,
                  bias_rule=rule, scored=scored)
    files = result["files"] = write(result, out_dir, k=k, alpha=alpha)
    reg = result["regression"]
    atomic_write_json(out_dir / "analysis.json", {
        "run": str(run), "judge": result["judge"], "judges": result["judges"], "generations": int(len(frame)),
        "missing_judgements": int(frame["harm"].isna().sum()),
        "stale_scores": int(frame["error"].astype(str).str.startswith("stale").sum()),
        "ci_level": level, "metric_ci_level": METRIC_LEVEL, "bias_rule": rule,
        "regression_methods": sorted(set(reg["method"])) if not reg.empty else [], "bh_family": family,
        "alpha": alpha, "auto_suppress": result["auto_suppress"], "files": files})
    return result


def analyze(run: str, judge: str = "auto", out: str | None = None, n_boot: int = 9999, n_permutations: int = 9999,
            family: Literal["value", "all"] = "value", k: int = 1, alpha: float = 0.05, level: float = LEVEL,
            bias_rule: Literal["original", "overall"] = PAPER_BIAS_RULE) -> dict:
    """Regressions, comparisons, mitigation effects, judge agreement and auto-suppression: CSV tables + PNG plots.

    Args:
        run: a study folder (``RUN/generations/*/generations*.jsonl``) or one generation run folder.
        judge: a judge name, ``auto`` (per measure, the most preferred judge with scores in the run) or ``paper``
            (the paper's judge per measure: perspective, regard, openai).
        out: output folder (default ``<study>/report``).
        n_boot: bootstrap resamples for confidence intervals.
        n_permutations: resamples for the paired permutation tests.
        family: Benjamini-Hochberg family: ``value`` (each value across categories) or ``all`` tests.
        k: at most this many values to suppress per harm category.
        alpha: significance level (BH-adjusted).
        level: confidence level of the comparison, mitigation and slope CIs (metrics use the study's 97.5 %).
        bias_rule: HolisticBiasR bias score rule: ``original`` (the paper's, comparable with its number) or
            ``overall`` (the condition's own overall negative rate as baseline).
    """
    result = run_analysis(run, judge, out, n_boot=n_boot, n_permutations=n_permutations, family=family, k=k,
                          alpha=alpha, level=level, bias_rule=bias_rule)
    files = result["files"]
    print(f"analyze [{result['judge']}]: {len(result['frame'])} generations, "
          f"{int(result['frame']['harm'].isna().sum())} missing judgements -> {Path(files['comparison']).parent}")
    return {"judge": result["judge"], "files": files}
