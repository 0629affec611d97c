"""Model conditions (vanilla, adapters, ICL) crossed with mitigations, and the stop strings each gets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.base import BenchmarkSpec, with_early_stop
from benchmarks.provenance import adapter_sha256
from valueharms.adapters import find_adapters, read_metadata
from valueharms.errors import InputError
from valueharms.prompts import VIM_SYSTEM_PROMPT, PromptSpec
from valueharms.values import ValueProfile, canonical_value, load_distributions, read_names

MITIGATIONS = ("none", "safety", "value", "dual")


@dataclass
class Condition:
    """A model condition: which adapter (if any) and which ICL profile (if any)."""

    name: str
    kind: str  # vanilla | vim | benign | icl
    adapter: str | None = None
    adapter_name: str | None = None
    profile: ValueProfile | None = None
    adapter_sha256: str | None = None

    def stop_for(self, spec: BenchmarkSpec, table: Mapping[str, Mapping[str, list[str]]] | None = None,
                 early: bool = True) -> list[str]:
        """The benchmark's stop strings for this condition's kind, or an override ``{kind: {benchmark | "*": [..]}}``;
        with ``early`` also the benchmark's ``stop_after_scored`` strings (the scored text stays the same)."""
        per = (table or {}).get(self.kind)
        if per is not None and (spec.name in per or "*" in per):
            return with_early_stop(per.get(spec.name, per.get("*", [])), spec.stop_after_scored if early else ())
        return spec.stop_for(self.kind, early)


def build_conditions(*, vanilla: bool = True, adapters: Sequence[str] = (), adapters_root: str | None = None,
                     icl_distributions: str | None = None, icl_names: Sequence[str] = (),
                     icl_names_file: str | None = None, adapter_kinds: Sequence[str] = ()) -> list[Condition]:
    """Resolve the configured conditions; adapter folders must be complete value-harms adapters (each hashed, so
    a retrained adapter is told apart from the one a stored generation came from); ``adapter_kinds`` keeps only
    adapters of those kinds (``vim``, ``benign``)."""
    conds: list[Condition] = [Condition("vanilla", "vanilla")] if vanilla else []
    infos = [read_metadata(a) for a in adapters]
    if adapters_root:
        if not Path(adapters_root).is_dir():
            raise InputError(adapters_root, None, None, "adapters_root folder not found")
        infos += find_adapters(adapters_root)
    seen: set[str] = set()
    for info in infos:
        if info.condition in seen or (adapter_kinds and info.kind not in adapter_kinds):
            continue
        seen.add(info.condition)
        conds.append(Condition(info.condition, info.kind, str(info.path), f"a{len(seen)}", info.profile,
                               adapter_sha256(info.path)))
    names = icl_name_list(icl_names, icl_names_file)
    if icl_distributions:
        profiles = load_distributions(icl_distributions, names or None)
        conds += [Condition(f"icl:{name}", "icl", profile=p) for name, p in profiles.items()]
    if not conds:
        raise InputError(None, None, "conditions", "no model condition configured (vanilla, adapters or icl)")
    return conds


def icl_name_list(icl_names: Sequence[str] = (), icl_names_file: str | None = None) -> list[str]:
    """The ICL profiles asked for: ``icl_names`` then the file's names, once each (empty: every distribution; an
    empty names file is refused by :func:`read_names`)."""
    return list(dict.fromkeys([*icl_names, *(read_names(icl_names_file) if icl_names_file else [])]))


CONDITION_KINDS = ("vanilla", "vim", "benign", "icl")
VIM_SYSTEM_PROMPT_KEY = "@vim"  # stands for the system prompt VIM adapters of chat models are trained with


def check_system_prompts(table: Mapping[str, str] | None) -> dict[str, str]:
    """``{kind or "*": text}`` checked: known kinds only, ``@vim`` resolved to VIM's training system prompt."""
    out: dict[str, str] = {}
    for kind, text in (table or {}).items():
        if kind not in (*CONDITION_KINDS, "*"):
            raise InputError(None, None, "system_prompt",
                             f"unknown condition kind {kind!r} (known: {', '.join(CONDITION_KINDS)}, or '*')")
        if not isinstance(text, str) or not text.strip():
            raise InputError(None, None, f"system_prompt.{kind}", "expected a non-empty text (or '@vim')")
        out[kind] = VIM_SYSTEM_PROMPT if text.strip() == VIM_SYSTEM_PROMPT_KEY else text
    return out


def system_prompt_for(table: Mapping[str, str], kind: str) -> str | None:
    """The system prompt of one condition kind (its own entry, else ``*``, else none)."""
    return table.get(kind, table.get("*"))


def suppressed_values(suppress: Mapping[str, Sequence[str]] | Sequence[str] | None, category: str | None) -> list[str]:
    """Values to suppress for one prompt: a list for all prompts, or ``{category or "*": [values]}``."""
    if not suppress:
        return []
    if isinstance(suppress, Mapping):
        values = suppress.get(category or "", suppress.get("*", []))
    else:
        values = suppress
    return [canonical_value(v) for v in values]


def prompt_spec(fmt: str, cond: Condition, mitigation: str, values: Sequence[str], **templates: Any) -> PromptSpec:
    """The PromptSpec for one (condition, mitigation, category) triple."""
    if mitigation not in MITIGATIONS:
        raise InputError(None, None, "mitigations", f"unknown mitigation {mitigation!r} (known: {', '.join(MITIGATIONS)})")
    use_values = list(values) if mitigation in ("value", "dual") else []
    return PromptSpec(fmt=fmt, icl_profile=cond.profile if cond.kind == "icl" else None,
                      suppress=use_values, safety=mitigation in ("safety", "dual"),
                      **{k: v for k, v in templates.items() if v is not None})
