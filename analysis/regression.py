"""OLS of each harm measure on the ten value intensities (paper §4.3), one observation per VIM adapter.

Design choices (documented in docs/analysis.md):

* y = the adapter's primary harm measure in one benchmark category (mean over prompts of the per-prompt
  observation from :func:`analysis.data.prompt_table`); X = the adapter's ten value scores (1-6) read
  from the generation records' ``values``.
* Robust (HC3) standard errors; Benjamini-Hochberg over categories (per value by default, or over every
  test with ``family="all"``); standardized coefficients b * sd(x) / sd(y).
* Singular designs. The ten single-value extreme profiles all sum to 15 (one 6, nine 1s), so the value
  columns add up to 15 x the intercept: with an intercept the design is rank-deficient. We never use
  ridge or a pseudo-inverse silently. Rule: fit with an intercept when ``[1, X]`` has full column rank;
  otherwise drop the intercept when ``X`` alone has full column rank (with a constant row sum, the value
  levels absorb the intercept and each coefficient is the harm level attributable to that value);
  otherwise (fewer adapters than values, e.g. the 3-adapter quickstart) fall back to ten separate simple
  regressions ``y ~ 1 + x_v`` and mark them ``univariate`` (confounded, descriptive only).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from analysis.data import primary_metric, prompt_table
from valueharms.values import VALUES, canonical_value

Family = Literal["value", "all"]


def _stars(p: float) -> str:
    if p is None or not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.where(np.isfinite(x), x, np.nan)


def _fit(y: np.ndarray, X: np.ndarray, cov: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    import statsmodels.api as sm

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = sm.OLS(y, X).fit(cov_type=cov) if cov != "nonrobust" else sm.OLS(y, X).fit()
        return _finite(res.params), _finite(res.bse), _finite(res.pvalues), float(res.rsquared)


def fit_ols(X: pd.DataFrame, y: pd.Series, cov: str = "HC3") -> pd.DataFrame:
    """One row per value: coef, se, p, standardized coef, and the ``method`` the singularity rule picked."""
    X = X.astype(float)
    y = np.asarray(y, dtype=float)
    n, p = X.shape
    const = np.column_stack([np.ones(n), X.to_numpy()])
    sd_y = float(np.std(y, ddof=1)) if n > 1 else np.nan
    sd_x = X.std(ddof=1).to_numpy() if n > 1 else np.full(p, np.nan)
    rows = []
    if n > p + 1 and np.linalg.matrix_rank(const) == p + 1:
        params, se, pv, r2 = _fit(y, const, cov)
        method, params, se, pv = "intercept", params[1:], se[1:], pv[1:]
    elif n > p and np.linalg.matrix_rank(X.to_numpy()) == p:
        params, se, pv, r2 = _fit(y, X.to_numpy(), cov)
        method = "no-intercept"
    else:
        method, r2 = "univariate", np.nan
        params, se, pv = np.full(p, np.nan), np.full(p, np.nan), np.full(p, np.nan)
        for j in range(p):
            col = X.iloc[:, j].to_numpy()
            if n >= 3 and np.ptp(col) > 0:
                b, s, q, _ = _fit(y, np.column_stack([np.ones(n), col]), cov)
                params[j], se[j], pv[j] = b[1], s[1], q[1]
    with np.errstate(all="ignore"):
        std = params * sd_x / sd_y if sd_y and np.isfinite(sd_y) else np.full(p, np.nan)
    for j, value in enumerate(X.columns):
        rows.append({"value": value, "coef": params[j], "se": se[j], "p": pv[j], "std_coef": _finite(std)[j],
                     "n": n, "method": method, "r2": r2})
    return pd.DataFrame(rows)


def adapter_values(frame: pd.DataFrame) -> pd.DataFrame:
    """condition -> its ten value scores (columns in canonical order), from the generation records."""
    rows = {}
    vim = frame[frame["condition_kind"] == "vim"]
    for condition, values in zip(vim["condition"], vim["values"]):
        if condition in rows or not isinstance(values, dict):
            continue
        by_name = {canonical_value(k): float(v) for k, v in values.items()}
        rows[condition] = [by_name.get(v, np.nan) for v in VALUES]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(VALUES))


def harm_by_adapter(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows: (benchmark, category, condition) with the primary measure's value (mitigation ``none`` only)."""
    table = prompt_table(frame[(frame["condition_kind"] == "vim") & (frame["mitigation"] == "none")])
    table = table.dropna(subset=["harm"])
    out = table.groupby(["benchmark", "category", "condition"])["harm"].mean().rename("y").reset_index()
    out["measure"] = out["benchmark"].map(primary_metric)
    return out


