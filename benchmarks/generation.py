"""Benchmark generation through LightningCLI ``predict``: work items (benchmark x condition x mitigation x sample),
resumable by key and fingerprint, batched across conditions that share decoding and stop strings; one base model
with all adapters (one PeftModel for ``backend: hf``, one vLLM engine with LoRA for ``backend: vllm``).

Hook order matters: the data module's ``setup`` runs before Lightning saves ``config.yaml``, so a refused rerun
(settings differ from ``run.json``) leaves the run's files untouched.
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from torch.utils.data import DataLoader, Sampler

from benchmarks.conditions import Condition, build_conditions, check_system_prompts
from benchmarks.registry import load_benchmark
from benchmarks.runfile import GenerationRun, Shard
from benchmarks.workitems import GenerationPlan, WorkItem, batches
from benchmarks.writer import JsonlPredictionWriter
from valueharms.adapters import attach_adapters
from valueharms.decode import generate_texts, truncate_at_stop
from valueharms.errors import InputError
from valueharms.prompts import build_model_input

BACKENDS = ("hf", "vllm")


class FixedBatches(Sampler):
    """Precomputed index batches as a batch sampler object (Lightning's predict loop wraps it; a plain list fails)."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class BenchmarkDataModule(LightningDataModule):
    """Expands benchmarks x conditions x mitigations x samples into work items; skips keys already generated with
    the same fingerprint; refuses a rerun whose settings differ from the run's ``run.json``."""

    def __init__(self, benchmarks: dict[str, dict[str, Any]], output: str, vanilla: bool = True,
                 adapters: list[str] | None = None, adapters_root: str | None = None,
                 adapter_kinds: list[str] | None = None, icl_distributions: str | None = None, icl_names: list[str] | None = None,
                 icl_names_file: str | None = None,
                 mitigations: list[str] | None = None, suppress: dict[str, list[str]] | list[str] | None = None,
                 stop: dict[str, dict[str, list[str]]] | None = None, stop_after_scored: bool = True,
                 samples_per_prompt: int | None = None, limit: int | None = None, max_new_tokens: int | None = None,
                 batch_size: int = 8, seed: int = 42, safety_prompt: str | None = None,
                 suppression_template: str | None = None, shard: str | None = None, overwrite: bool = False,
                 icl_template: str = "study", system_prompt: dict[str, str] | None = None) -> None:
        """Args:
            benchmarks: name -> loader options, e.g. ``{rtp: {source: samples/benchmarks/rtp.jsonl, limit: 3000}}``.
            output: generations JSONL (appended; keys already there with the same fingerprint are skipped).
            vanilla: include the base model without adapters.
            adapters: adapter folders; adapters_root: a folder searched for complete adapters;
                adapter_kinds: keep only adapters of these kinds (``[vim]``, ``[benign]``; default all).
            icl_distributions: value distributions file for ICL conditions; icl_names: which of them;
                icl_names_file: a file with one name a line (added to ``icl_names``).
            mitigations: subset of none, safety, value, dual.
            suppress: values to suppress, a list or ``{category or "*": [values]}``.
            stop: stop-string overrides ``{kind: {benchmark or "*": [..]}}`` (default: each benchmark's own).
            stop_after_scored: also stop where nothing more is scored (RTP: the first '.'; the scored text is the same).
            samples_per_prompt: override the benchmark's samples per prompt (RTP 10, others 1).
            limit: keep the first N prompts of each benchmark (quick runs).
            max_new_tokens: override every benchmark's generation length (quick runs; None keeps the paper's).
            batch_size: items per generate call (hf: rows of a batch; vllm: requests handed to vLLM at once).
            seed: sampling seed.
            shard: ``"i/n"``: generate only shard i (0-based) of n, split by condition, into
                ``<output stem>.shard-i-of-n.jsonl`` (readers merge every ``generations*.jsonl`` by key).
            overwrite: when the settings differ from the run's recorded ones, move the old files to
                ``superseded/<time>/`` and start afresh instead of refusing (same settings: resume as usual).
            icl_template: ICL preamble: ``study`` (the study's two templates from ``valueharms data``), ``ours``,
                a folder with the study's two file names, or one template file.
            system_prompt: a system prompt per condition kind, ``{vanilla | vim | benign | icl | "*": text}``
                (default none, as the study); ``"@vim"`` is the system prompt VIM adapters of chat models are trained
                with, e.g. ``{vim: "@vim"}`` serves them as trained. Part of every record's fingerprint.
        """
        super().__init__()
        self.benchmarks, self.output = benchmarks, output
        self.cond_args = dict(vanilla=vanilla, adapters=adapters or [], adapters_root=adapters_root,
                              adapter_kinds=adapter_kinds or [], icl_distributions=icl_distributions, icl_names=icl_names or [],
                              icl_names_file=icl_names_file)
        self.mitigations = mitigations or ["none"]
        self.suppress, self.stop, self.stop_after_scored = suppress, stop or {}, stop_after_scored
        self.samples_per_prompt, self.limit, self.max_new_tokens = samples_per_prompt, limit, max_new_tokens
        self.batch_size, self.seed = batch_size, seed
        self.templates = {"safety_prompt": safety_prompt, "suppression_template": suppression_template}
        self.shard_spec, self.overwrite = shard, overwrite  # parsed in setup: errors there are one line
        self.producer: Mapping[str, Any] | None = None  # set from the GenerationModule (or by a caller)
        self.icl_template = icl_template
        self.system_prompt = system_prompt  # checked in plan(): errors there are one line
        self.conditions: list[Condition] = []
        self.items: list[WorkItem] = []
        self.run: GenerationRun | None = None
        self.stale = 0

    def plan(self, producer: Mapping[str, Any]) -> GenerationPlan:
        """Load the benchmarks and conditions into a :class:`GenerationPlan`."""
        self.conditions = build_conditions(**self.cond_args)
        loaded = {}
        for name, opts in self.benchmarks.items():
            opts = dict(opts or {})
            if self.limit is not None:
                opts["limit"] = self.limit
            source = opts.pop("source", None)
            bench = load_benchmark(name, source, **opts)
            loaded[bench.name] = (bench, source if source is not None else bench.spec.default_source, opts)
        return GenerationPlan(loaded, self.conditions, producer, self.mitigations, self.suppress,
                              {k: v for k, v in self.templates.items() if v is not None}, self.stop,
                              self.stop_after_scored, self.samples_per_prompt, self.max_new_tokens, self.seed,
                              self.icl_template, check_system_prompts(self.system_prompt))

    def setup(self, stage: str | None = None) -> None:
        if self.run is not None and self.run.locked:
            return  # set up for this predict already (a released run is planned again: other records may exist)
        shard = Shard.parse(self.shard_spec)
        producer = self.producer = self.producer or _producer_of(self.trainer)
        plan = self.plan(producer)
        mine = shard.select(plan.costs()) if shard else None
        trainer = self.trainer
        run = GenerationRun(self.output, shard=shard, rank=getattr(trainer, "global_rank", 0) if trainer else 0,
                            world_size=getattr(trainer, "world_size", 1) if trainer else 1, overwrite=self.overwrite)
        run.open(plan.config())
        try:
            items = plan.items(mine)
            done = run.done({it.key for it in items})
            self.items = [it for it in items if it.fingerprint not in done.get(it.key, ())]
            self.stale = sum(1 for it in self.items if it.key in done)
        except BaseException:
            run.release()
            raise
        self.run = run
        for note in run.notes + ([f"{self.stale} stored generations were made with other settings (or carry no "
                                  "fingerprint): generating them again"] if self.stale else []):
            print(f"valueharms predict: {note}")
        todo = len(self.items)
        print(f"valueharms predict: {len(items)} generations in {run.path}: {len(items) - todo} already there, "
              + (f"{todo} to generate" if todo else "nothing to generate (next: valueharms score)"))

    def release(self) -> None:
        """Give up the run's writer lock (end of predict, or an error)."""
        if self.run is not None:
            self.run.release()

    def teardown(self, stage: str | None = None) -> None:
        self.release()

    def batches(self) -> list[list[int]]:
        return batches(self.items, self.batch_size, (self.producer or {}).get("backend") == "vllm")

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.items, batch_sampler=FixedBatches(self.batches()), collate_fn=list, num_workers=0)


