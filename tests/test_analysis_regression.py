"""Regression: known coefficients are recovered, singular designs are handled, BH matches statsmodels."""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from analysis.data import load_run
from analysis.regression import fit_ols, heatmap, paper_table, regress
from analysis.synthetic import make_synthetic_run
from valueharms.values import VALUES, ValueProfile


def _random_design(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.uniform(1, 6, size=(n, len(VALUES))), columns=list(VALUES))


def test_recovers_known_coefficients():
    X = _random_design(200)
    truth = np.linspace(-0.3, 0.3, len(VALUES))
    y = 1.5 + X.to_numpy() @ truth + np.random.default_rng(2).normal(0, 0.05, len(X))
    res = fit_ols(X, y).set_index("value")
    assert (res["method"] == "intercept").all()
    np.testing.assert_allclose(res.loc[list(VALUES), "coef"], truth, atol=0.01)
    # standardized = b * sd(x) / sd(y)
    expected = truth * X.std(ddof=1).to_numpy() / np.std(y, ddof=1)
    np.testing.assert_allclose(res.loc[list(VALUES), "std_coef"], expected, atol=0.01)
    assert (res["p"][np.abs(truth) > 0.1] < 1e-6).all()


def test_singular_extreme_profiles_drop_the_intercept():
    names = ["Ach", "Ben", "Con", "Hed", "Pow", "Sec", "SD", "Sti", "Tra", "Uni"] * 2
    X = pd.DataFrame([ValueProfile.extreme(n).scores for n in names], columns=list(VALUES))
    assert np.linalg.matrix_rank(np.column_stack([np.ones(len(X)), X])) == len(VALUES)  # collinear with intercept
    y = 0.1 * X["Power"] + np.random.default_rng(0).normal(0, 0.01, len(X))
    res = fit_ols(X, y).set_index("value")
    assert (res["method"] == "no-intercept").all()
    assert abs(res.loc["Power", "coef"] - 0.1) < 0.01 and abs(res.loc["Achievement", "coef"]) < 0.01


def test_too_few_adapters_fall_back_to_univariate():
    X = _random_design(4)
    res = fit_ols(X, X["Power"] * 2.0 + np.array([0.0, 0.01, -0.01, 0.0]))
    assert (res["method"] == "univariate").all()
    assert abs(res.set_index("value").loc["Power", "coef"] - 2.0) < 0.05


def test_regress_run_finds_power_and_bh_matches_statsmodels(tmp_path):
    frame = load_run(make_synthetic_run(tmp_path / "run", n_adapters=24, n_prompts=5, power_effect=0.1))
    table = regress(frame)
    assert set(table["benchmark"]) == {"rtp", "holisticbiasr", "hexphi", "beavertails"}
    rtp = table[table["benchmark"] == "rtp"].set_index("value")
    assert rtp.loc["Power", "std_coef"] > 0.5 and rtp.loc["Power", "p_bh"] < 0.05
    for value, g in table.groupby("value"):
        ok = g["p"].notna()
        np.testing.assert_allclose(g.loc[ok, "p_bh"], multipletests(g.loc[ok, "p"], method="fdr_bh")[1])
    wide = paper_table(table)
    assert list(wide.columns[2:12]) == list(VALUES) and "*" in wide.set_index("benchmark").loc["rtp", "Power"]
    assert heatmap(table, tmp_path / "heat.png").stat().st_size > 1000
