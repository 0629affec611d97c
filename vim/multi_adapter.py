"""Train K VIM adapters per optimizer step on one frozen base model (``valueharms sweep --adapters_per_step K``).

Why: the study trains 154 adapters on one base. Trained one by one, each step of each adapter pays the base
model's whole forward/backward for 8 short examples, which leaves a GPU mostly idle (kernel launches, small
matmuls). Here one step runs the 8 examples of each of K adapters through the base together
(:mod:`vim.stacked_lora` routes each example to its own LoRA), and each adapter keeps everything a run of its own
has: its data (a plain :class:`~vim.datamodule.VIMDataModule`, same order), batch of 8, AdamW state, LR schedule,
best epoch per stage and exported peft folder. Losses equal K separate runs (tested; with ``lora_dropout`` > 0 the
dropout masks are other draws of the same distribution).

Config: the fit YAML of a single adapter with the two classes swapped and the distributions listed::

    model: {class_path: vim.multi_adapter.MultiLoRAModule, init_args: {...as VIMModule...}}
    data:  {class_path: vim.multi_adapter.MultiVIMDataModule, init_args: {distributions: [Pow, Ach], ...}}

Limits: one device per process (no FSDP/DDP: a model that needs FSDP trains one adapter at a time), no gradient
accumulation or clipping (manual optimization, one optimizer per adapter).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from valueharms.errors import InputError
from vim.datamodule import VIMDataModule
from vim.module import VIMModule, phase_lr_factor
from vim.stacked_lora import adapter_parameters, build_routing, inject, peft_initial_lora, routed, segment_losses


def combine_batches(batches: Sequence[dict[str, Any]]) -> tuple[dict[str, torch.Tensor], list[tuple[int, int]]]:
    """One batch from several collated ones (packed rows side by side, or padded rows stacked) + token ranges."""
    if "attention_mask" not in batches[0]:  # packed [1, T] rows: concatenate along the row
        keys = [k for k in ("input_ids", "labels", "position_ids") if k in batches[0]]
        merged = {k: torch.cat([b[k] for b in batches], dim=1) for k in keys}
        widths = [int(b["input_ids"].shape[1]) for b in batches]
    else:  # padded rows: right-pad to the longest, then stack (extra pads are masked and carry no loss)
        length = max(int(b["input_ids"].shape[1]) for b in batches)
        fills = {"input_ids": 0, "attention_mask": 0, "labels": -100}
        merged = {k: torch.cat([F.pad(b[k], (0, length - b[k].shape[1]), value=v) for b in batches])
                  for k, v in fills.items()}
        widths = [int(b["input_ids"].shape[0]) * length for b in batches]
    ends = [sum(widths[: i + 1]) for i in range(len(widths))]
    return merged, [(e - w, e) for w, e in zip(widths, ends)]


def adapter_losses(net: Any, wrappers: dict[str, Any], batches: Sequence[dict[str, Any]], adapters: Sequence[int],
                   device: Any) -> torch.Tensor:
    """Each adapter's mean target-token loss on its own batch, all in one forward of the base model ``net``."""
    merged, slices = combine_batches(batches)
    merged = {k: v.to(device) for k, v in merged.items()}
    inputs = {k: merged[k] for k in ("input_ids", "attention_mask", "position_ids") if k in merged}
    with routed(wrappers, build_routing(adapters, slices, device)):
        logits = net(**inputs, use_cache=False).logits
    return segment_losses(logits, merged["labels"], slices)


class PhaseSchedule:
    """VIMModule's LR factor (optional warmup, linear decay restarted per phase) for one adapter's scheduler.

    A callable object, not a function, so ``LambdaLR.state_dict`` saves its phase and resume restores it.
    """

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.total = warmup, 0, 1

    def __call__(self, step: int) -> float:
        return phase_lr_factor(step - self.start, self.total, self.warmup)


