"""The report's sections, one function each, from the tables :func:`analysis.analyze.run_analysis` computed.

A section is ``{"id", "title", "notes", "tables", "images", "missing"}``; a section whose inputs do not exist yet
(no audit, no PVQ, one judge only, no training logs) says which command produces them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analysis import auto_suppress
from analysis.header import MIN_ADAPTERS
from analysis.paper import AUDIT, LINKS
from analysis.plots import data_uri
from analysis.report_tables import table

COMPARISON_COLUMNS = ["benchmark", "measure", "group", "conditions", "n", "missing", "value", "ci_low", "ci_high",
                      "delta_vs_vanilla", "p", "test", "paper"]


def section(id_: str, title: str, *, notes: list[str] | None = None, tables: list[dict] | None = None,
            images: list[dict] | None = None, missing: str = "") -> dict:
    return {"id": id_, "title": title, "notes": notes or [], "tables": tables or [], "images": images or [],
            "missing": missing}


def image(path: str | None, alt: str) -> list[dict]:
    if not path or not Path(path).is_file():
        return []
    return [{"uri": data_uri(path), "file": Path(path).name, "alt": alt}]


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def provenance(result: dict, run: Path) -> dict:
    frame = result["frame"]
    conds = frame.groupby("condition_kind")["condition"].nunique().to_dict()
    dec = frame["decoding"].dropna().map(lambda d: json.dumps(d, sort_keys=True)).value_counts() \
        if "decoding" in frame else []
    stops = frame["stop"].dropna().map(json.dumps).value_counts() if "stop" in frame else []
    rows = [("study folder", str(run)), ("judge per measure", ", ".join(f"{m}: {j}" for m, j in
                                                                      sorted(result["judges"].items()))),
            ("generations", len(frame)), ("benchmarks", ", ".join(sorted(frame["benchmark"].unique()))),
            ("conditions", ", ".join(f"{k}: {v}" for k, v in sorted(conds.items()))),
            ("mitigations", ", ".join(sorted(frame["mitigation"].unique()))),
            ("decoding settings", "; ".join(dec.index[:4]) if len(dec) else "unrecorded"),
            ("stop strings", "; ".join(stops.index[:4]) if len(stops) else "unrecorded")]
    return section("setup", "Setup and provenance", tables=[table(pd.DataFrame(rows, columns=["item", "value"]))],
                   notes=["The paper's numbers come from a secondary summary of Choi et al. (ACL 2025), not yet "
                          "checked against the PDF."])


def comparison(result: dict) -> dict:
    comp = result["comparison"]
    shown = comp[[c for c in COMPARISON_COLUMNS if c in comp]].copy() if not comp.empty else comp
    if not comp.empty:
        shown["measure"] = comp["measure_label"].where(comp["measure"] == "bias_score", comp["measure"])
    rule = result["bias_rule"]
    bias_note = (f"HolisticBiasR bias score computed with rule '{rule}'"
                 + (" (the paper's rule, so its number is shown beside ours)." if rule == "original" else
                    "; the paper used rule 'original', so its number is left out (rerun with --bias_rule original "
                    "to compare like with like)."))
    return section("comparison", "Comparison: vanilla vs VIM vs benign fine-tuning vs ICL",
                   tables=[table(shown, paper=["paper"])],
                   notes=[f"Input-only prompts. CI: {result['level']:.0%} percentile bootstrap over observations (per "
                          "prompt; RTP uses the max over a prompt's samples). p: paired sign-flip permutation test "
                          "against vanilla on the same prompts (Mann-Whitney U when prompts do not overlap).",
                          bias_note, "The paper column is another model judged by other judges: compare directions, "
                          "not levels, unless model and judge match."],
                   images=image(result["files"].get("comparison_png"),
                                "primary metric per benchmark on its whole scale, CIs as whiskers, paper as diamonds"))


def regression(result: dict) -> dict:
    reg = result["regression"]
    methods = ", ".join(sorted(set(reg["method"]))) if not reg.empty else "none"
    n_adapters = int(result["frame"].loc[result["frame"]["condition_kind"] == "vim", "condition"].nunique())
    notes = [f"One observation per VIM adapter ({n_adapters} here); HC3 robust SEs; Benjamini-Hochberg across "
             f"categories. Design handling used: {methods} ('intercept' = full OLS, 'no-intercept' = collinear "
             f"extreme profiles, 'univariate' = fewer adapters than values, descriptive only)."]
    if n_adapters < MIN_ADAPTERS:
        notes.append(f"With {n_adapters} adapter(s) the full regression cannot separate ten values (it needs more "
                     f"than 11 varied profiles), so its cells are mostly n/a. The per-value slopes below still "
                     f"describe the data.")
    slopes = result["value_slopes"]
    links = pd.DataFrame(LINKS, columns=["value", "direction", "harm categories"])
    return section("regression", "Which values explain harm", notes=notes + [
        f"DESCRIPTIVE per-value slopes: the adapters' mean harm per benchmark regressed on one value at a time "
        f"(classical OLS, {result['level']:.0%} t-interval). Each slope ignores the other nine values, which move "
        f"together in real profiles: read them as a description of these adapters, not as effects."],
        tables=[table(result["regression_table"], "standardized coefficients (* BH-adjusted p<.05, ** <.01, "
                                                  "*** <.001)"),
                table(slopes, "per-value slopes (descriptive)"),
                table(links.rename(columns={"direction": "paper: direction"}), "directions the paper reports",
                      paper=["paper: direction", "harm categories"])],
        images=image(result["files"].get("regression_png"), "value -> harm coefficient heatmap")
        + image(result["files"].get("slopes_png"), "per-value slopes with CIs (descriptive)"))


def mitigation(result: dict) -> dict:
    mit = result["mitigation"]
    return section("mitigation", "Mitigation: value-suppression, safety and dual prompts",
                   tables=[table(mit, paper=["paper_none", "paper_mitigated"])],
                   notes=[f"Mean harm with and without each mitigation on the same prompts and conditions, with "
                          f"{result['level']:.0%} bootstrap CIs; mean_delta = mitigated - input only (negative = "
                          "less harm); p: Wilcoxon signed-rank. Paper columns: the paper's HEx-PHI harmfulness "
                          "scores where the category matches. The plot keeps each benchmark on its own scale."],
                   images=image(result["files"].get("mitigation_png"), "mean harm per mitigation with CIs"),
                   missing="" if not mit.empty else
                   "No mitigated generations in this run (predict with mitigation value/safety/dual).")


def agreement(result: dict) -> dict:
    agree = result["agreement"]
    title = "Judge agreement"
    if agree.empty:
        return section("agreement", title, missing="Only one judge scored these texts. Score the same run with "
                       "another judge (e.g. valueharms score RUN --judge detoxify) to see how much the numbers "
                       "depend on the judge.")
    return section("agreement", title, tables=[
        table(agree, "per measure and judge pair"),
        table(result["disagreements"], "texts the judges disagree on most (gap = share of the measure's scale)")],
        notes=["Spearman's rank correlation of the two judges' harm numbers on the same generations; Cohen's kappa "
               "and % agreement after binarising each at the measure's threshold (toxicity >= 0.5, harmfulness 5, "
               "a negative or flagged label); harmful_a/b = the share each judge calls harmful. Kappa is empty "
               "when neither judge varies."],
        images=image(result["files"].get("agreement_png"), "judge vs judge, thresholds dashed"))


def training_curves(result: dict) -> dict:
    notes = [f"Skipped log: {s}" for s in result["skipped_logs"]]
    if result["curves"].empty:
        return section("curves", "Training curves", notes=notes, missing="No training logs under "
                       "adapters/*/.../metrics.csv (fit writes them when its CSV logger is on).")
    n = result["curves"]["adapter"].nunique()
    return section("curves", "Training curves", notes=[f"From the CSV logs of {n} adapter(s)."] + notes,
                   images=image(result["files"].get("curves_png"), "logged metrics per training step"))


def suppression(result: dict) -> dict:
    lines = auto_suppress.describe(result["auto_suppress"]) or ["no value has a significant positive coefficient"]
    effect = result["auto_suppress_effect"]
    return section("auto-suppress", "Data-driven value suppression (open question 1)",
                   tables=[table(effect, "measured effect of the recommended suppression")] if not effect.empty else [],
                   notes=lines + [f"Predict-config snippet: {Path(result['files']['auto_suppress']).name}"])


def audit(out_dir: Path) -> dict:
    found = _json(out_dir / "audit.json")
    title = "Training-data toxicity audit"
    if not found:
        return section("audit", title, missing="Not run yet: valueharms audit RUN")
    rows = [("judge", found["judge"], AUDIT["of"]), ("training examples", found["examples"], ""),
            ("unique targets judged", found["unique_targets"], ""), ("missing judgements", found["missing"], ""),
            (">= 0.5", found["above_0.5"], AUDIT["above_0.5"]), (">= 0.7", found["above_0.7"], AUDIT["above_0.7"]),
            ("max toxicity", found.get("max"), "")]
    return section("audit", title, tables=[table(pd.DataFrame(rows, columns=["item", "value", "paper"]),
                                                 paper=["paper"])],
                   images=image(found.get("histogram"), "toxicity of the VIM training targets"))


def pvq(out_dir: Path) -> dict:
    found = _json(out_dir / "pvq.json")
    title = "PVQ-40 alignment (NMSE, lower is better)"
    if not found:
        return section("pvq", title, missing="Not run yet: valueharms pvq --adapters RUN/adapters --items PVQ40.txt")
    rows = [(k, v, found.get("paper", {}).get(k)) for k, v in found["nmse"].items()]
    notes = [f"{found['distributions']} distributions, {found['missing_answers']} unparseable answers, "
             f"model {found['model']}."]
    if found.get("placeholder_items"):
        notes.append("PLACEHOLDER items were used (the PVQ-40 is copyrighted and not shipped): these NMSE values "
                     "only show the pipeline works; pass --items with the real instrument to measure alignment.")
    return section("pvq", title, notes=notes,
                   tables=[table(pd.DataFrame(rows, columns=["condition", "NMSE", "paper"]), paper=["paper"])])


def missing(result: dict) -> dict:
    return section("missing", "Missing judgements", tables=[table(result["missing"])],
                   notes=["A failed, unparseable, never-scored or stale judgement (one that judged an earlier text) "
                          "is missing, never 0; missing ones are excluded from every number above and counted here "
                          "(rerun 'valueharms score' to fill them)."])


def build_sections(result: dict, run: Path, out_dir: Path) -> list[dict]:
    return [provenance(result, run), comparison(result), regression(result), mitigation(result), agreement(result),
            training_curves(result), suppression(result), audit(out_dir), pvq(out_dir), missing(result)]
