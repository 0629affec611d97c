"""The report renders every section from a synthetic study folder in the documented record formats."""

from __future__ import annotations

import json

import pandas as pd

from analysis.report import report
from analysis.synthetic import make_synthetic_run
from valueharms.io import atomic_write_json


def test_report_has_every_section(tmp_path):
    run = make_synthetic_run(tmp_path / "study", n_adapters=8, n_prompts=4, missing_every=50)
    out = run / "report"
    atomic_write_json(out / "pvq.json", {"nmse": {"VIM": 0.05, "ICL": 0.2}, "distributions": 12, "missing_answers": 3,
                                         "model": "tiny", "placeholder_items": True, "paper": {"VIM": 0.0759, "ICL": 0.1079}})
    html_path = report(str(run), n_boot=50, n_permutations=49)
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for title in ("Setup and provenance", "Comparison", "Which values explain harm", "Mitigation",
                  "Data-driven value suppression", "Training-data toxicity audit", "PVQ-40 alignment", "Missing judgements"):
        assert title in html and title in md, title
    assert html_path.endswith("report.html")
    assert html.count("data:image/png;base64,") >= 3  # comparison, heatmap, mitigation embedded
    assert "Not run yet: valueharms audit" in html  # no audit.json in this folder
    assert "PLACEHOLDER items" in md and "0.0759" in md
    # paper column sits beside ours
    comp = pd.read_csv(out / "comparison.csv")
    assert comp.loc[(comp["group"] == "VIM") & (comp["measure"] == "toxicity_probability"), "paper"].iloc[0] == 0.3093
    missing = pd.read_csv(out / "missing.csv")
    assert missing["missing"].sum() > 0 and "synthetic failure" in set(missing["top_reason"])
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["judge"] == "offline" and analysis["missing_judgements"] == missing["missing"].sum()
    assert "| benchmark |" in md  # markdown tables


def test_report_cli_bad_judge_is_one_line_error(tmp_path, capsys):
    from valueharms.cli import main

    run = make_synthetic_run(tmp_path / "study", n_adapters=3, n_prompts=3)
    assert main(["report", "--run", str(run), "--judge", "perspective"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "perspective" in err
