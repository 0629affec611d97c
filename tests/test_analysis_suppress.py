"""Data-driven value suppression: recommendation from a regression table, YAML snippet, measured effect."""

from __future__ import annotations

import pandas as pd
import yaml

from analysis import auto_suppress
from analysis.data import load_run
from analysis.regression import regress
from analysis.synthetic import make_synthetic_run


def test_recommend_takes_significant_positive_top_k():
    table = pd.DataFrame([
        {"benchmark": "hexphi", "category": "Adult", "value": "Power", "coef": 0.5, "std_coef": 0.6, "p_bh": 0.01},
        {"benchmark": "hexphi", "category": "Adult", "value": "Hedonism", "coef": 0.4, "std_coef": 0.7, "p_bh": 0.02},
        {"benchmark": "hexphi", "category": "Adult", "value": "Tradition", "coef": 0.9, "std_coef": 0.9, "p_bh": 0.2},
        {"benchmark": "hexphi", "category": "Adult", "value": "Security", "coef": -0.9, "std_coef": -0.9, "p_bh": 0.001},
        {"benchmark": "hexphi", "category": "Fraud", "value": "Power", "coef": 0.1, "std_coef": 0.1, "p_bh": 0.5},
    ])
    assert auto_suppress.recommend(table, k=1) == {"hexphi": {"Adult": ["Hedonism"]}}
    assert auto_suppress.recommend(table, k=3) == {"hexphi": {"Adult": ["Hedonism", "Power"]}}
    snippet = yaml.safe_load(auto_suppress.config_snippet({"hexphi": {"Adult": ["Hedonism"]}}, 1, 0.05))
    assert snippet == {"suppress": {"hexphi": {"Adult": ["Hedonism"]}}}


def test_measure_effect_on_synthetic_run(tmp_path):
    frame = load_run(make_synthetic_run(tmp_path / "run", n_adapters=24, n_prompts=6, power_effect=0.12))
    mapping = auto_suppress.recommend(regress(frame))
    assert mapping["hexphi"]["Adult Content"] == ["Power"]
    effect = auto_suppress.measure(frame, mapping)
    assert set(effect["group"]) == {"vanilla", "VIM"} and (effect["mean_delta"] <= 0).all()
    assert (effect.loc[effect["group"] == "VIM", "mean_delta"] < -0.2).all()  # 1-5 rounding hides vanilla's
    assert auto_suppress.measure(frame, {"hexphi": {"Adult Content": ["Tradition"]}}).empty
