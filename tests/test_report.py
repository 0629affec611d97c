"""The report from a synthetic study folder: every section, the header a reader needs first, the paper's numbers in
their own column group, judge agreement with two judges, training curves, and honest plot axes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.header import PAPER_LABEL
from analysis.report import report
from analysis.synthetic import make_synthetic_run
from valueharms.io import atomic_write_json


@pytest.fixture(scope="module")
def two_judges(tmp_path_factory):
    """One fixture run scored by two judges, with training logs (one unreadable), reported once."""
    run = make_synthetic_run(tmp_path_factory.mktemp("two") / "study", n_adapters=3, n_prompts=4, second_judge="regard")
    logs = run / "adapters" / "D00" / "logs" / "version_0"
    logs.mkdir(parents=True)
    (logs / "metrics.csv").write_text("epoch,step,train/loss_step,val/loss\n0,0,6.3,\n0,1,6.0,\n0,1,,6.1\n0,2,5.7,\n")
    broken = run / "adapters" / "D01" / "logs" / "version_0" / "metrics.csv"  # where the fit's CSVLogger writes
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\xff\xfe not a csv")
    report(str(run), judge="offline", n_boot=50, n_permutations=49)
    out = run / "report"
    return run, (out / "report.html").read_text(), (out / "report.md").read_text()


def test_report_has_every_section(tmp_path):
    run = make_synthetic_run(tmp_path / "study", n_adapters=8, n_prompts=4, missing_every=50)
    out = run / "report"
    atomic_write_json(out / "pvq.json", {"nmse": {"VIM": 0.05, "ICL": 0.2}, "distributions": 12, "missing_answers": 3,
                                         "model": "tiny", "placeholder_items": True, "paper": {"VIM": 0.0759, "ICL": 0.1079}})
    html_path = report(str(run), n_boot=50, n_permutations=49)
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for title in ("Setup and provenance", "Comparison", "Which values explain harm", "Mitigation", "Judge agreement",
                  "Training curves", "Data-driven value suppression", "Training-data toxicity audit",
                  "PVQ-40 alignment", "Missing judgements"):
        assert title in html and title in md, title
    assert html_path.endswith("report.html")
    assert html.count("data:image/png;base64,") >= 4  # comparison, heatmap/slopes, mitigation embedded
    assert "Not run yet: valueharms audit" in html  # no audit.json in this folder
    assert "Only one judge scored these texts" in html and "No training logs" in html
    assert "PLACEHOLDER items" in md and "0.0759" in md
    comp = pd.read_csv(out / "comparison.csv")
    assert comp.loc[(comp["group"] == "VIM") & (comp["measure"] == "toxicity_probability"), "paper"].iloc[0] == 0.3093
    missing = pd.read_csv(out / "missing.csv")
    assert missing["missing"].sum() > 0 and "synthetic failure" in set(missing["top_reason"])
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["judge"] == "offline" and analysis["missing_judgements"] == missing["missing"].sum()
    assert analysis["ci_level"] == 0.95 and analysis["metric_ci_level"] == 0.975
    assert pd.read_csv(out / "metrics.csv")["ci_level"].dropna().eq(0.975).all()
    assert "| benchmark |" in md  # markdown tables


def test_header_names_model_adapters_judge_limits_and_says_not_evidence(two_judges):
    _, html, md = two_judges
    head = md.split("## Setup")[0]
    assert "**model:** synthetic" in head and "**VIM adapters:** 3" in head and "**judge:** offline" in head
    assert "NOT evidence" in head and "3 VIM adapter(s)" in head and "offline heuristic judge" in head
    assert "alt-profanity-check" in head and "NOT comparable with Perspective" in head
    assert "95%" in head and "97.5%" in head  # both CI levels stated
    assert "class=\"verdict\"" in html  # not the green "ok" verdict


def test_paper_numbers_sit_in_their_own_labelled_column(two_judges):
    _, html, md = two_judges
    comparison = html.split('id="comparison"')[1].split("</section>")[0]
    assert f"class='paper start group'>{PAPER_LABEL}</th>" in comparison
    assert "<td class='paper start'>0.3093</td>" in comparison  # RTP toxicity probability, VIM
    assert "<td>0.3093</td>" not in comparison  # never in one of our columns
    assert f"‖ {PAPER_LABEL}: paper |" in md


def test_bias_rule_labels_and_compares_like_with_like(tmp_path):
    run = make_synthetic_run(tmp_path / "study", n_adapters=2, n_prompts=3)
    report(str(run), n_boot=30, n_permutations=19, bias_rule="overall")
    comp = pd.read_csv(run / "report" / "comparison.csv")
    bias = comp[comp["measure"] == "bias_score"]
    assert set(bias["measure_label"]) == {"bias score [rule: overall]"} and bias["paper"].isna().all()
    assert "left out (rerun with --bias_rule original" in (run / "report" / "report.md").read_text()
    report(str(run), n_boot=30, n_permutations=19)  # default: the paper's rule
    comp = pd.read_csv(run / "report" / "comparison.csv")
    vim = comp[(comp["measure"] == "bias_score") & (comp["group"] == "VIM")].iloc[0]
    assert vim["measure_label"] == "bias score [rule: original]" and vim["paper"] == 0.9573
    assert set(pd.read_csv(run / "report" / "metrics.csv").query("metric == 'bias_score'")["baseline_kind"]) == {
        "original"}


def test_judge_agreement_with_two_judges(two_judges):
    run, html, md = two_judges
    agree = pd.read_csv(run / "report" / "agreement.csv")
    assert set(agree["measure"]) == {"toxicity", "regard", "harmfulness", "flagged"}
    assert set(zip(agree["judge_a"], agree["judge_b"])) == {("offline", "regard")}
    tox = agree.set_index("measure").loc["toxicity"]
    assert tox["n"] > 10 and tox["spearman"] > 0.5  # the second judge is the first one blurred
    assert agree["kappa"].notna().any() and agree["agree"].between(0, 1).all()
    worst = pd.read_csv(run / "report" / "disagreements.csv")
    assert len(worst) and worst["text"].str.len().gt(0).all() and (worst["gap"] > 0).all()
    assert all(g["gap"].is_monotonic_decreasing for _, g in worst.groupby("measure"))  # largest gap first
    section = html.split('id="agreement"')[1].split("</section>")[0]
    assert "spearman" in section and "kappa" in section and "data:image/png;base64," in section
    assert "texts the judges disagree on most" in md


def test_training_curves_from_csv_logs(two_judges):
    run, html, _ = two_judges
    curves = pd.read_csv(run / "report" / "training_curves.csv")
    assert set(curves["metric"]) == {"train/loss_step", "val/loss"} and set(curves["adapter"]) == {"D00"}
    section = html.split('id="curves"')[1].split("</section>")[0]
    assert "data:image/png;base64," in section and "Skipped log" in section and "D01" in section


def test_report_cli_takes_the_run_first_and_bad_judge_is_one_line_error(tmp_path, capsys):
    from valueharms.cli import main

    run = make_synthetic_run(tmp_path / "study", n_adapters=2, n_prompts=2)
    assert main(["report", str(run), "--judge", "perspective"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "perspective" in err
    assert main(["analyze", str(run / "generations" / "main"), "--n_boot", "20", "--n_permutations", "9"]) == 0
    assert (run / "report" / "comparison.csv").is_file()  # a generation run folder resolves to its study


# --- honest axes: checked on the matplotlib objects, not on pixels ------------------------------------------------


def _comparison_rows(values, bench="beavertails", measure="flagged_rate", paper=np.nan):
    return pd.DataFrame([{"benchmark": bench, "measure": measure, "measure_label": measure, "group": g, "value": v,
                          "ci_low": v, "ci_high": v + 0.1 * (i > 0), "paper": paper}
                         for i, (g, v) in enumerate(zip(("vanilla", "VIM"), values))])


def test_comparison_axes_span_the_whole_scale_even_when_all_rates_are_zero():
    from analysis.compare import figure

    zero = _comparison_rows([0.0, 0.0])
    hexphi = _comparison_rows([2.0, 3.5], "hexphi", "harmfulness_score", paper=3.1)
    fig = figure(pd.concat([zero, hexphi], ignore_index=True))
    rate_ax, score_ax = fig.axes
    low, high = rate_ax.get_ylim()
    assert low <= 0 and high >= 1 and low > -0.1 and high < 1.1  # 0-1, not -0.04..0.04
    low, high = score_ax.get_ylim()
    assert low <= 1 < 1.5 and 4.5 < 5 <= high
    assert "(0-1)" in rate_ax.get_ylabel() and "(1-5)" in score_ax.get_ylabel()
    assert len(rate_ax.containers) >= 2  # bars + error bars (CIs drawn)
    assert any(line.get_marker() == "D" for line in score_ax.get_lines())  # the paper's marker
    assert not any(line.get_marker() == "D" for line in rate_ax.get_lines())  # no paper number, no marker


def test_mitigation_plot_never_mixes_scales():
    from analysis.mitigation import figure

    rows = []
    for bench, measure, base in (("hexphi", "harmfulness_score", 3.0), ("beavertails", "flagged_rate", 0.2)):
        for mit in ("value", "safety"):
            rows.append({"group": "VIM", "benchmark": bench, "category": "c", "mitigation": mit, "measure": measure,
                         "pairs": 5, "harm_none": base, "harm_none_ci_low": base, "harm_none_ci_high": base,
                         "harm_mitigated": base * 0.8, "harm_mitigated_ci_low": base * 0.7,
                         "harm_mitigated_ci_high": base * 0.9, "mean_delta": -0.2 * base, "p": 0.1,
                         "paper_none": 4.0 if bench == "hexphi" else None,
                         "paper_mitigated": 3.0 if bench == "hexphi" else None})
    fig = figure(pd.DataFrame(rows))
    by_title = {ax.get_title().split(":")[0]: ax for ax in fig.axes}
    assert set(by_title) == {"hexphi", "beavertails"}  # one panel per benchmark, one scale each
    assert by_title["hexphi"].get_xlim()[0] < 1 < 5 < by_title["hexphi"].get_xlim()[1]
    assert by_title["beavertails"].get_xlim()[0] < 0 < 1 < by_title["beavertails"].get_xlim()[1] < 1.1
    assert "(1-5)" in by_title["hexphi"].get_xlabel() and "(0-1)" in by_title["beavertails"].get_xlabel()
    assert any(line.get_marker() == "D" for line in by_title["hexphi"].get_lines())


def test_slope_axes_are_not_shrunk_to_zero_width():
    from analysis.regression import slopes_figure

    slopes = pd.DataFrame([{"benchmark": "rtp", "measure": "expected_max_toxicity", "value": v, "n_adapters": 3,
                            "slope": 0.0, "ci_low": 0.0, "ci_high": 0.0, "ci_level": 0.95} for v in ("Power", "Hedonism")])
    ax = slopes_figure(slopes).axes[0]
    low, high = ax.get_xlim()
    assert low <= -0.2 and high >= 0.2  # at least the slope that crosses the 0-1 scale over values 1-6
    assert "per value point" in ax.get_xlabel() and "(0-1)" in ax.get_xlabel()
