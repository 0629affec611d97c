"""Generation side of ``valueharms plan``: generations per benchmark x condition x mitigation from a study's predict
configs, and one exact model input per (benchmark, condition kind, mitigation) for a person to read.

Why: the main experiment is 154 adapters + vanilla + 4 benign + 154 ICL profiles over four benchmarks (RTP 10
samples per prompt); the count fixes the cost, and reading the exact inputs catches a wrong template before any GPU
time is spent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from benchmarks.conditions import (Condition, check_system_prompts, icl_name_list, prompt_spec, suppressed_values,
                                   system_prompt_for)
from benchmarks.registry import get_spec, load_benchmark
from valueharms.adapters import find_adapters, read_metadata
from valueharms.errors import InputError
from valueharms.io import atomic_write_json, atomic_write_text
from valueharms.prompts import build_model_input, load_icl_template
from valueharms.values import ValueProfile, load_distributions

#: Prompt counts assumed when a benchmark's source cannot be read (the study's sizes; HEx-PHI's public release).
ASSUMED_PROMPTS = {"rtp": 3000, "holisticbiasr": 13760, "hexphi": 300, "beavertails": 700}
MITIGATIONS_WITH_VALUES = ("value", "dual")


def read_predict_config(path: Path) -> dict[str, Any]:
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InputError(path, None, None, f"not a readable YAML file ({str(err).splitlines()[0]})") from None
    init = ((cfg.get("data") or {}).get("init_args") or {}) if isinstance(cfg, dict) else {}
    if not isinstance(init.get("benchmarks"), dict):
        raise InputError(path, None, "data.init_args.benchmarks", "no benchmarks in this predict config")
    return cfg


def _expected_adapters(found: list[Condition], kind: str, names: Sequence[str]) -> tuple[list[Condition], str | None]:
    """The adapters of one kind a finished study will have: those trained, or all ``names`` when some are missing."""
    have = [c for c in found if c.kind == kind]
    if len(have) >= len(names):
        return have, None
    return [Condition(f"{kind}:{n}", kind) for n in names], f"{len(have)} complete {kind} adapters; counted as {len(names)}"


def conditions_of(init: Mapping[str, Any], expected: Mapping[str, Sequence[str]], missing: list[str],
                  notes: list[str]) -> dict[str, list[Condition]]:
    """Conditions by kind, as ``predict`` will resolve them once the study is trained: when ``adapters_root`` holds
    fewer adapters of a kind than ``expected[kind]`` names (the sweep's distributions, the study's benign
    fine-tunes), the expected ones are counted."""
    kinds: dict[str, list[Condition]] = {}
    wanted_kinds = set(init.get("adapter_kinds") or ("vim", "benign"))
    if init.get("vanilla", True):
        kinds["vanilla"] = [Condition("vanilla", "vanilla")]
    for path in init.get("adapters") or []:
        try:
            info = read_metadata(path)
            kinds.setdefault(info.kind, []).append(Condition(info.condition, info.kind, str(path), None, info.profile))
        except InputError:
            kind = "benign" if "benign" in str(path) else "vim"
            kinds.setdefault(kind, []).append(Condition(f"{kind}:{Path(path).name}", kind, str(path)))
            notes.append(f"adapter {path} not trained yet: counted as one {kind} condition")
    root = init.get("adapters_root")
    if root:
        found = [Condition(a.condition, a.kind, str(a.path), None, a.profile)
                 for a in (find_adapters(root) if Path(root).is_dir() else [])]
        for kind in ("vim", "benign"):
            if kind not in wanted_kinds or not (expected.get(kind) or any(c.kind == kind for c in found)):
                continue
            conds, note = _expected_adapters(found, kind, expected.get(kind, ()))
            kinds.setdefault(kind, []).extend(conds)
            if note:
                notes.append(f"{root}: {note}")
    if init.get("icl_distributions"):
        try:
            wanted = icl_name_list(init.get("icl_names") or (), init.get("icl_names_file"))
            profiles = load_distributions(init["icl_distributions"], wanted or None)
            kinds["icl"] = [Condition(f"icl:{n}", "icl", profile=p) for n, p in profiles.items()]
        except InputError as err:
            missing.append(err.one_line())
    return kinds


def _benchmark(name: str, opts: Any, init: Mapping[str, Any], missing: list[str]) -> Any:
    opts = dict(opts or {})
    if init.get("limit") is not None:
        opts["limit"] = init["limit"]
    try:
        return load_benchmark(name, opts.pop("source", None), **opts)
    except InputError as err:
        missing.append(err.one_line())
    except Exception as err:  # a hub id with no network: the source must be fetched first
        missing.append(f"{name}: {opts.get('source') or 'default source'} not available offline ({type(err).__name__})")
    return None


def generation_counts(cfg: dict[str, Any], expected: Mapping[str, Sequence[str]], missing: list[str],
                      notes: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[Condition]]]:
    """``(counts, loaded benchmarks, conditions)``; counts[benchmark][kind][mitigation] = generations."""
    init = cfg["data"]["init_args"]
    kinds = conditions_of(init, expected, missing, notes)
    mitigations = list(init.get("mitigations") or ["none"])
    suppress = init.get("suppress")
    counts: dict[str, Any] = {}
    loaded: dict[str, Any] = {}
    for name, opts in init["benchmarks"].items():
        spec = get_spec(name)
        bench = _benchmark(name, opts, init, missing)
        samples = init.get("samples_per_prompt") or spec.decoding.samples
        new_tokens = init.get("max_new_tokens") or spec.decoding.max_new_tokens
        if bench is not None:
            loaded[spec.name] = bench
            prompts = {m: sum(1 for it in bench.items if m not in MITIGATIONS_WITH_VALUES
                              or suppressed_values(suppress, it.category)) for m in mitigations}
        else:
            n = ASSUMED_PROMPTS.get(spec.name, 0)
            notes.append(f"{spec.name}: source not read; assumed {n} prompts")
            prompts = {m: n for m in mitigations}
        per = {kind: {m: len(conds) * prompts[m] * samples for m in mitigations} for kind, conds in kinds.items()}
        total = sum(v for d in per.values() for v in d.values())
        counts[spec.name] = {"prompts": prompts, "samples_per_prompt": samples, "max_new_tokens": new_tokens,
                             "conditions": {k: len(v) for k, v in kinds.items()}, "generations": per,
                             "total_generations": total, "max_generated_tokens": total * new_tokens}
    return counts, loaded, kinds


def write_model_inputs(cfg: dict[str, Any], loaded: Mapping[str, Any], kinds: Mapping[str, list[Condition]],
                       study_profile: ValueProfile | None, out: Path, missing: list[str]) -> list[str]:
    """One exact model input per (benchmark, condition kind, mitigation) under ``out``, rendered without a chat
    template as the study's base model (Llama-2-7B) reads it; returns the files."""
    init = cfg["data"]["init_args"]
    templates = {k: init.get(k) for k in ("safety_prompt", "suppression_template")}
    try:
        systems = check_system_prompts(init.get("system_prompt"))
    except InputError as err:
        missing.append(err.one_line())
        systems = {}
    written: list[str] = []
    index: dict[str, Any] = {}
    for bname, bench in loaded.items():
        if not bench.items:
            continue
        if "icl" in kinds:
            try:
                templates["icl_template"] = load_icl_template(bench.fmt, init.get("icl_template", "study"))
            except InputError as err:
                missing.append(err.one_line())
                templates.pop("icl_template", None)
        for kind, conds in kinds.items():
            cond = conds[0]
            if kind == "vim" and cond.profile is None and study_profile is not None:
                cond = Condition(cond.name, kind, profile=study_profile)
            if kind == "icl" and "icl_template" not in templates:
                continue
            for mit in init.get("mitigations") or ["none"]:
                item = next((it for it in bench.items if mit not in MITIGATIONS_WITH_VALUES
                             or suppressed_values(init.get("suppress"), it.category)), None)
                if item is None:
                    continue
                values = suppressed_values(init.get("suppress"), item.category)
                system = system_prompt_for(systems, kind)
                spec = prompt_spec(bench.fmt, cond, mit, values,
                                   **templates, **({"system_prompt": system} if system is not None else {}))
                text = build_model_input(item.prompt, spec, None)  # as the study's base model reads it: no chat template
                rel = f"{bname}.{kind}.{mit}.txt"
                atomic_write_text(out / rel, text)
                index[rel] = {"benchmark": bname, "condition": cond.name, "kind": kind, "mitigation": mit,
                              "prompt_id": item.id, "stop": cond.stop_for(bench.spec, init.get("stop"), early=init.get("stop_after_scored", True)),
                              "suppressed": values, "characters": len(text)}
                written.append(str(out / rel))
    if index:
        atomic_write_json(out / "index.json", index)
    return written
