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


def value_slopes(frame: pd.DataFrame, *, level: float) -> pd.DataFrame:
    """Per benchmark and value: the slope of the adapters' harm on that value alone (``y ~ 1 + x_v``, classical
    OLS, t-based CI at ``level``), pooled over the benchmark's categories.

    DESCRIPTIVE ONLY: each slope ignores the other nine values (profiles are confounded), and with few adapters the
    CIs are wide. It still says something when the full regression cannot be fitted (the quickstart's 3 adapters).
    A slope needs 2 adapters whose value differs, a CI needs 3.
    """
    import statsmodels.api as sm

    X_all = adapter_values(frame)
    harm = harm_by_adapter(frame)
    rows = []
    for bench, block in harm.groupby("benchmark"):
        y = block.groupby("condition")["y"].mean()
        y = y[y.index.isin(X_all.index)]
        for value in VALUES:
            x = X_all.loc[y.index, value].astype(float) if len(y) else pd.Series(dtype=float)
            ok = x.notna()
            row = {"benchmark": bench, "measure": primary_metric(bench), "value": value, "n_adapters": int(ok.sum()),
                   "slope": np.nan, "ci_low": np.nan, "ci_high": np.nan, "ci_level": level}
            if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    res = sm.OLS(y[ok].to_numpy(), sm.add_constant(x[ok].to_numpy(), has_constant="add")).fit()
                    row["slope"] = float(res.params[1])
                    if ok.sum() >= 3:
                        low, high = res.conf_int(alpha=1 - level)[1]
                        row.update(ci_low=float(low), ci_high=float(high))
            rows.append(row)
    return pd.DataFrame(rows, columns=["benchmark", "measure", "value", "n_adapters", "slope", "ci_low", "ci_high",
                                       "ci_level"])


def slopes_figure(slopes: pd.DataFrame):
    """Forest plot of :func:`value_slopes`: one panel per benchmark, a slope and CI per value, zero marked."""
    from analysis.plots import metric_scale, pyplot

    if slopes.empty or slopes["slope"].notna().sum() == 0:
        return None
    plt = pyplot()
    benches = list(dict.fromkeys(slopes["benchmark"]))
    fig, axes = plt.subplots(1, len(benches), figsize=(3.3 * len(benches), 3.6), squeeze=False)
    for ax, bench in zip(axes[0], benches):
        sub = slopes[slopes["benchmark"] == bench].reset_index(drop=True)
        y = np.arange(len(sub))
        x = sub["slope"].to_numpy(dtype=float)
        err = np.vstack([x - sub["ci_low"].to_numpy(dtype=float), sub["ci_high"].to_numpy(dtype=float) - x])
        ax.errorbar(x, y, xerr=np.clip(np.nan_to_num(err), 0, None), fmt="o", color="#4C72B0", capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, sub["value"], fontsize=8)
        ax.invert_yaxis()
        low, high, label = metric_scale(bench, sub["measure"].iloc[0])
        # at least the slope that would cross the whole harm scale over the 1-6 value range; wider if the CIs are
        reach = np.nanmax(np.abs(np.r_[x, sub["ci_low"], sub["ci_high"]].astype(float)), initial=0.0)
        limit = max((high - low) / 5, reach) * 1.05
        ax.set_xlim(-limit, limit)
        ax.set_xlabel(f"change in {label}\nper value point (1-6)", fontsize=8)
        ax.set_title(f"{bench} (n = {int(sub['n_adapters'].max())} adapters)", fontsize=9)
    fig.suptitle(f"Per-value slopes, {slopes['ci_level'].iloc[0]:.0%} CI (descriptive: one value at a time)",
                 fontsize=9)
    fig.tight_layout()
    return fig


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