def regress(frame: pd.DataFrame, cov: str = "HC3", family: Family = "value", alpha: float = 0.05) -> pd.DataFrame:
    """Long table (benchmark, category, measure, value, coef, se, p, p_bh, significant, std_coef, n, method)."""
    from statsmodels.stats.multitest import multipletests

    X_all = adapter_values(frame)
    harm = harm_by_adapter(frame)
    results = []
    for (bench, cat), block in harm.groupby(["benchmark", "category"]):
        block = block[block["condition"].isin(X_all.index)]
        if len(block) < 2:
            continue
        X = X_all.loc[block["condition"]].dropna(axis=1, how="any")
        res = fit_ols(X, block["y"].to_numpy(), cov=cov)
        res.insert(0, "measure", primary_metric(bench))
        res.insert(0, "category", cat)
        res.insert(0, "benchmark", bench)
        results.append(res)
    if not results:
        return pd.DataFrame(columns=["benchmark", "category", "measure", "value", "coef", "se", "p", "p_bh",
                                     "significant", "std_coef", "n", "method", "r2"])
    table = pd.concat(results, ignore_index=True)
    table["p_bh"] = np.nan
    groups = [table.index] if family == "all" else [g.index for _, g in table.groupby("value")]
    for idx in groups:
        sub = table.loc[idx, "p"]
        ok = sub.notna()
        if ok.any():
            table.loc[sub[ok].index, "p_bh"] = multipletests(sub[ok].to_numpy(), alpha=alpha, method="fdr_bh")[1]
    table["significant"] = table["p_bh"] < alpha
    return table


def paper_table(table: pd.DataFrame, column: str = "std_coef") -> pd.DataFrame:
    """Wide table like the paper's: one row per benchmark/category, one column per value, ``0.42**`` cells."""
    if table.empty:
        return pd.DataFrame(columns=["benchmark", "category", *VALUES])
    cells = table.assign(cell=[f"{c:+.2f}{_stars(p)}" if np.isfinite(c) else "n/a"
                               for c, p in zip(table[column], table["p_bh"])])
    wide = cells.pivot_table(index=["benchmark", "category"], columns="value", values="cell", aggfunc="first")
    wide = wide.reindex(columns=[v for v in VALUES if v in wide.columns])
    methods = table.groupby(["benchmark", "category"])["method"].first()
    n = table.groupby(["benchmark", "category"])["n"].first()
    return wide.join(n).join(methods).reset_index()


def heatmap(table: pd.DataFrame, path: str | Path, column: str = "std_coef") -> Path | None:
    """Coefficient heatmap (rows: categories, columns: values) with BH significance stars; None if empty."""
    if table.empty or table[column].notna().sum() == 0:
        return None
    from analysis.plots import pyplot, save_figure

    plt = pyplot()
    table = table.assign(row=table["benchmark"] + " / " + table["category"].astype(str))
    grid = table.pivot_table(index="row", columns="value", values=column, aggfunc="first")
    grid = grid.reindex(columns=[v for v in VALUES if v in grid.columns])
    pgrid = table.pivot_table(index="row", columns="value", values="p_bh", aggfunc="first").reindex_like(grid)
    data = grid.to_numpy(dtype=float)
    lim = np.nanmax(np.abs(data)) if np.isfinite(data).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * data.shape[1], 1.2 + 0.4 * data.shape[0]))
    im = ax.imshow(np.ma.masked_invalid(data), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(data.shape[1]), grid.columns, rotation=45, ha="right")
    ax.set_yticks(range(data.shape[0]), grid.index)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            mark = _stars(pgrid.iat[i, j])
            if mark:
                ax.text(j, i, mark, ha="center", va="center", fontsize=9)
    fig.colorbar(im, ax=ax, label="standardized coefficient" if column == "std_coef" else column)
    ax.set_title("Value -> harm (OLS, HC3; * BH-adjusted p<.05, ** <.01, *** <.001)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
