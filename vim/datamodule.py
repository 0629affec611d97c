"""DataModules for VIM (two stages) and benign instruction tuning, all settable from YAML.

Stage handling (the paper's sequential recipe with a single ``trainer.fit``): training is split into *phases* of
``epochs_per_stage`` epochs. ``stage_mode="sequential"`` gives one phase per stage (stage 1, then stage 2);
``"mixed"`` gives one phase with both stages shuffled together. The dataloaders read the phase from
``trainer.current_epoch``, and :class:`vim.callbacks.StageCallback` makes the Trainer reload them every epoch,
so a resumed run lands in the right phase without extra state.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from vim.collate import Truncation, encode_example
from vim.packing import make_collator
from vim.data import stratified_cap
from vim.sampling import progress_state, resumable_batch_sampler
from valueharms.errors import InputError
from valueharms.io import read_jsonl, sha256_file
from valueharms.prompts import VIM_SYSTEM_PROMPT

STAGE_NAMES = {"argument_generation": 1, "agreement_prediction": 2}
SPLITS = ("train", "valid", "test")


class _EncodedDataset:
    """A list of encoded examples (token ids are computed once in ``setup``)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class _TextDataModule(LightningDataModule):
    """Shared machinery: tokenizer, chat formatting, encoding, phases and loaders."""

    kind = "vim"
    system_prompt: str | None = None  # what setup() uses: chat_system_prompt when the chat template is used
    chat_system_prompt: str | None = None  # a subclass's system turn for chat-template models

    def __init__(self, *, model: str | None, max_length: int, truncation: Truncation, batch_size: int,
                 num_workers: int, max_examples: int | None, use_chat_template: bool | None, packing: bool,
                 epochs_per_stage: int, seed: int) -> None:
        super().__init__()
        if truncation not in ("keep_target", "original"):
            raise InputError(None, None, "truncation", f"unknown mode {truncation!r} (keep_target|original)")
        self.model = model
        self.max_length = max_length
        self.truncation = truncation
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.max_examples = max_examples
        self.use_chat_template = use_chat_template
        self.packing = packing
        self.epochs_per_stage = epochs_per_stage
        self.seed = seed
        self.tokenizer: Any = None
        self.data: dict[tuple[int, str], list[dict[str, Any]]] = {}
        self.rows: dict[tuple[int, str], list[dict[str, Any]]] = {}  # the raw rows (stage-2 agreement metrics)
        self._resume: dict[str, Any] | None = None
        self.truncated_counts: dict[str, int] = {}

    # -- what subclasses provide -------------------------------------------------------------------
    @property
    def phases(self) -> list[list[int]]:
        """Stage numbers trained together in each phase (one phase = ``epochs_per_stage`` epochs)."""
        raise NotImplementedError

    @property
    def adapter_name(self) -> str:
        raise NotImplementedError

    def _load_split(self, stage: int, split: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """Fields for :func:`valueharms.adapters.write_metadata` (kind, name, profile/benign task, data hash)."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        return self.epochs_per_stage * len(self.phases)

    def phase_for_epoch(self, epoch: int) -> int:
        return min(max(epoch, 0) // max(self.epochs_per_stage, 1), len(self.phases) - 1)

    def _model_name(self) -> str:
        if self.model:
            return self.model
        module = getattr(self.trainer, "lightning_module", None) if self.trainer else None
        name = getattr(module, "model_name", None)
        if not name:
            raise InputError(None, None, "data.model", "set the model (name or path) for the tokenizer")
        return name

    def _chat(self) -> bool:
        if self.use_chat_template is not None:
            return bool(self.use_chat_template)
        return bool(getattr(self.tokenizer, "chat_template", None))

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is None:
            from valueharms.model_loading import load_tokenizer

            self.tokenizer = load_tokenizer(self._model_name())
        self.system_prompt = self.chat_system_prompt if self._chat() else None
        wanted = sorted({s for phase in self.phases for s in phase})
        for st in wanted:
            for split in ("train", "valid"):
                if (st, split) in self.data:
                    continue
                rows = self._load_split(st, split)
                if self.max_examples is not None:
                    limit = self.max_examples if split == "train" else max(1, self.max_examples // 4)
                    # stratified, not the file's head: stage-1 files list all positives before the negatives
                    rows = stratified_cap(rows, limit, "polarity" if st == 1 else "value", self.seed)
                encoded, cut = [], 0
                for row in rows:
                    enc = self.encode(row["prompt"], row["target"])
                    cut += enc.pop("truncated")
                    enc["stage"] = st
                    encoded.append(enc)
                self.data[(st, split)] = encoded
                self.rows[(st, split)] = rows
                self.truncated_counts[f"stage{st}_{split}"] = cut

    def encode(self, prompt: str, target: str) -> dict[str, Any]:
        """Token ids + labels exactly as training sees them (chat template, truncation, max length)."""
        return encode_example(self.tokenizer, prompt, target, max_length=self.max_length, truncation=self.truncation,
                              chat=self._chat(), system_prompt=self.system_prompt)

    def _phase_items(self, split: str) -> list[dict[str, Any]]:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        items: list[dict[str, Any]] = []
        for st in self.phases[self.phase_for_epoch(epoch)]:
            items += self.data[(st, split)]
        return items

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        items = self._phase_items(split)
        if not items:
            raise InputError(None, None, split, "no examples for this stage/split (check the prepared data)")
        collate = make_collator(self.tokenizer, truncation=self.truncation, max_length=self.max_length,
                                packing=self.packing)
        if self.trainer is not None and self.trainer.world_size > 1:  # Lightning injects a DistributedSampler
            import torch

            gen = torch.Generator().manual_seed(self.seed)
            return DataLoader(_EncodedDataset(items), batch_size=self.batch_size, shuffle=shuffle, generator=gen,
                              collate_fn=collate, num_workers=self.num_workers)
        batches = resumable_batch_sampler(len(items), self.batch_size, self.seed, shuffle, self._resume)
        return DataLoader(_EncodedDataset(items), batch_sampler=batches, collate_fn=collate,
                          num_workers=self.num_workers)

    # -- a checkpoint records how far into its epoch training got (exact mid-epoch resume) ----------------------
    def state_dict(self) -> dict[str, Any]:
        return progress_state(self.trainer)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume = dict(state) if state else None

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)


class VIMDataModule(_TextDataModule):
    """VIM training data for one value distribution (prepared on demand by ``vim.prepare``)."""

    kind = "vim"
    chat_system_prompt = VIM_SYSTEM_PROMPT

    def __init__(
        self,
        distribution: str = "Pow",
        distributions_file: str | None = "samples/values/distributions.tsv",
        arguments: str | None = "samples/valueeval/arguments.tsv",
        survey: str | None = None,
        data_dir: str = "runs/data/{distribution}",
        model: str | None = None,
        threshold: float = 3.0,
        stages: list[str] = ["argument_generation", "agreement_prediction"],  # noqa: B006 (YAML default)
        stage_mode: Literal["sequential", "mixed"] = "sequential",
        epochs_per_stage: int = 5,
        max_length: int = 128,
        truncation: Truncation = "keep_target",
        batch_size: int = 8,
        num_workers: int = 0,
        max_examples: int | None = None,
        use_chat_template: bool | None = None,
        packing: bool = False,
        stage2_column_offset_bug: bool = False,
        seed: int = 42,
    ) -> None:
        """
        Args:
            distribution: name of the value distribution (a row of ``distributions_file``).
            distributions_file: TSV/CSV of distributions (name + the ten Schwartz values, 1-6).
            arguments: Touché23-ValueEval arguments file used to build the training data.
            survey: optional survey file for stage 2 (see ``vim.prepare``).
            data_dir: prepared data folder (``{distribution}`` is filled in); prepared when missing.
            model: tokenizer to use (default: the module's model).
            threshold: score at or above which a value counts as held (stage-1 positive/negative split).
            stages: which stages to train, in order.
            stage_mode: ``sequential`` (the paper: stage 2 continues from stage 1's best epoch) or ``mixed``.
            epochs_per_stage: epochs in each stage (the Trainer's max_epochs is set from it).
            max_length: tokens per example (128 in the paper; 512 for chat models).
            truncation: ``keep_target`` (cut the prompt from the left) or ``original`` (paper's right truncation).
            batch_size: examples per batch.
            num_workers: DataLoader workers.
            max_examples: cap on training examples per stage (validation gets a quarter), for quick runs.
            use_chat_template: wrap examples in the tokenizer's chat template (None: when it has one).
            packing: padding-free packed batches (``vim.packing.PackedCollator``).
            stage2_column_offset_bug: reproduce the released code's off-by-one value columns in stage 2.
            seed: shuffling / split seed.
        """
        super().__init__(model=model, max_length=max_length, truncation=truncation, batch_size=batch_size,
                         num_workers=num_workers, max_examples=max_examples, use_chat_template=use_chat_template,
                         packing=packing, epochs_per_stage=epochs_per_stage, seed=seed)
        unknown = [s for s in stages if s not in STAGE_NAMES]
        if unknown or not stages:
            raise InputError(None, None, "stages", f"unknown stage {unknown[:1] or stages!r}; use {list(STAGE_NAMES)}")
        if stage_mode not in ("sequential", "mixed"):
            raise InputError(None, None, "stage_mode", f"unknown mode {stage_mode!r} (sequential|mixed)")
        self.save_hyperparameters(logger=False)  # its "model" (tokenizer) would clash with the module's in the logger
        self.distribution = distribution
        self.distributions_file = distributions_file
        self.arguments = arguments
        self.survey = survey
        self.data_dir = Path(data_dir.format(distribution=distribution))
        self.threshold = threshold
        self.stages = list(stages)
        self.stage_mode = stage_mode
        self.stage2_column_offset_bug = stage2_column_offset_bug

    @property
    def phases(self) -> list[list[int]]:
        nums = [STAGE_NAMES[s] for s in self.stages]
        return [nums] if self.stage_mode == "mixed" else [[n] for n in nums]

    @property
    def adapter_name(self) -> str:
        return self.distribution

    def _files(self) -> list[Path]:
        return [self.data_dir / f"stage{STAGE_NAMES[s]}_{split}.jsonl" for s in self.stages for split in SPLITS[:2]]

    def prepare_data(self) -> None:
        """Build the training files with ``vim.prepare.prepare_distribution`` when they are missing."""
        if all(p.is_file() for p in self._files()):
            return
        if not self.distributions_file or not self.arguments:
            missing = next(p for p in self._files() if not p.is_file())
            raise InputError(missing, None, None, "prepared data missing and no distributions_file/arguments given")
        from vim.prepare import prepare_distribution
        from valueharms.values import load_distributions

        profile = load_distributions(self.distributions_file, [self.distribution])[self.distribution]
        prepare_distribution(profile, self.data_dir, arguments=self.arguments, survey=self.survey,
                             threshold=self.threshold, seed=self.seed, max_examples=None,
                             stage2_column_offset_bug=self.stage2_column_offset_bug)

    def _load_split(self, stage: int, split: str) -> list[dict[str, Any]]:
        path = self.data_dir / f"stage{stage}_{split}.jsonl"
        rows = list(read_jsonl(path))
        for i, row in enumerate(rows, start=1):
            for key in ("prompt", "target"):
                if not isinstance(row.get(key), str):
                    raise InputError(path, i, key, "missing or not a string")
        return rows

    def metadata(self) -> dict[str, Any]:
        import hashlib

        profile = None
        if self.distributions_file and Path(self.distributions_file).is_file():
            from valueharms.values import load_distributions

            profile = load_distributions(self.distributions_file, [self.distribution])[self.distribution]
        digest = hashlib.sha256("".join(sha256_file(p) for p in self._files() if p.is_file()).encode()).hexdigest()
        return {"kind": "vim", "name": self.distribution, "profile": profile, "data_hash": digest,
                "stages": list(self.stages)}


class InstructionDataModule(_TextDataModule):
    """Benign fine-tuning baselines (Alpaca, Dolly, Grammar, SAMSum) through ``vim.benign_data.load_benign``."""

    kind = "benign"

    def __init__(
        self,
        task: str = "alpaca",
        source: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        val_fraction: float = 0.02,
        epochs: int = 1,
        batch_size: int = 1,
        max_length: int = 2048,
        truncation: Truncation = "keep_target",
        use_chat_template: bool | None = False,
        packing: bool = False,
        num_workers: int = 0,
        seed: int = 42,
    ) -> None:
        """
        Args:
            task: alpaca | dolly | grammar | samsum.
            source: local file or HF dataset id (default: the task's hub dataset).
            model: tokenizer to use (default: the module's model).
            limit: cap on examples read.
            val_fraction: share of examples held out for validation loss (at least one).
            epochs: training epochs (the study: 1).
            max_length: tokens per example (the study: 2048).
            truncation: ``keep_target`` or ``original``.
            batch_size: examples per batch (the study: 1, with 16 gradient-accumulation steps in the Trainer).
            num_workers: DataLoader workers.
            use_chat_template: wrap examples in the tokenizer's chat template (None: when it has one).
            packing: padding-free packed batches.
            seed: shuffling / split seed.
        """
        super().__init__(model=model, max_length=max_length, truncation=truncation, batch_size=batch_size,
                         num_workers=num_workers, max_examples=None, use_chat_template=use_chat_template,
                         packing=packing, epochs_per_stage=epochs, seed=seed)
        self.save_hyperparameters(logger=False)  # its "model" (tokenizer) would clash with the module's in the logger
        self.task = task
        self.source = source
        self.limit = limit
        self.val_fraction = val_fraction
        self._rows: list[dict[str, Any]] | None = None

    @property
    def phases(self) -> list[list[int]]:
        return [[1]]

    @property
    def adapter_name(self) -> str:
        return self.task

    def _all_rows(self) -> list[dict[str, Any]]:
        if self._rows is None:
            from vim.benign_data import load_benign

            rows = list(load_benign(self.task, source=self.source, split="train", limit=self.limit))
            random.Random(self.seed).shuffle(rows)
            self._rows = rows
        return self._rows

    def _load_split(self, stage: int, split: str) -> list[dict[str, Any]]:
        rows = self._all_rows()
        n_val = max(1, int(len(rows) * self.val_fraction)) if len(rows) > 1 else 0
        return rows[:n_val] if split == "valid" else rows[n_val:]

    def metadata(self) -> dict[str, Any]:
        from valueharms.io import sha256_text
        import json

        digest = sha256_text(json.dumps(self._all_rows(), sort_keys=True))
        return {"kind": "benign", "name": self.task, "benign_task": self.task, "data_hash": digest,
                "stages": ["instruction_tuning"]}