class MultiLoRAModule(VIMModule):
    """K LoRA adapters trained at once on one base; the arguments are :class:`~vim.module.VIMModule`'s."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.names: list[str] = []
        self.wrappers: dict[str, Any] = {}
        self.val_losses: dict[int, float] = {}
        self._val_sums: torch.Tensor | None = None

    def configure_model(self) -> None:
        if self.net is not None:
            return
        from valueharms.model_loading import load_model
        from vim.attention import resolve_for_module

        dm = self.trainer.datamodule if self._trainer is not None else None
        if not isinstance(dm, MultiVIMDataModule):
            raise TypeError("MultiLoRAModule trains with vim.multi_adapter.MultiVIMDataModule")
        self.names = list(dm.distributions)
        hp = self.hparams
        attn = resolve_for_module(hp.attn_implementation, self, hp.dtype)
        base = load_model(self.model_name, dtype=hp.dtype, attn_implementation=attn)
        if hp.gradient_checkpointing:
            base.gradient_checkpointing_enable()
            base.enable_input_require_grads()
        initial = peft_initial_lora(base, self.lora_config())  # what a single fit would start from
        self.wrappers = inject(base, initial, len(self.names), r=hp.lora_r, alpha=hp.lora_alpha,
                               dropout=hp.lora_dropout)
        self.net = base
        self.net.train()

    def configure_callbacks(self) -> list[Any]:
        from lightning.pytorch.callbacks import ModelCheckpoint

        from vim.multi_callbacks import MultiStageCallback

        last = ModelCheckpoint(dirpath=self.adapter_dir() / "checkpoints", filename="{epoch}-{step}", save_last=True,
                               save_top_k=0, every_n_train_steps=self.hparams.checkpoint_every_n_steps)
        return [MultiStageCallback(), last]

    def release_base(self) -> None:
        """Nothing to keep: the base model carries K adapters' layers."""

    # -- optimisation: one AdamW and one schedule per adapter --------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizers, schedulers = [], []
        for k in range(len(self.names)):
            opt = torch.optim.AdamW(adapter_parameters(self.wrappers, k), lr=hp.lr, weight_decay=hp.weight_decay)
            optimizers.append(opt)
            schedulers.append({"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, PhaseSchedule(hp.warmup_steps)),
                               "interval": "step"})
        return optimizers, schedulers

    def _schedulers(self) -> list[Any]:
        found = self.lr_schedulers()
        return list(found) if isinstance(found, (list, tuple)) else [found]

    def start_adapter_phase(self, k: int, epochs: int, batches: int, *, reset_optimizer: bool) -> None:
        """Restart adapter ``k``'s LR schedule for ``epochs`` epochs of ``batches`` steps (and clear its moments)."""
        sched = self._schedulers()[k]
        schedule = sched.lr_lambdas[0]
        schedule.start, schedule.total = sched.last_epoch, max(1, batches) * max(1, epochs)
        if reset_optimizer:
            sched.optimizer.state.clear()
        for group, base_lr in zip(sched.optimizer.param_groups, sched.base_lrs):
            group["lr"] = base_lr * schedule(sched.last_epoch)

    def start_phase(self, epochs: int, *, reset_optimizer: bool) -> None:
        raise TypeError("MultiLoRAModule restarts each adapter's phase with start_adapter_phase")

    # -- steps ---------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        present = [(self.names.index(name), b) for name, b in batch.items() if b is not None]
        adapters = [k for k, _ in present]
        losses = adapter_losses(self.net, self.wrappers, [b for _, b in present], adapters, self.device)
        if self.attention_kernel is None:
            from vim.attention import log_kernel

            self.attention_kernel = log_kernel(self.net, present[0][1])
        self.manual_backward(losses.sum())  # adapter k's gradient comes from its own loss only
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, (list, tuple)) else [optimizers]
        schedulers = self._schedulers()
        for k in adapters:
            optimizers[k].step()
            optimizers[k].zero_grad(set_to_none=True)
            schedulers[k].step()
        self.log("train/loss", losses.detach().mean(), prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=len(adapters))
        return losses.detach().sum()

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(len(self.names), 2, dtype=torch.float64)

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        loss = adapter_losses(self.net, self.wrappers, [batch], [dataloader_idx], self.device)[0]
        rows = int(batch["input_ids"].shape[0])  # Lightning weighs a single run's val/loss by rows per batch
        self._val_sums[dataloader_idx] += torch.tensor([float(loss) * rows, rows], dtype=torch.float64)
        return loss

    def on_validation_epoch_end(self) -> None:
        sums = self._val_sums
        self.val_losses = {k: float(sums[k, 0] / sums[k, 1]) if sums[k, 1] else math.inf
                           for k in range(len(self.names))}
        finite = [v for v in self.val_losses.values() if math.isfinite(v)]
        self.log("val/loss", sum(finite) / len(finite) if finite else math.inf, prog_bar=True)
        for k, name in enumerate(self.names):
            self.log(f"val/loss_{name}", self.val_losses[k])


