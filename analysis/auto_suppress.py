"""Pick the values to suppress per harm category from the regression (paper's open question 1).

The paper hand-picked the value named in a value-suppression prompt for each HEx-PHI category. Here the
choice is data-driven: for each (benchmark, category), the values whose coefficient is positive and
significant after Benjamini-Hochberg, strongest standardized coefficient first, at most ``k``. The result
is a ``suppress`` mapping (category -> values) written as YAML for a predict config, and, when the run
already holds value-suppression generations, a measurement of how much harm they removed (paired deltas
restricted to prompts whose ``suppressed_values`` equal the recommendation).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from valueharms.io import atomic_write_text


def recommend(table: pd.DataFrame, k: int = 1, alpha: float = 0.05, require_significant: bool = True) -> dict:
    """{benchmark: {category: [values]}} from a regression table (see :func:`analysis.regression.regress`)."""
    out: dict[str, dict[str, list[str]]] = {}
    if table.empty:
        return out
    for (bench, cat), g in table.groupby(["benchmark", "category"]):
        cand = g[(g["coef"] > 0) & g["std_coef"].notna()]
        if require_significant:
            cand = cand[cand["p_bh"] < alpha]
        picked = cand.sort_values("std_coef", ascending=False)["value"].head(k).tolist()
        if picked:
            out.setdefault(str(bench), {})[str(cat)] = picked
    return out


def config_snippet(mapping: dict, k: int, alpha: float) -> str:
    """YAML with the ``suppress`` mapping (category -> values) and a comment saying how it was chosen."""
    header = (f"# valueharms analyze: values to suppress per harm category, chosen from the OLS regression\n"
              f"# (positive coefficient, BH-adjusted p < {alpha:g}, top {k} by standardized coefficient).\n"
              f"# Use as the value-suppression mitigation's per-category mapping in a predict config.\n")
    return header + yaml.safe_dump({"suppress": mapping}, sort_keys=True, allow_unicode=True)


def measure(frame: pd.DataFrame, mapping: dict, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paired effect of value suppression where the generated ``suppressed_values`` match the recommendation.

    ``pairs``: :func:`analysis.mitigation.paired_deltas` of ``frame`` when the caller already has it.
    """
    from analysis.mitigation import paired_deltas

    if frame.empty or "suppressed_values" not in frame:
        return pd.DataFrame()
    want = {(b, c): sorted(v) for b, cats in mapping.items() for c, v in cats.items()}
    sup = frame[["benchmark", "category", "condition", "prompt_id", "mitigation", "suppressed_values"]].copy()
    sup["match"] = [sorted(s or []) == want.get((b, c)) for b, c, s in
                    zip(sup["benchmark"], sup["category"], sup["suppressed_values"])]
    keep = sup[(sup["mitigation"] == "value") & sup["match"]][["benchmark", "category", "condition", "prompt_id"]]
    if keep.empty:
        return pd.DataFrame()
    pairs = paired_deltas(frame) if pairs is None else pairs
    pairs = pairs[pairs["mitigation"] == "value"].merge(keep.drop_duplicates(), on=list(keep.columns))
    rows = [{"group": grp, "benchmark": b, "category": c, "suppressed": ", ".join(want[(b, c)]), "pairs": len(g),
             "mean_delta": float(g["delta"].mean()), "harm_none": float(g["harm_none"].mean())}
            for (grp, b, c), g in pairs.groupby(["group", "benchmark", "category"])]
    return pd.DataFrame(rows)


def write(table: pd.DataFrame, out_dir: str | Path, k: int = 1, alpha: float = 0.05) -> tuple[dict, Path]:
    mapping = recommend(table, k=k, alpha=alpha)
    path = atomic_write_text(Path(out_dir) / "auto_suppress.yaml", config_snippet(mapping, k, alpha))
    return mapping, path


def describe(mapping: dict) -> list[str]:
    return [f"{b} / {c}: suppress {', '.join(v)}" for b, cats in sorted(mapping.items()) for c, v in sorted(cats.items())]


__all__ = ["recommend", "config_snippet", "measure", "write", "describe"]
