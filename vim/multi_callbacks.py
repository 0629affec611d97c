"""Stages, best epoch and export for each adapter of a :class:`vim.multi_adapter.MultiLoRAModule`.

The same protocol as :class:`vim.callbacks.StageCallback`, kept per adapter: each adapter saves its weights when
its own validation loss improves, starts the next stage from its own best epoch with fresh AdamW moments and a
restarted LR schedule, and at the end is exported from its best epoch as an ordinary peft folder with
``valueharms.json`` and model card (``complete`` written last, true only when every stage trained), exactly where
a single fit would have put it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from valueharms.io import atomic_write_bytes
from vim.callbacks import StageCallback
from vim.stacked_lora import adapter_state, load_adapter_state


class MultiStageCallback(StageCallback):
    """Per-adapter best epochs (``best[name][phase]``); phase switching as in :class:`StageCallback`."""

    def __init__(self, export: bool = True) -> None:
        super().__init__(export)
        self.best: dict[str, dict[int, float]] = {}  # type: ignore[assignment]
        self.best_epoch: dict[str, dict[int, int]] = {}  # type: ignore[assignment]

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "active_phase": self.active_phase}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = {n: {int(p): float(v) for p, v in d.items()} for n, d in state.get("best", {}).items()}
        self.best_epoch = {n: {int(p): int(v) for p, v in d.items()} for n, d in state.get("best_epoch", {}).items()}
        self.active_phase = state.get("active_phase")

    @staticmethod
    def _adapter_best_path(pl_module: LightningModule, name: str, phase: int) -> Path:
        return pl_module.adapter_dir(name) / "checkpoints" / f"best_phase{phase}.pt"

    def _load_adapter_best(self, pl_module: Any, k: int, name: str, phase: int) -> bool:
        path = self._adapter_best_path(pl_module, name, phase)
        if not path.is_file():
            return False
        load_adapter_state(pl_module.wrappers, k, torch.load(path, map_location="cpu", weights_only=True))
        return True

    def on_train_epoch_start(self, trainer: Trainer, pl_module: Any) -> None:
        dm = self._dm(trainer)
        previous, phase = self.active_phase, dm.phase_for_epoch(trainer.current_epoch)
        if phase != previous:
            self._start_phase(trainer, pl_module, dm, phase, previous)

    def _start_phase(self, trainer: Trainer, pl_module: Any, dm: Any, phase: int, previous: int | None) -> None:
        """Each adapter continues from its own best epoch of ``previous`` with a fresh optimizer and schedule."""
        limit = trainer.limit_train_batches
        for k, name in enumerate(pl_module.names):
            if previous is not None and self._load_adapter_best(pl_module, k, name, previous):
                rank_zero_info(f"{name}: stage phase {phase + 1} continues from phase {previous + 1}'s best epoch "
                               f"{self.best_epoch.get(name, {}).get(previous)}")
            batches = dm.train_lengths[k]
            if isinstance(limit, int):
                batches = min(batches, limit)
            pl_module.start_adapter_phase(k, dm.epochs_per_stage, batches, reset_optimizer=previous is not None)
        self.active_phase = phase

    def on_validation_end(self, trainer: Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking or self.active_phase is None:
            return
        phase = self.active_phase
        for k, name in enumerate(pl_module.names):
            loss = pl_module.val_losses.get(k, math.inf)
            best = self.best.setdefault(name, {})
            if not self._improved(best, phase, loss):
                continue
            self._save_state(self._adapter_best_path(pl_module, name, phase), adapter_state(pl_module.wrappers, k))
            best[phase] = loss
            self.best_epoch.setdefault(name, {})[phase] = trainer.current_epoch

    def on_fit_end(self, trainer: Trainer, pl_module: Any) -> None:
        if not self.export or trainer.interrupted:
            return
        dm = self._dm(trainer)
        for k, (name, member) in enumerate(zip(pl_module.names, dm.members)):
            if self.active_phase is not None:
                self._load_adapter_best(pl_module, k, name, self.active_phase)
            self._export(trainer, pl_module, k, member)

    def _export(self, trainer: Trainer, pl_module: Any, k: int, member: Any) -> None:
        """A peft folder (config + safetensors) and ``valueharms.json`` for adapter ``k``."""
        from safetensors.torch import save as safetensors_bytes

        out = pl_module.adapter_dir(member.adapter_name)
        pl_module.lora_config().save_pretrained(str(out))
        atomic_write_bytes(out / "adapter_model.safetensors", safetensors_bytes(adapter_state(pl_module.wrappers, k)))
        meta = member.metadata()
        best = {p: v for p, v in self.best.get(member.adapter_name, {}).items() if math.isfinite(v)}
        final = best.get(self.active_phase) if self.active_phase is not None else None
        settings = {"model": dict(pl_module.hparams), "data": dict(getattr(member, "hparams", {})),
                    "trainer": {"max_epochs": trainer.max_epochs, "precision": str(trainer.precision),
                                "adapters_per_step": len(pl_module.names)}}
        trained = 0 if self.active_phase is None else self.active_phase + 1
        complete = trained == len(member.phases)  # the single fit's rule: every stage trained
        if not complete:
            rank_zero_warn(f"{member.adapter_name}: training stopped in stage phase {trained} of "
                           f"{len(member.phases)}: the adapter in {out} is NOT marked complete")
        fields = dict(kind=meta["kind"], name=meta["name"], base_model=pl_module.model_name,
                      profile=meta.get("profile"), data_hash=meta.get("data_hash"), config=settings,
                      stages=meta.get("stages"), stage_mode=getattr(member, "stage_mode", None),
                      global_step=trainer.global_step, phases_trained=trained,
                      best_val_loss=final if final is not None else (min(best.values()) if best else None),
                      best_val_loss_per_stage={str(p + 1): v for p, v in sorted(best.items())},
                      best_epoch_per_stage={str(p + 1): e for p, e in
                                            sorted(self.best_epoch.get(member.adapter_name, {}).items())},
                      truncated_examples=dict(member.truncated_counts))
        self._finish_adapter(out, fields, complete)