class MultiVIMDataModule(VIMDataModule):
    """The data of K value distributions, one :class:`~vim.datamodule.VIMDataModule` each (same settings).

    Args:
        distributions: the distributions trained together (one adapter each).
        **kwargs: :class:`~vim.datamodule.VIMDataModule`'s arguments (``distribution`` is ignored).
    """

    def __init__(self, distributions: list[str] | None = None, **kwargs: Any) -> None:
        names = list(distributions or [])
        if not names or len(set(names)) != len(names):
            raise InputError(None, None, "distributions", f"need distinct names, got {names!r}")
        kwargs["distribution"] = names[0]
        super().__init__(**kwargs)
        self.distributions = names
        self._member_kwargs = kwargs
        self._members: list[VIMDataModule] = []
        self.train_lengths: list[int] = []

    @property
    def members(self) -> list[VIMDataModule]:
        """One data module per distribution (built on first use, outside ``__init__``: own hparams)."""
        if not self._members:
            self._members = [VIMDataModule(**{**self._member_kwargs, "distribution": n}) for n in self.distributions]
        for m in self._members:
            m.trainer = self.trainer
        return self._members

    @property
    def adapter_name(self) -> str:
        """The group's own folder (checkpoints for resume); dot-prefixed so adapter scans skip it."""
        digest = hashlib.sha256("\n".join(self.distributions).encode()).hexdigest()[:10]
        return f".group-{len(self.distributions)}-{digest}"

    def prepare_data(self) -> None:
        for m in self.members:
            m.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        tokenizer = self.tokenizer
        for m in self.members:
            m.tokenizer = m.tokenizer or tokenizer
            m.setup(stage)
            tokenizer = m.tokenizer
        self.tokenizer = tokenizer

    def train_dataloader(self) -> Any:
        from lightning.pytorch.utilities import CombinedLoader

        loaders = {m.distribution: m.train_dataloader() for m in self.members}
        self.train_lengths = [len(loader) for loader in loaders.values()]
        return CombinedLoader(loaders, mode="max_size")  # an adapter whose data ran out gets None (no step)

    def val_dataloader(self) -> Any:
        return [m.val_dataloader() for m in self.members]  # sequential: validation_step's dataloader_idx = k

    def metadata(self) -> dict[str, Any]:
        return {"kind": "vim-group", "name": self.adapter_name, "members": list(self.distributions)}


def group_fit_args(config: str, distributions: str, names: Sequence[str], out: str, extra: Sequence[str]) -> list[str]:
    """``valueharms fit`` arguments that train ``names`` together from a single-adapter fit YAML."""
    import json
    from pathlib import Path

    return ["--config", config, "--model", f"{__name__}.MultiLoRAModule", "--data", f"{__name__}.MultiVIMDataModule",
            "--data.init_args.distributions_file", distributions, "--data.init_args.distributions", json.dumps(list(names)),
            "--model.init_args.adapter_dir", str(Path(out) / "{name}"), *extra]


def run_groups(config: str, distributions: str, names: Sequence[str], out: str, extra: Sequence[str], k: int) -> None:
    """Fit ``names`` in groups of ``k`` (each group one ``valueharms fit``; rerunning resumes a killed group)."""
    from valueharms.progress import progress

    from valueharms.lightning_cli import run_lightning_cli

    groups = [list(names[i:i + k]) for i in range(0, len(names), k)]
    for group in progress(groups, desc=f"sweep ({k} adapters per step)", unit="group"):
        run_lightning_cli(["fit", *group_fit_args(config, distributions, group, out, extra)])
