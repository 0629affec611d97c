"""Benchmark generation through LightningCLI ``predict``: work items (benchmark x condition x mitigation x sample),
resumable by key, batched by condition; one base model with all adapters loaded in one PeftModel."""

from __future__ import annotations

import zlib
from typing import Any, Mapping

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from torch.utils.data import DataLoader, Sampler

from benchmarks.base import Decoding
from benchmarks.conditions import Condition, build_conditions, prompt_spec, suppressed_values
from benchmarks.registry import load_benchmark
from benchmarks.writer import JsonlPredictionWriter, done_keys
from valueharms.adapters import attach_adapters
from valueharms.decode import generate_texts, truncate_at_stop
from valueharms.errors import InputError
from valueharms.prompts import build_model_input, load_icl_template


class FixedBatches(Sampler):
    """Precomputed index batches as a batch sampler object (Lightning's predict loop wraps it; a plain list fails)."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class BenchmarkDataModule(LightningDataModule):
    """Expands benchmarks x conditions x mitigations x samples into work items; skips keys already in ``output``."""

    def __init__(self, benchmarks: dict[str, dict[str, Any]], output: str, vanilla: bool = True,
                 adapters: list[str] | None = None, adapters_root: str | None = None,
                 icl_distributions: str | None = None, icl_names: list[str] | None = None,
                 mitigations: list[str] | None = None, suppress: dict[str, list[str]] | list[str] | None = None,
                 stop: dict[str, dict[str, list[str]]] | None = None, samples_per_prompt: int | None = None,
                 limit: int | None = None, max_new_tokens: int | None = None, batch_size: int = 8, seed: int = 42,
                 safety_prompt: str | None = None, suppression_template: str | None = None,
                 icl_template: str = "study") -> None:
        """Args:
            benchmarks: name -> loader options, e.g. ``{rtp: {source: samples/benchmarks/rtp.jsonl, limit: 3000}}``.
            output: generations JSONL (appended; existing keys are skipped).
            vanilla: include the base model without adapters.
            adapters: adapter folders; adapters_root: a folder searched for complete adapters.
            icl_distributions: value distributions file for ICL conditions; icl_names: which of them.
            mitigations: subset of none, safety, value, dual.
            suppress: values to suppress, a list or ``{category or "*": [values]}``.
            stop: stop-string overrides ``{kind: {benchmark or "*": [..]}}`` (default: each benchmark's own).
            samples_per_prompt: override the benchmark's samples per prompt (RTP 10, others 1).
            limit: keep the first N prompts of each benchmark (quick runs).
            max_new_tokens: override every benchmark's generation length (quick runs; None keeps the paper's).
            batch_size: prompts per generate call. seed: sampling seed.
            icl_template: ICL preamble: ``study`` (the study's two templates from ``valueharms data``), ``ours``,
                a folder with the study's two file names, or one template file.
        """
        super().__init__()
        self.benchmarks, self.output = benchmarks, output
        self.cond_args = dict(vanilla=vanilla, adapters=adapters or [], adapters_root=adapters_root,
                              icl_distributions=icl_distributions, icl_names=icl_names or [])
        self.mitigations = mitigations or ["none"]
        self.suppress, self.stop = suppress, stop or {}
        self.samples_per_prompt, self.limit, self.max_new_tokens = samples_per_prompt, limit, max_new_tokens
        self.batch_size, self.seed = batch_size, seed
        self.templates = {"safety_prompt": safety_prompt, "suppression_template": suppression_template}
        self.icl_template = icl_template
        self.conditions: list[Condition] = []
        self.items: list[dict] = []

    def setup(self, stage: str | None = None) -> None:
        if self.items:
            return
        self.conditions = build_conditions(**self.cond_args)
        done = done_keys(self.output)
        items: list[dict] = []
        for name, opts in self.benchmarks.items():
            opts = dict(opts or {})
            if self.limit is not None:
                opts["limit"] = self.limit
            bench = load_benchmark(name, opts.pop("source", None), **opts)
            decoding: Decoding = bench.decoding.override(samples=self.samples_per_prompt,
                                                         max_new_tokens=self.max_new_tokens)
            values_of = [suppressed_values(self.suppress, item.category) for item in bench.items]
            templates = dict(self.templates)
            if any(c.kind == "icl" for c in self.conditions):  # resolved only when used: no data needed otherwise
                templates["icl_template"] = load_icl_template(bench.fmt, self.icl_template)
            for cond in self.conditions:
                stop = cond.stop_for(bench.spec, self.stop)
                for mit in self.mitigations:
                    specs: dict[tuple[str, ...], Any] = {}  # one PromptSpec per suppressed-value set
                    for item, values in zip(bench.items, values_of):
                        if mit in ("value", "dual") and not values:
                            continue  # nothing to suppress for this category: identical to none/safety
                        spec = specs.get(tuple(values))
                        if spec is None:
                            spec = specs[tuple(values)] = prompt_spec(bench.fmt, cond, mit, values, **templates)
                        for s in range(decoding.samples):
                            key = f"{bench.name}|{cond.name}|{mit}|{item.id}|{s}"
                            if key not in done:
                                items.append({"key": key, "benchmark": bench.name, "measure": bench.measure,
                                              "item": item, "condition": cond,
                                              "mitigation": mit, "spec": spec, "sample_index": s,
                                              "decoding": decoding, "stop": stop})
        self.items = items

    def batches(self) -> list[list[int]]:
        """Index batches that never mix decoding settings; with the hf backend they never mix conditions either
        (the engine backend takes one adapter per row, so its batches mix conditions that share decoding + stop)."""
        module = getattr(getattr(self, "trainer", None), "lightning_module", None)
        mix = getattr(module, "backend", "hf") == "engine"
        groups: dict[tuple, list[int]] = {}
        for i, it in enumerate(self.items):
            if mix:
                dec = it["decoding"]
                key: tuple = (it["benchmark"], dec, tuple(it["stop"]))
            else:
                key = (it["condition"].name, it["benchmark"], it["decoding"])
            groups.setdefault(key, []).append(i)
        out = []
        for idx in groups.values():
            out += [idx[i:i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        return out

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.items, batch_sampler=FixedBatches(self.batches()), collate_fn=list, num_workers=0)


class GenerationModule(LightningModule):
    """Loads the base model once, all adapters into one PeftModel, and generates per batch (HF or engine backend)."""

    def __init__(self, model: str = "smollm2-135m", dtype: str | None = None, greedy: bool = False,
                 backend: str = "hf", use_stop_strings: bool = True) -> None:
        """Args:
            model: base model (embedded name, local folder or HF id).
            dtype: float32 / bfloat16 / float16 (None: checkpoint default).
            greedy: greedy decoding instead of sampling.
            backend: "hf" (reference) or "engine" (vim.engine.MultiLoRAEngine).
            use_stop_strings: also pass stop strings to ``generate`` (they are always applied post hoc).
        """
        super().__init__()
        if backend not in ("hf", "engine"):
            raise InputError(None, None, "backend", f"unknown backend {backend!r} (hf or engine)")
        self.model_name, self.model_dtype, self.greedy = model, dtype, greedy
        self.backend, self.use_stop_strings = backend, use_stop_strings
        self.lm: Any = None
        self.tokenizer: Any = None
        self.engine: Any = None

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Batches are plain records (frozen dataclasses, no tensors): texts are tokenized on the device in predict_step."""
        return batch

    def configure_callbacks(self):
        dm = getattr(self.trainer, "datamodule", None)
        return [JsonlPredictionWriter(dm.output)] if dm is not None and hasattr(dm, "output") else []

    def configure_model(self) -> None:
        if self.lm is not None:
            return
        from valueharms.model_loading import load_model, load_tokenizer

        self.tokenizer = load_tokenizer(self.model_name, padding_side="left")
        base = load_model(self.model_name, dtype=self.model_dtype)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        adapters = {c.adapter_name: c.adapter for c in getattr(dm, "conditions", []) if c.adapter}
        self.set_adapters(base, adapters)

    def set_adapters(self, base: Any, adapters: Mapping[str, str]) -> None:
        """Wrap ``base`` with every adapter (one PeftModel) or hand them to the engine backend."""
        if self.backend == "engine":
            from vim.engine import MultiLoRAEngine

            self.engine = MultiLoRAEngine(base, self.tokenizer, dict(adapters))
            self.lm = base
            return
        self.lm = attach_adapters(base, adapters).eval()

    def _generate_hf(self, inputs: list[str], cond: Condition, decoding: Decoding, stop: list[str], seed: int
                     ) -> list[str]:
        return generate_texts(self.lm, self.tokenizer, inputs, decoding, adapter=cond.adapter_name, stop=stop,
                              seed=seed, use_stop_strings=self.use_stop_strings)

    def predict_step(self, batch: list[dict], batch_idx: int = 0, dataloader_idx: int = 0) -> list[dict]:
        cond: Condition = batch[0]["condition"]
        decoding: Decoding = batch[0]["decoding"].override(greedy=True if self.greedy else None)
        stop = batch[0]["stop"]
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        seed = int(getattr(dm, "seed", 42)) + zlib.crc32(batch[0]["key"].encode()) % 100_000
        inputs = [build_model_input(it["item"].prompt, it["spec"], self.tokenizer) for it in batch]
        if self.backend == "engine":
            outs = self.engine.generate(inputs, [it["condition"].adapter_name for it in batch],
                                        max_new_tokens=decoding.max_new_tokens,
                                        temperature=decoding.temperature, top_p=decoding.top_p,
                                        do_sample=not decoding.greedy, seed=seed, stop=stop or None)
        else:
            outs = self._generate_hf(inputs, cond, decoding, stop, seed)
        records = []
        for it, text, out in zip(batch, inputs, outs):
            item, cond = it["item"], it["condition"]  # engine batches may mix conditions
            records.append({
                "key": it["key"], "benchmark": it["benchmark"], "measure": it["measure"], "prompt_id": item.id, "prompt": item.prompt,
                "category": item.category, "fields": item.fields, "condition": cond.name,
                "condition_kind": cond.kind, "adapter": cond.adapter,
                "distribution": cond.profile.name if cond.profile else None,
                "values": cond.profile.as_dict() if cond.profile else None, "mitigation": it["mitigation"],
                "suppressed_values": list(it["spec"].suppress), "model_input": text,
                "output": truncate_at_stop(out, stop), "decoding": decoding.as_record(),
                "stop": stop, "sample_index": it["sample_index"], "seed": seed, "base_model": self.model_name,
                "backend": self.backend})
        return records
