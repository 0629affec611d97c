"""``valueharms plan --study configs/study/paper``: a CPU dry run of a whole study before any GPU time is spent.

It checks that every input exists and parses, counts the training examples and tokens of every distribution (the
examples ``prepare`` writes, split the same way), counts the generations per benchmark x condition x mitigation of
each predict config, estimates GPU-hours from a perf results file, writes one exact model input per condition kind,
benchmark and mitigation, and ends with one line naming whatever is missing.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import yaml

from analysis.plan_counts import distribution_counts, token_lengths, totals
from analysis.plan_gen import generation_counts, read_predict_config, write_model_inputs
from valueharms.errors import InputError
from valueharms.io import atomic_write_json, atomic_write_text
from valueharms.values import load_distributions, read_names
from vim.data import SPLITS, load_arguments, load_survey, split_items

STUDY_TOKENIZER_FALLBACK = "smollm2-135m"
#: perf result keys tried in order (regexes over flattened keys); the perf script owns the file format
TRAIN_RATE_KEYS = (r"train.*packed.*tok_s$", r"train.*tok_s$")
GEN_RATE_KEYS = (r"vllm.*tok_s$", r"engine_mixed.*tok_s$", r"engine.*tok_s$", r"(hf_)?generat.*tok_s$")
VALID_COST = 1 / 3  # a validation token costs a forward pass, about a third of a training step


def _yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(path, None, None, "not found (a study folder holds study.yaml and fit.yaml)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InputError(path, None, None, f"not a readable YAML file ({str(err).splitlines()[0]})") from None


def study_names(folder: Path) -> tuple[list[str], list[str]]:
    """``(distributions, benign tasks)`` from the folder's ``study.yaml``; a names file that is not there yet is
    one line saying how to get it."""
    manifest = _yaml(folder / "study.yaml")
    names_file = manifest.get("names_file")
    if not isinstance(names_file, str):
        raise InputError(folder / "study.yaml", None, "names_file", "expected the path of a names file")
    if not Path(names_file).is_file():
        raise InputError(names_file, None, "names_file", "not found; 'valueharms data' fetches the study's files")
    benign = manifest.get("benign") or []
    if not isinstance(benign, list) or not all(isinstance(b, str) for b in benign):
        raise InputError(folder / "study.yaml", None, "benign", "expected a list of benign task names")
    return read_names(names_file), benign


def load_tokenizer_for(model: str | None, override: str | None) -> tuple[Any, str, bool]:
    """``(tokenizer, which, is_the_study's)``: the override, else the fit model's tokenizer if it is on this machine
    (no download), else the embedded SmolLM2 tokenizer."""
    from valueharms.model_loading import load_tokenizer

    if override:
        return load_tokenizer(override), override, False
    if model:
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(model, local_files_only=True), model, True
        except Exception:  # not cached here: fall back, and say so in the report
            pass
    return load_tokenizer(STUDY_TOKENIZER_FALLBACK), f"{STUDY_TOKENIZER_FALLBACK} (embedded; {model} not on this machine)", False


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def perf_rates(folder: Path) -> dict[str, Any]:
    """GPU throughput from the newest GPU perf result in ``folder`` (CPU results never stand in for a GPU)."""
    found: list[tuple[bool, str, Path, dict]] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError):
            continue
        if not isinstance(data, dict) or not re.match(r"(cuda|gpu)", str(data.get("device", "")).lower()):
            continue
        found.append(("7b" in str(data.get("shape", "")).lower(), str(data.get("date", "")), path, _flatten(data)))
    if not found:
        return {"source": None, "note": f"no GPU perf result in {folder} (run perf/run_perf.py on a GPU); "
                                        "GPU-hours not estimated"}
    shape_match, _, path, flat = max(found, key=lambda f: (f[0], f[1]))

    def pick(patterns: tuple[str, ...]) -> tuple[str | None, float | None]:
        for pattern in patterns:
            for key, value in flat.items():
                if re.search(pattern, key) and isinstance(value, (int, float)) and value > 0:
                    return key, float(value)
        return None, None

    train_key, train = pick(TRAIN_RATE_KEYS)
    gen_key, gen = pick(GEN_RATE_KEYS)
    return {"source": str(path), "shape": flat.get("shape"), "train_tok_s": train, "train_key": train_key,
            "gen_tok_s": gen, "gen_key": gen_key, "note": "" if shape_match else "not a 7B-shaped run"}


def _training_section(fit: dict[str, Any], names: list[str], args_tokenizer: str | None, missing: list[str],
                      notes: list[str]) -> dict[str, Any]:
    data = (fit.get("data") or {}).get("init_args") or {}
    model = (fit.get("model") or {}).get("init_args") or {}
    section: dict[str, Any] = {"distributions": len(names)}
    paths = {k: data.get(k) for k in ("distributions_file", "arguments", "survey")}
    for key, value in paths.items():
        if value and not Path(value).exists():
            missing.append(f"{value} ({key}; run `valueharms data`)")
    if any(v and not Path(v).exists() for v in paths.values()) or not paths["distributions_file"]:
        return section
    profiles = load_distributions(paths["distributions_file"], names)
    arguments = load_arguments(paths["arguments"])
    survey = load_survey(paths["survey"]) if paths["survey"] else None
    if not isinstance(survey, dict):
        import random

        survey = split_items(survey if survey is not None else arguments, random.Random(data.get("seed", 42)))
    tokenizer, which, _ = load_tokenizer_for(model.get("model"), args_tokenizer)
    lengths = token_lengths(tokenizer, arguments, survey)
    max_length = int(data.get("max_length", 128))
    counts = distribution_counts(arguments, survey, list(profiles.values()), threshold=float(data.get("threshold", 3.0)),
                                 seed=int(data.get("seed", 42)), lengths=lengths, max_length=max_length)
    epochs = int(data.get("epochs_per_stage", 5))
    section.update({"tokenizer": which, "max_length": max_length, "epochs_per_stage": epochs,
                    "per_distribution": counts})
    for stage in ("stage1", "stage2"):
        section[stage] = {s: {k: totals(counts, stage, s, k) for k in ("examples", "tokens", "trained_tokens",
                                                                       "over_max_length")} for s in SPLITS}
    s1 = section["stage1"]
    section["stage1"]["positive"] = sum(totals(counts, "stage1", s, "positive") for s in SPLITS)
    section["one_sided"] = sorted(n for n, c in counts.items()
                                  if sum(c["stage1"][s]["positive"] for s in SPLITS) in (0, sum(
                                      c["stage1"][s]["examples"] for s in SPLITS)))
    # tokens the GPU processes: each example cut at max_length, every epoch
    section["prepared"] = prepared_status(data, profiles, notes)
    section["train_tokens"] = epochs * (s1["train"]["trained_tokens"] + section["stage2"]["train"]["trained_tokens"])
    section["valid_tokens"] = epochs * (s1["valid"]["trained_tokens"] + section["stage2"]["valid"]["trained_tokens"])
    return section


def prepared_status(data: dict[str, Any], profiles: dict[str, Any], notes: list[str]) -> dict[str, int]:
    """How many distributions already have their training files where the fit reads them, and whether those files
    were built from the current inputs and settings (a stale folder would silently train on old data)."""
    from vim.prepare import data_hash, input_hashes, is_prepared

    template = str(data.get("data_dir", ""))
    if "{distribution}" not in template:
        return {}
    arguments, survey = Path(data["arguments"]), Path(data["survey"]) if data.get("survey") else None
    hashes = input_hashes(arguments, survey)
    settings = {"threshold": float(data.get("threshold", 3.0)), "seed": int(data.get("seed", 42)),
                "max_examples": None, "stage2_column_offset_bug": bool(data.get("stage2_column_offset_bug", False))}
    status = {"current": 0, "stale": 0, "absent": 0}
    stale = []
    for name, profile in profiles.items():
        folder = Path(template.replace("{distribution}", name))
        if not (folder / "prepare_report.json").is_file():
            status["absent"] += 1
        elif is_prepared(folder, data_hash(profile, arguments, survey, settings, hashes)):
            status["current"] += 1
        else:
            status["stale"] += 1
            stale.append(name)
    if stale:
        notes.append(f"{len(stale)} prepared folders were built from other inputs or settings (e.g. {stale[0]}): "
                     "rerun `valueharms prepare` for them or delete them before fitting")
    return status


def _markdown(report: dict[str, Any]) -> str:
    t = report["training"]
    lines = [f"# Plan for {report['study']}", "", f"Written {report['written']}.", ""]
    if "stage1" in t:
        lines += [f"## Training data ({t['distributions']} distributions; tokens: {t['tokenizer']})", "",
                  f"| stage | split | examples | tokens | tokens cut at {t['max_length']} | over max_length |",
                  "|---|---|---:|---:|---:|---:|"]
        for stage in ("stage1", "stage2"):
            for s in SPLITS:
                r = t[stage][s]
                lines.append(f"| {stage} | {s} | {r['examples']:,} | {r['tokens']:,} | {r['trained_tokens']:,} "
                             f"| {r['over_max_length']:,} |")
        prep = t.get("prepared") or {}
        lines += ["", f"Prepared training folders: {prep.get('current', 0)} current, {prep.get('stale', 0)} stale, "
                      f"{prep.get('absent', 0)} not yet written (`--prepare_data true` writes them)."]
        lines += ["", f"One-sided distributions (stage 1 has no positive or no negative example): "
                      f"{', '.join(t['one_sided']) or 'none'}.", ""]
    for cfg, gen in report["generation"].items():
        lines += [f"## Generations: {cfg}", "", "| benchmark | condition kind | mitigation | generations |",
                  "|---|---|---|---:|"]
        for bname, b in gen["counts"].items():
            for kind, per in b["generations"].items():
                lines += [f"| {bname} | {kind} ({b['conditions'][kind]}) | {m} | {n:,} |" for m, n in per.items()]
        lines.append("")
    cost = report["cost"]
    lines += ["## Estimated GPU time", "", f"- {cost['summary']}", *[f"- {n}" for n in report["notes"]]]
    if report["missing"]:
        lines += ["", "## Missing", "", *[f"- {m}" for m in report["missing"]]]
    return "\n".join(lines) + "\n"


def _cost(training: dict[str, Any], generation: dict[str, Any], rates: dict[str, Any]) -> dict[str, Any]:
    cost: dict[str, Any] = {"rates": rates}
    gen_tokens = sum(b["max_generated_tokens"] for g in generation.values() for b in g["counts"].values())
    cost["generated_tokens_upper_bound"] = gen_tokens
    parts = []
    if rates.get("train_tok_s") and "train_tokens" in training:
        work = training["train_tokens"] + VALID_COST * training["valid_tokens"]
        cost["train_gpu_hours"] = round(work / rates["train_tok_s"] / 3600, 1)
        parts.append(f"training ≈ {cost['train_gpu_hours']} GPU-h ({training['train_tokens']:,} training tokens over "
                     f"{training['epochs_per_stage']} epochs a stage + validation at {rates['train_tok_s']:,.0f} tok/s, "
                     f"{rates['train_key']})")
    if rates.get("gen_tok_s") and gen_tokens:
        cost["generation_gpu_hours_upper_bound"] = round(gen_tokens / rates["gen_tok_s"] / 3600, 1)
        parts.append(f"generation ≤ {cost['generation_gpu_hours_upper_bound']} GPU-h ({gen_tokens:,} new tokens at "
                     f"most, at {rates['gen_tok_s']:,.0f} tok/s, {rates['gen_key']})")
    source = rates.get("source") or "no GPU perf file"
    cost["summary"] = ("; ".join(parts) + f" [rates from {source}]") if parts else rates.get("note", source)
    return cost


def plan(study: str = "configs/study/paper", out: str | None = None, tokenizer: str | None = None,
         perf: str = "perf/results", prepare_data: bool = False, train_tok_s: float | None = None,
         gen_tok_s: float | None = None) -> dict[str, Any]:
    """Dry-run a study folder on CPU: inputs, data counts, generations, GPU-hours, exact model inputs.

    Args:
        study: folder with ``study.yaml`` (``names_file``: the distributions to train; optional ``benign``: the
            benign fine-tunes the predict configs expect under their ``adapters_root``), ``fit.yaml`` and
            ``predict*.yaml``.
        out: where the plan goes (default ``runs/<study name>/plan``): plan.json, plan.md, model_inputs/.
        tokenizer: tokenizer for the token counts (default: the fit model's if cached here, else SmolLM2's).
        perf: folder of perf result JSON files (GPU ones give the rates).
        prepare_data: also write every distribution's training data (``valueharms prepare`` with the fit's settings).
        train_tok_s: training rate to use instead of the perf file's (tokens/s on one GPU).
        gen_tok_s: generation rate to use instead of the perf file's (new tokens/s on one GPU).
    """
    folder = Path(study)
    if not folder.is_dir():
        raise InputError(folder, None, "study", "study folder not found")
    names, benign = study_names(folder)
    fit = _yaml(folder / "fit.yaml")
    out_dir = Path(out) if out else Path("runs") / folder.name / "plan"
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, None, "out", "exists and is not a folder")
    missing: list[str] = []
    notes: list[str] = []
    if prepare_data:
        notes.append(_prepare_all(fit, names))
    training = _training_section(fit, names, tokenizer, missing, notes)
    generation: dict[str, Any] = {}
    first = None
    if "per_distribution" in training:
        data = fit["data"]["init_args"]
        first = load_distributions(data["distributions_file"], names[:1])[names[0]]
    for cfg_path in sorted(folder.glob("predict*.yaml")):
        cfg = read_predict_config(cfg_path)
        counts, loaded, kinds = generation_counts(cfg, {"vim": names, "benign": benign}, missing, notes)
        files = write_model_inputs(cfg, loaded, kinds, first, out_dir / "model_inputs" / cfg_path.stem, missing)
        generation[cfg_path.name] = {"counts": counts, "model_inputs": files}
    if not generation:
        notes.append(f"no predict*.yaml in {folder}: generations not counted")
    rates = perf_rates(Path(perf))
    if train_tok_s or gen_tok_s:
        rates.update({k: v for k, v in (("train_tok_s", train_tok_s), ("gen_tok_s", gen_tok_s)) if v},
                     source="the command line", train_key="--train_tok_s", gen_key="--gen_tok_s")
    report = {"study": str(folder), "written": time.strftime("%Y-%m-%d %H:%M"), "training": training,
              "generation": generation, "cost": _cost(training, generation, rates), "notes": notes,
              "missing": sorted(set(missing))}
    atomic_write_json(out_dir / "plan.json", report)
    atomic_write_text(out_dir / "plan.md", _markdown(report))
    print(_markdown(report))
    print(f"plan written to {out_dir}/plan.md (model inputs under {out_dir}/model_inputs/)")
    if report["missing"]:
        raise InputError(None, None, None, f"missing: {'; '.join(report['missing'])}")
    return report


def _prepare_all(fit: dict[str, Any], names: list[str]) -> str:
    """Write every distribution's training data where the fit config reads it (``data_dir`` without the name)."""
    from vim.prepare import prepare

    data = fit["data"]["init_args"]
    template = str(data.get("data_dir", "runs/data/{distribution}"))
    root = template.split("{distribution}")[0].rstrip("/") or "."
    prepare(distributions=data["distributions_file"], out=root, names=names, arguments=data["arguments"],
            survey=data.get("survey"), threshold=float(data.get("threshold", 3.0)), seed=int(data.get("seed", 42)))
    return f"training data written under {root}/<distribution>/"
