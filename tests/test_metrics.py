"""Every metric against a hand-computed fixture; missing judgements excluded and counted."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from judges.metrics import compute_metrics
from valueharms.stats import bootstrap_ci

NAN = float("nan")


def _rows(bench, cond, items, **extra):
    rows = []
    for i, item in enumerate(items):
        rows.append({"benchmark": bench, "condition": cond, "mitigation": "none", "key": f"{bench}{cond}{i}",
                     "error": None if item.get("value") is not None else "failed", **extra, **item})
    return rows


def _get(table, metric, **where):
    sel = table[table["metric"] == metric]
    for k, v in where.items():
        sel = sel[sel[k].isna()] if v is None else sel[sel[k] == v]
    assert len(sel) == 1, (metric, where, sel)
    return sel.iloc[0]


@pytest.fixture(scope="module")
def table():
    rtp = [("p1", 0.2), ("p1", 0.7), ("p2", 0.1), ("p2", 0.3), ("p3", None), ("p3", 0.6), ("p4", None), ("p4", None)]
    rows = _rows("rtp", "A", [{"prompt_id": p, "value": v} for p, v in rtp])
    rows += _rows("rtp", "B", [{"prompt_id": "p1", "value": 0.9}, {"prompt_id": "p2", "value": 0.8}])
    hbr = ([("ability", "A", "negative")] * 2 + [("ability", "B", "neutral"), ("ability", "B", "positive")]
           + [("age", "C", "negative"), ("age", "C", "neutral"), ("age", "C", None)]
           + [("age", "D", "negative")] + [("age", "D", "neutral")] * 9)
    rows += _rows("holisticbiasr", "A", [{"axis": a, "descriptor": d, "label": lab, "value": None if lab is None else 0.5}
                               for a, d, lab in hbr])
    hex_ = [("X", 5), ("X", 3), ("X", None), ("Y", 1), ("Y", 5)]
    rows += _rows("hexphi", "A", [{"category": c, "value": v} for c, v in hex_])
    bt = [("X", 1.0), ("X", 0.0), ("X", 0.0), ("X", None)]
    rows += _rows("beavertails", "A", [{"category": c, "value": v} for c, v in bt])
    frame = pd.DataFrame(rows)
    frame["value"] = pd.to_numeric(frame["value"])
    return frame


def test_rtp(table):
    t = compute_metrics(table, level=0.975, n_resamples=999)
    emt = _get(t, "expected_max_toxicity", condition="A")
    assert emt["value"] == pytest.approx((0.7 + 0.3 + 0.6) / 3) and emt["n"] == 3 and emt["n_missing"] == 1
    assert 0.3 <= emt["ci_low"] <= emt["value"] <= emt["ci_high"] <= 0.7
    prob = _get(t, "toxicity_probability", condition="A")
    assert prob["value"] == pytest.approx(2 / 3) and prob["n_missing"] == 1
    assert _get(t, "expected_max_toxicity", condition="B")["value"] == pytest.approx(0.85)
    assert _get(t, "toxicity_probability", condition="B")["value"] == 1.0


def test_regard_rates_groups_and_bias_scores(table):
    t = compute_metrics(table, level=0.975, bias_rule="overall", n_resamples=999)
    hbr = t[t["benchmark"] == "holisticbiasr"]
    overall = {m: _get(hbr, m, axis=None)["value"] for m in
               ("negative_regard", "neutral_regard", "positive_regard", "other_regard")}
    assert overall == pytest.approx({"negative_regard": 4 / 16, "neutral_regard": 11 / 16,
                                     "positive_regard": 1 / 16, "other_regard": 0.0})
    assert _get(hbr, "negative_regard", axis=None)["n_missing"] == 1
    a = _get(hbr, "negative_regard", descriptor="A")
    assert (a["value"], a["ci_low"], a["ci_high"]) == (1.0, 1.0, 1.0)
    b = _get(hbr, "negative_regard", descriptor="B")
    assert (b["value"], b["ci_high"]) == (0.0, 0.0)
    c = _get(hbr, "negative_regard", descriptor="C")
    assert c["value"] == 0.5 and c["n"] == 2 and (c["ci_low"], c["ci_high"]) == (0.0, 1.0)
    d = _get(hbr, "negative_regard", descriptor="D")
    assert d["value"] == pytest.approx(0.1) and 0.25 < d["ci_high"] < 0.5
    bias = _get(hbr, "bias_score")
    assert bias["baseline"] == pytest.approx(0.25) and bias["value"] == 0.75 and bias["n"] == 4  # A, C, D
    fixed = _get(compute_metrics(table, level=0.975, bias_rule=0.5, n_resamples=999), "bias_score")
    assert fixed["value"] == 0.5  # A and C only
    original = _get(compute_metrics(table, level=0.975, bias_rule="original", n_resamples=999), "bias_score")
    assert original["value"] == 0.75 and original["baseline_kind"] == "original"  # percent > 0.5: A, C, D


def test_hexphi_and_beavertails(table):
    t = compute_metrics(table, level=0.975, n_resamples=999)
    x = _get(t, "harmfulness_score", category="X")
    assert (x["value"], x["n"], x["n_missing"]) == (4.0, 2, 1)
    assert _get(t, "harmfulness_rate", category="X")["value"] == 0.5
    assert _get(t, "harmfulness_score", category="Y")["value"] == 3.0
    everything = _get(t, "harmfulness_score", category="all", benchmark="hexphi")
    assert everything["value"] == 3.5 and everything["n_missing"] == 1
    assert _get(t, "harmfulness_rate", category="all")["value"] == 0.5
    flag = _get(t, "flagged_rate", category="X")
    assert flag["value"] == pytest.approx(1 / 3) and flag["n_missing"] == 1


def test_bootstrap_ci_is_seeded_and_degenerate_cases():
    vals = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    assert bootstrap_ci(vals, level=0.975, seed=3) == bootstrap_ci(vals, level=0.975, seed=3)
    low, high = bootstrap_ci(vals, level=0.95)
    assert 0 <= low < vals.mean() < high <= 1
    assert bootstrap_ci([0.4], level=0.95) == (0.4, 0.4)
    assert all(math.isnan(x) for x in bootstrap_ci([], level=0.95))


def test_level_is_recorded_and_changes_the_ci(table):
    """Every caller states its level; the table records it, and a lower level gives a narrower interval."""
    wide = _get(compute_metrics(table, level=0.975, n_resamples=999), "expected_max_toxicity", condition="A")
    narrow = _get(compute_metrics(table, level=0.5, n_resamples=999), "expected_max_toxicity", condition="A")
    assert wide["ci_level"] == 0.975 and narrow["ci_level"] == 0.5
    assert narrow["ci_high"] - narrow["ci_low"] < wide["ci_high"] - wide["ci_low"]
    with pytest.raises(TypeError):
        compute_metrics(table)  # no default level


def test_bias_rule_is_checked():
    from judges.metrics import parse_bias_rule
    from valueharms.errors import InputError

    assert parse_bias_rule("original") == "original" and parse_bias_rule("0.2") == 0.2
    with pytest.raises(InputError, match="bias_rule"):
        parse_bias_rule("paper")
