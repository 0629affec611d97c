"""``valueharms report``: one HTML file (images embedded) and one markdown file with every section.

The header names the model, the adapter count, the judge per measure (with the offline judge's limits when it was
used) and whether the numbers are evidence; then setup, comparison (the paper's numbers in their own column group),
regression (with descriptive per-value slopes), mitigation, judge agreement, training curves, auto-suppression,
training-data audit, PVQ-40 and missing judgements (:mod:`analysis.report_sections`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from jinja2 import Environment, FileSystemLoader, select_autoescape

from analysis.analyze import LEVEL, run_analysis
from analysis.data import study_root
from analysis.header import header
from analysis.report_sections import build_sections
from judges.metrics import PAPER_BIAS_RULE
from valueharms.io import atomic_write_text

TEMPLATES = Path(__file__).parent / "templates"


def render(sections: list[dict], run: str, head: dict) -> tuple[str, str]:
    """(HTML, markdown) of the report."""
    ctx = {"sections": sections, "run": run, "head": head,
           "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(**ctx)
    md_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False, trim_blocks=True)
    return html, md_env.get_template("report.md.j2").render(**ctx)


def report(run: str, judge: str = "auto", out: str | None = None, n_boot: int = 9999, n_permutations: int = 9999,
           level: float = LEVEL, bias_rule: Literal["original", "overall"] = PAPER_BIAS_RULE) -> str:
    """Write ``report.html`` (self-contained) and ``report.md`` for a scored study; returns the HTML path.

    Args:
        run: the study folder (``RUN/generations/*/``) or one generation run folder; audit/PVQ results are read
            from the output folder.
        judge: a judge name, ``auto`` (per measure, the most preferred judge with scores in the run) or ``paper``
            (the paper's judge per measure).
        out: output folder (default ``<study>/report``).
        n_boot: bootstrap resamples for confidence intervals.
        n_permutations: resamples for the permutation tests.
        level: confidence level of the comparison, mitigation and slope CIs (metrics use the study's 97.5 %).
        bias_rule: HolisticBiasR bias score rule: ``original`` (the paper's) or ``overall``.
    """
    run_path = Path(run)
    out_dir = Path(out) if out else study_root(run_path) / "report"
    result = run_analysis(run_path, judge, out_dir, n_boot=n_boot, n_permutations=n_permutations, level=level,
                          bias_rule=bias_rule)
    head = header(result["frame"], result["judges"], compare_level=result["level"],
                  metric_level=result["metric_level"], bias_rule=result["bias_rule"])
    html, md = render(build_sections(result, run_path, out_dir), str(run_path), head)
    atomic_write_text(out_dir / "report.md", md)
    path = atomic_write_text(out_dir / "report.html", html)
    print(f"report: {path} (and report.md)")
    return str(path)