def _producer_of(trainer: Any) -> Mapping[str, Any]:
    module = getattr(trainer, "lightning_module", None) if trainer is not None else None
    if not hasattr(module, "producer"):
        raise ValueError("BenchmarkDataModule needs a producer: run it with a GenerationModule or set dm.producer")
    return module.producer()


class GenerationModule(LightningModule):
    """Loads the base model once with every adapter and generates per batch (HF + peft, or vLLM)."""

    def __init__(self, model: str = "smollm2-135m", dtype: str | None = None, greedy: bool = False,
                 backend: str = "hf", use_stop_strings: bool = True, vllm: dict[str, Any] | None = None) -> None:
        """Args:
            model: base model (embedded name, local folder or HF id).
            dtype: float32 / bfloat16 / float16 (None: checkpoint default).
            greedy: greedy decoding instead of sampling.
            backend: "hf" (transformers + peft, rows of a batch may use different adapters) or "vllm".
            use_stop_strings: hf: also pass stop strings to ``generate`` (they are always applied post hoc).
            vllm: extra ``vllm.LLM`` options (gpu_memory_utilization, max_model_len, tensor_parallel_size, ...).
        """
        super().__init__()
        self.model_name, self.model_dtype, self.greedy = model, dtype, greedy
        self.backend, self.use_stop_strings, self.vllm_options = backend, use_stop_strings, vllm or {}
        self.lm: Any = None
        self.tokenizer: Any = None
        self.generator: Any = None  # the vLLM generator
        self._producer: dict[str, Any] | None = None

    def producer(self) -> dict[str, Any]:
        """What produces the texts: the base model's content identity, dtype, backend and greedy flag."""
        if self.backend not in BACKENDS:  # checked here, not in __init__: jsonargparse turns those into pages
            raise InputError(None, None, "backend", f"unknown backend {self.backend!r} (one of: {', '.join(BACKENDS)})")
        if self._producer is None:
            from benchmarks.provenance import model_identity

            self._producer = {"model": model_identity(self.model_name), "dtype": self.model_dtype,
                              "backend": self.backend, "greedy": self.greedy}
        return self._producer

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Batches are work items (no tensors): texts are tokenized on the device in predict_step."""
        return batch

    def configure_callbacks(self):
        dm = getattr(self.trainer, "datamodule", None)
        return [JsonlPredictionWriter(dm)] if isinstance(dm, BenchmarkDataModule) else []

    def _datamodule(self) -> Any:
        return getattr(self.trainer, "datamodule", None) if self._trainer is not None else None

    def configure_model(self) -> None:
        if self.lm is not None or self.generator is not None:
            return
        from valueharms.model_loading import load_model, load_tokenizer, resolve_model

        dm = self._datamodule()
        if isinstance(dm, BenchmarkDataModule) and not dm.items:
            return  # nothing pending (a finished run rerun): no model to load
        self.tokenizer = load_tokenizer(self.model_name, padding_side="left")
        adapters = {c.adapter_name: c.adapter for c in getattr(dm, "conditions", []) if c.adapter}
        if self.backend == "vllm":
            from benchmarks.vllm_backend import VLLMGenerator

            self.generator = VLLMGenerator(resolve_model(self.model_name), self.tokenizer, adapters,
                                           dtype=self.model_dtype, seed=int(getattr(dm, "seed", 42)),
                                           options=self.vllm_options)
            return
        self.set_adapters(load_model(self.model_name, dtype=self.model_dtype), adapters)

    def set_adapters(self, base: Any, adapters: Mapping[str, str]) -> None:
        """Wrap ``base`` with every adapter (one PeftModel; rows pick theirs through peft's ``adapter_names``)."""
        self.lm = attach_adapters(base, adapters).eval()

    def generate_hf(self, batch: list[WorkItem], inputs: list[str], seed: int) -> list[tuple[str, int]]:
        """(text, seed) per item: one ``generate`` call, each row with its own adapter (None: the base model)."""
        first = batch[0]
        texts = generate_texts(self.lm, self.tokenizer, inputs, first.decoding,
                               adapters=[it.condition.adapter_name for it in batch], stop=first.stop, seed=seed,
                               use_stop_strings=self.use_stop_strings)
        return [(t, seed) for t in texts]

    def predict_step(self, batch: list[WorkItem], batch_idx: int = 0, dataloader_idx: int = 0) -> list[dict]:
        seed = int(getattr(self._datamodule(), "seed", 42))
        cache: dict[str, str] = {}  # the samples of one prompt share one model input
        for it in batch:
            if it.request not in cache:
                cache[it.request] = build_model_input(it.item.prompt, it.spec, self.tokenizer)
        inputs = [cache[it.request] for it in batch]
        if self.backend == "vllm":
            outs = self.generator.generate(batch, inputs, seed)
        else:
            outs = self.generate_hf(batch, inputs, seed + zlib.crc32(batch[0].key.encode()) % 100_000)
        return [generation_record(it, text, out, used_seed, self.model_name, self.backend)
                for it, text, (out, used_seed) in zip(batch, inputs, outs)]


def generation_record(it: WorkItem, model_input: str, output: str, seed: int, model: str, backend: str) -> dict:
    """One line of generations.jsonl (see docs/ARCHITECTURE.md)."""
    item, cond = it.item, it.condition
    return {
        "key": it.key, "benchmark": it.benchmark, "measure": it.measure, "prompt_id": item.id, "prompt": item.prompt,
        "category": item.category, "fields": item.fields, "condition": cond.name, "condition_kind": cond.kind,
        "adapter": cond.adapter, "adapter_sha256": cond.adapter_sha256,
        "distribution": cond.profile.name if cond.profile else None,
        "values": cond.profile.as_dict() if cond.profile else None, "mitigation": it.mitigation,
        "suppressed_values": list(it.spec.suppress), "model_input": model_input,
        "output": truncate_at_stop(output, it.stop), "decoding": it.decoding.as_record(), "stop": list(it.stop),
        "sample_index": it.sample_index, "seed": seed, "base_model": model, "backend": backend,
        "fingerprint": it.fingerprint}
