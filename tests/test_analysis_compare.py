"""Comparison and mitigation tables on a synthetic run whose effects are known."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import compare, mitigation
from analysis.data import load_run, prompt_table
from analysis.synthetic import make_synthetic_run


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return load_run(make_synthetic_run(tmp_path_factory.mktemp("run"), n_adapters=6, missing_every=97))


def test_prompt_table_uses_max_over_rtp_samples_and_counts_missing(frame):
    table = prompt_table(frame)
    rtp = frame[(frame["benchmark"] == "rtp") & (frame["condition"] == "vanilla")]
    one = rtp[rtp["prompt_id"] == rtp["prompt_id"].iloc[0]]
    row = table[(table["condition"] == "vanilla") & (table["prompt_id"] == one["prompt_id"].iloc[0])]
    assert row["harm"].iloc[0] == pytest.approx(one["harm"].max())
    assert table["missing"].sum() == frame["harm"].isna().sum() > 0


def test_compare_table_has_cis_tests_and_paper_column(frame, tmp_path):
    table = compare.compare(frame, level=0.95, n_boot=300, n_permutations=999)
    emt = table[table["measure"] == "expected_max_toxicity"].set_index("group")
    assert {"vanilla", "VIM", "ICL", "benign:alpaca"} <= set(emt.index)
    assert (emt["ci_low"] <= emt["value"]).all() and (emt["value"] <= emt["ci_high"]).all()
    assert emt.loc["vanilla", "paper"] == 0.35 and emt.loc["VIM", "paper"] == 0.41
    # ICL is 0.05 above vanilla on every prompt by construction: paired test must see it
    assert emt.loc["ICL", "test"] == "paired permutation" and emt.loc["ICL", "p"] < 0.01
    assert emt.loc["ICL", "delta_vs_vanilla"] == pytest.approx(0.05, abs=0.02)
    assert compare.plot(table, tmp_path / "c.png").stat().st_size > 1000


def test_mitigation_paired_deltas_on_fixture():
    rows = []
    for cond in ("vim:A", "vim:B"):
        for p in range(6):
            for mit, harm in (("none", 4.0), ("value", 2.0 + (p % 2)), ("safety", 4.0)):
                rows.append({"benchmark": "hexphi", "condition": cond, "condition_kind": "vim", "mitigation": mit,
                             "category": "Adult Content", "prompt_id": f"p{p}", "distribution": cond[4:], "harm": harm})
    frame = pd.DataFrame(rows)
    pairs = mitigation.paired_deltas(frame)
    assert len(pairs) == 2 * 6 * 2
    table = mitigation.mitigation_table(frame, level=0.95, n_boot=100).set_index("mitigation")
    assert table.loc["value", "mean_delta"] == pytest.approx(-1.5)  # (2-4 + 3-4)/2
    assert -2 <= table.loc["value", "mean_delta_ci_low"] < -1.5 < table.loc["value", "mean_delta_ci_high"] <= -1
    assert table.loc["safety", "mean_delta_ci_low"] == table.loc["safety", "mean_delta_ci_high"] == 0
    assert table.loc["value", "p"] < 0.01 and table.loc["safety", "p"] == 1.0
    assert table.loc["value", "paper_mitigated"] == 2.45 and table.loc["value", "paper_none"] == 4.10


def test_mitigation_on_synthetic_run(frame, tmp_path):
    table = mitigation.mitigation_table(frame, level=0.95, n_boot=100)
    assert set(table["mitigation"]) == {"value", "safety", "dual"}
    dual = table[(table["mitigation"] == "dual") & (table["group"] == "VIM")]
    assert (dual["mean_delta"] < -0.1).all()
    assert mitigation.plot(table, tmp_path / "m.png").stat().st_size > 1000
