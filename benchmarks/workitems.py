"""The work of a generation run: benchmarks x conditions x mitigations x samples as :class:`WorkItem`s, each with
the fingerprint of what will produce its text, and the run's resolved settings (what ``run.json`` records).

Why one place: the fingerprint, the recorded settings and the batches must agree on the effective decoding, stop
strings and prompt spec of every item; computing them once here keeps the hf and vLLM backends identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from benchmarks.base import Benchmark, Decoding
from benchmarks.conditions import Condition, prompt_spec, suppressed_values, system_prompt_for
from benchmarks.provenance import canonical_json, fingerprint, jsonable, prompt_identity
from valueharms.prompts import PromptSpec, load_icl_template

#: Loader options that select which prompts run (a change adds or drops keys; it never changes a stored text).
SELECTION_OPTIONS = ("limit", "max_categories")


@dataclass(slots=True)
class WorkItem:
    """One generation: a key and everything that decides its text."""

    key: str
    benchmark: str
    measure: str
    item: Any  # BenchmarkItem
    condition: Condition
    mitigation: str
    spec: PromptSpec
    sample_index: int
    decoding: Decoding
    stop: tuple[str, ...]
    fingerprint: str

    @property
    def request(self) -> str:
        """The key without its sample index: the samples of one prompt form one request."""
        return self.key.rsplit("|", 1)[0]


@dataclass
class GenerationPlan:
    """Resolved settings of a run; ``items()`` expands them, ``config()`` is what ``run.json`` records."""

    benchmarks: Mapping[str, tuple[Benchmark, str | None, dict[str, Any]]]  # name -> (loaded, source, options)
    conditions: Sequence[Condition]
    producer: Mapping[str, Any]  # model identity, dtype, backend, greedy (from the GenerationModule)
    mitigations: Sequence[str] = ("none",)
    suppress: Mapping[str, Sequence[str]] | Sequence[str] | None = None
    templates: Mapping[str, Any] = field(default_factory=dict)
    stop_table: Mapping[str, Mapping[str, list[str]]] = field(default_factory=dict)
    early_stop: bool = True
    samples: int | None = None
    max_new_tokens: int | None = None
    seed: int = 42
    icl_template: str = "study"
    system_prompts: Mapping[str, str] = field(default_factory=dict)  # kind or "*" -> text (checked)
    _icl_texts: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def decoding(self, bench: Benchmark) -> Decoding:
        return bench.decoding.override(samples=self.samples, max_new_tokens=self.max_new_tokens,
                                       greedy=True if self.producer.get("greedy") else None)

    def templates_for(self, fmt: str, cond: Condition | None = None) -> dict[str, Any]:
        """Prompt templates for one input format (the ICL preamble differs between completion and qa) and condition
        (its kind's system prompt); the ICL template is read only when an ICL condition exists, so other runs need
        none of the study's files."""
        templates = dict(self.templates)
        system = system_prompt_for(self.system_prompts, cond.kind) if cond is not None else None
        if system is not None:
            templates["system_prompt"] = system
        if any(c.kind == "icl" for c in self.conditions):
            if fmt not in self._icl_texts:
                self._icl_texts[fmt] = load_icl_template(fmt, self.icl_template)  # type: ignore[arg-type]
            templates["icl_template"] = self._icl_texts[fmt]
        return templates

    def stop(self, bench: Benchmark, cond: Condition) -> tuple[str, ...]:
        return tuple(cond.stop_for(bench.spec, self.stop_table, early=self.early_stop))

    def _group_json(self, cond: Condition, spec: PromptSpec, decoding: Decoding, stop: tuple[str, ...]) -> str:
        """Canonical JSON of the parts shared by a group's items (the prompt text is added per item)."""
        dec = decoding.as_record()
        dec.pop("samples")  # how many keys exist, not how one text is made
        return canonical_json({"model": self.producer.get("model"), "dtype": self.producer.get("dtype"),
                               "backend": self.producer.get("backend"), "seed": self.seed,
                               "adapter": cond.adapter_sha256, "prompt": prompt_identity(spec), "decoding": dec,
                               "stop": list(stop)})

    def costs(self) -> dict[str, int]:
        """Approximate generations per condition (for splitting a run into shards)."""
        per = sum(len(b.items) * self.decoding(b).samples for b, _, _ in self.benchmarks.values())
        return {c.name: per * len(self.mitigations) for c in self.conditions}

    def items(self, conditions: set[str] | None = None) -> list[WorkItem]:
        """Every work item (of ``conditions`` only, when given), in benchmark, condition, mitigation, prompt order."""
        out: list[WorkItem] = []
        for name, (bench, _, _) in self.benchmarks.items():
            decoding = self.decoding(bench)
            values_of = [suppressed_values(self.suppress, item.category) for item in bench.items]
            for cond in self.conditions:
                if conditions is not None and cond.name not in conditions:
                    continue
                stop = self.stop(bench, cond)
                for mit in self.mitigations:
                    groups: dict[tuple[str, ...], tuple[PromptSpec, str]] = {}  # one spec per suppressed-value set
                    for item, values in zip(bench.items, values_of):
                        if mit in ("value", "dual") and not values:
                            continue  # nothing to suppress for this category: identical to none/safety
                        if tuple(values) not in groups:
                            spec = prompt_spec(bench.fmt, cond, mit, values, **self.templates_for(bench.fmt, cond))
                            groups[tuple(values)] = (spec, self._group_json(cond, spec, decoding, stop))
                        spec, group_json = groups[tuple(values)]
                        fp = fingerprint(group_json, item.prompt)
                        out += [WorkItem(f"{name}|{cond.name}|{mit}|{item.id}|{s}", name, bench.spec.measure, item, cond,
                                         mit, spec, s, decoding, stop, fp) for s in range(decoding.samples)]
        return out

    def config(self) -> dict[str, Any]:
        """The run's settings as recorded in run.json: every field that changes how a stored key's text is made."""
        benchmarks, prompts = {}, {}
        kinds = {c.kind: c for c in self.conditions}  # one condition per kind shows the kind's prompt and stops
        for name, (bench, source, options) in self.benchmarks.items():
            dec = self.decoding(bench).as_record()
            dec.pop("samples")
            benchmarks[name] = {"source": source, "format": bench.fmt, "decoding": dec,
                                "options": {k: v for k, v in options.items() if k not in SELECTION_OPTIONS},
                                "stop": {kind: list(self.stop(bench, c)) for kind, c in kinds.items()}}
            for cond in kinds.values():
                for mit in self.mitigations:
                    spec = prompt_spec(bench.fmt, cond, mit, ["Power"] if mit in ("value", "dual") else [],
                                       **self.templates_for(bench.fmt, cond))
                    prompts[f"{bench.fmt}|{cond.kind}|{mit}"] = prompt_identity(spec, profile_values=False)
        conditions = {c.name: {"kind": c.kind, "adapter_sha256": c.adapter_sha256,
                               "values": c.profile.as_dict() if c.kind == "icl" and c.profile else None}
                      for c in self.conditions}
        suppress = self.suppress if isinstance(self.suppress, Mapping) else {"*": list(self.suppress or [])}
        return jsonable({"model": self.producer.get("model"), "dtype": self.producer.get("dtype"),
                         "backend": self.producer.get("backend"), "seed": self.seed, "benchmarks": benchmarks,
                         "prompts": prompts, "suppress": suppress, "conditions": conditions})


def batches(items: Sequence[WorkItem], size: int, per_request_settings: bool = False) -> list[list[int]]:
    """Index batches of at most ``size`` items.

    hf (``per_request_settings=False``): a batch shares benchmark, decoding and stop strings, while conditions mix
    (rows carry their own adapter); ICL items are kept apart, their ~1k-token preamble would pad every short row.
    vLLM takes settings per request, so its batches are plain chunks of the pending items, in order.
    """
    if per_request_settings:
        return [list(range(i, min(i + size, len(items)))) for i in range(0, len(items), size)]
    groups: dict[tuple, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((it.benchmark, it.decoding, it.stop, it.spec.icl_profile is not None), []).append(i)
    return [idx[i:i + size] for idx in groups.values() for i in range(0, len(idx), size)]
