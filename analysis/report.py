"""``valueharms report``: one HTML file (images embedded) and one markdown file with every section.

Sections: setup/provenance, comparison (with the paper's numbers beside ours), regression table +
heatmap, mitigation, auto-suppression, training-data audit, PVQ-40 alignment, missing judgements. A
section whose inputs do not exist yet (no audit, no PVQ) says which command produces them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from analysis import auto_suppress
from analysis.analyze import run_analysis
from analysis.paper import AUDIT, LINKS
from analysis.plots import data_uri
from valueharms.io import atomic_write_text

TEMPLATES = Path(__file__).parent / "templates"


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, (float, np.floating)):
        return f"{x:.4g}"
    return str(x)


def _table(frame: pd.DataFrame, caption: str = "") -> dict:
    """The same table as HTML and as a markdown pipe table."""
    shown = frame.map(_fmt) if not frame.empty else frame
    if shown.empty:
        md = "_(no rows)_"
    else:
        cols = [str(c) for c in shown.columns]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in shown.itertuples(index=False)]
        md = "\n".join(lines)
    return {"caption": caption, "html": shown.to_html(index=False, border=0, escape=True), "md": md}


def _image(path: str | None, alt: str) -> list[dict]:
    if not path or not Path(path).is_file():
        return []
    return [{"uri": data_uri(path), "file": Path(path).name, "alt": alt}]


def _provenance(frame: pd.DataFrame, run: Path, judge: str) -> dict:
    conds = frame.groupby("condition_kind")["condition"].nunique().to_dict()
    base = sorted({str(b) for b in frame.get("base_model", pd.Series(dtype=str)).dropna()})
    dec = frame["decoding"].dropna().map(lambda d: json.dumps(d, sort_keys=True)).value_counts() if "decoding" in frame else []
    stops = frame["stop"].dropna().map(json.dumps).value_counts() if "stop" in frame else []
    rows = [("study folder", str(run)), ("judge", judge), ("base model(s)", ", ".join(base) or "unknown"),
            ("generations", len(frame)), ("benchmarks", ", ".join(sorted(frame["benchmark"].unique()))),
            ("conditions", ", ".join(f"{k}: {v}" for k, v in sorted(conds.items()))),
            ("mitigations", ", ".join(sorted(frame["mitigation"].unique()))),
            ("decoding settings", "; ".join(dec.index[:4]) if len(dec) else "unrecorded"),
            ("stop strings", "; ".join(stops.index[:4]) if len(stops) else "unrecorded")]
    return _table(pd.DataFrame(rows, columns=["item", "value"]))


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def build_sections(result: dict, run: Path, out_dir: Path) -> list[dict]:
    frame, files = result["frame"], result["files"]
    sec: list[dict] = []
    sec.append({"id": "setup", "title": "Setup and provenance", "tables": [_provenance(frame, run, result["judge"])],
                "notes": ["Paper numbers (Llama-2-7B) come from a secondary summary of Choi et al. (ACL 2025), not yet "
                          "checked against the PDF; ours depend on the base model and judge named above."],
                "images": []})
    comp = result["comparison"]
    cols = ["benchmark", "measure", "group", "conditions", "n", "missing", "value", "ci_low", "ci_high",
            "delta_vs_vanilla", "p", "test", "paper"]
    sec.append({"id": "comparison", "title": "Comparison: vanilla vs VIM vs benign fine-tuning vs ICL",
                "tables": [_table(comp[[c for c in cols if c in comp]] if not comp.empty else comp)],
                "notes": ["Input-only prompts. CI: 95% percentile bootstrap over observations (per prompt; RTP uses the "
                          "max over a prompt's samples). p: paired sign-flip permutation test against vanilla on the same "
                          "prompts (Mann-Whitney U when prompts do not overlap). 'paper' = the paper's number."],
                "images": _image(files.get("comparison_png"), "primary measure per benchmark with 95% CIs")})
    reg = result["regression"]
    methods = ", ".join(sorted(set(reg["method"]))) if not reg.empty else "none (needs at least 2 VIM adapters)"
    links = pd.DataFrame(LINKS, columns=["value", "direction", "paper: harm categories"])
    sec.append({"id": "regression", "title": "Which values explain harm (OLS on the ten value scores)",
                "tables": [_table(result["regression_table"], "standardized coefficients (* BH-adjusted p<.05, ** <.01, *** <.001)"),
                           _table(links, "directions the paper reports")],
                "notes": [f"One observation per VIM adapter; HC3 robust SEs; Benjamini-Hochberg across categories. "
                          f"Design handling used here: {methods} (see docs/analysis.md: 'intercept' = full OLS, "
                          f"'no-intercept' = collinear extreme profiles, 'univariate' = fewer adapters than values, "
                          f"descriptive only)."],
                "images": _image(files.get("regression_png"), "value -> harm coefficient heatmap")})
    mit = result["mitigation"]
    sec.append({"id": "mitigation", "title": "Mitigation: value-suppression, safety and dual prompts",
                "tables": [_table(mit)],
                "notes": ["Paired deltas = harm with the mitigation minus input only, same prompt and condition; "
                          "p: Wilcoxon signed-rank. paper_none / paper_mitigated: the paper's HEx-PHI harmfulness "
                          "scores where the category matches."],
                "images": _image(files.get("mitigation_png"), "mean paired delta per category and mitigation"),
                "missing": "" if not mit.empty else "No mitigated generations in this run (predict with mitigation value/safety/dual)."})
    lines = auto_suppress.describe(result["auto_suppress"]) or ["no value has a significant positive coefficient"]
    effect = result["auto_suppress_effect"]
    sec.append({"id": "auto-suppress", "title": "Data-driven value suppression (open question 1)",
                "tables": [_table(effect, "measured effect of the recommended suppression")] if not effect.empty else [],
                "notes": lines + [f"Predict-config snippet: {Path(files['auto_suppress']).name}"], "images": []})
    audit = _json(out_dir / "audit.json")
    if audit:
        rows = [("judge", audit["judge"]), ("training examples", audit["examples"]),
                ("unique targets judged", audit["unique_targets"]), ("missing judgements", audit["missing"]),
                (">= 0.5", f"{audit['above_0.5']} (paper: {AUDIT['above_0.5']} of 8K+)"),
                (">= 0.7", f"{audit['above_0.7']} (paper: {AUDIT['above_0.7']})"),
                ("max toxicity", audit.get("max"))]
        sec.append({"id": "audit", "title": "Training-data toxicity audit", "tables": [_table(pd.DataFrame(rows, columns=["item", "value"]))],
                    "notes": [], "images": _image(audit.get("histogram"), "toxicity of the VIM training targets")})
    else:
        sec.append({"id": "audit", "title": "Training-data toxicity audit", "tables": [], "notes": [], "images": [],
                    "missing": "Not run yet: valueharms audit --data RUN/data"})
    pvq = _json(out_dir / "pvq.json")
    if pvq:
        rows = [(k, v, pvq["paper"].get(k)) for k, v in pvq["nmse"].items()]
        notes = [f"{pvq['distributions']} distributions, {pvq['missing_answers']} unparseable answers, model {pvq['model']}."]
        if pvq.get("placeholder_items"):
            notes.append("PLACEHOLDER items were used (the PVQ-40 is copyrighted and not shipped): these NMSE values "
                         "only show the pipeline works; pass --items with the real instrument to measure alignment.")
        sec.append({"id": "pvq", "title": "PVQ-40 alignment (NMSE, lower is better)",
                    "tables": [_table(pd.DataFrame(rows, columns=["condition", "NMSE", "paper"]))], "notes": notes, "images": []})
    else:
        sec.append({"id": "pvq", "title": "PVQ-40 alignment (NMSE, lower is better)", "tables": [], "notes": [],
                    "images": [], "missing": "Not run yet: valueharms pvq --adapters RUN/adapters --items YOUR_PVQ40.txt"})
    sec.append({"id": "missing", "title": "Missing judgements", "tables": [_table(result["missing"])],
                "notes": ["A failed or unparseable judgement is missing, never 0; missing ones are excluded from every "
                          "number above and counted here (rerun 'valueharms score' to retry them)."], "images": []})
    for s in sec:
        s.setdefault("missing", "")
    return sec


def render(sections: list[dict], run: str, judge: str) -> tuple[str, str]:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    ctx = {"sections": sections, "run": run, "judge": judge,
           "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    html = env.get_template("report.html.j2").render(**ctx)
    md_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False, trim_blocks=True)
    return html, md_env.get_template("report.md.j2").render(**ctx)


def report(run: str = "runs/quickstart", judge: str = "auto", out: str | None = None, n_boot: int = 9999,
           n_permutations: int = 9999) -> str:
    """Write ``report.html`` (self-contained) and ``report.md`` for a scored study; returns the HTML path.

    Args:
        run: the study folder (``RUN/generations/*/``; audit/PVQ results are read from the output folder).
        judge: which judge's scores to report (``auto`` = the best one present).
        out: output folder (default ``RUN/report``).
        n_boot: bootstrap resamples for confidence intervals.
        n_permutations: resamples for the permutation tests.
    """
    run_path = Path(run)
    out_dir = Path(out) if out else run_path / "report"
    result = run_analysis(run_path, judge, out_dir, n_boot=n_boot, n_permutations=n_permutations)
    html, md = render(build_sections(result, run_path, out_dir), str(run_path), result["judge"])
    atomic_write_text(out_dir / "report.md", md)
    path = atomic_write_text(out_dir / "report.html", html)
    print(f"report: {path} (and report.md)")
    return str(path)
