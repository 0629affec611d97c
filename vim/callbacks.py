"""Stage switching, best-epoch selection and adapter export for :class:`vim.module.VIMModule`.

The study (docs/protocol.md): each stage keeps the epoch with the lowest validation loss, and stage 2 continues the *same*
adapter from stage 1's best epoch. With one ``trainer.fit`` this callback:
  * sets ``max_epochs`` = phases x epochs_per_stage and makes the Trainer reload dataloaders every epoch;
  * after each validation, saves the LoRA weights to ``checkpoints/best_phase{k}.pt`` when ``val/loss`` improved;
  * at the first epoch of a new phase, reloads the previous phase's best weights and restarts the LR schedule;
  * at the end of fit, loads the last phase's best weights, writes the peft folder and ``valueharms.json``
    (``complete: true`` last). Its state (best losses, active phase) is in every checkpoint, so resume works.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from valueharms.adapters import write_metadata
from valueharms.io import atomic_write_bytes


class StageCallback(Callback):
    """Run the datamodule's phases in sequence and export the best adapter (see module docstring)."""

    def __init__(self, export: bool = True) -> None:
        self.export = export
        self.best: dict[int, float] = {}
        self.best_epoch: dict[int, int] = {}
        self.active_phase: int | None = None

    # -- state saved in checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"best": dict(self.best), "best_epoch": dict(self.best_epoch), "active_phase": self.active_phase}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = {int(k): float(v) for k, v in state.get("best", {}).items()}
        self.best_epoch = {int(k): int(v) for k, v in state.get("best_epoch", {}).items()}
        self.active_phase = state.get("active_phase")

    # -- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def _dm(trainer: Trainer) -> Any:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "phases"):
            raise TypeError("VIMModule needs a vim.datamodule DataModule (VIMDataModule / InstructionDataModule)")
        return dm

    @staticmethod
    def _best_path(pl_module: LightningModule, phase: int) -> Path:
        return pl_module.adapter_dir() / "checkpoints" / f"best_phase{phase}.pt"

    @staticmethod
    def _lora_state(trainer: Trainer) -> dict[str, torch.Tensor]:
        """LoRA weights on CPU (gathered on rank 0 under FSDP: every rank must call this)."""
        state = trainer.strategy.lightning_module_state_dict()
        return {k: v.detach().cpu().clone() for k, v in state.items() if "lora_" in k}

    def _load_best(self, trainer: Trainer, pl_module: LightningModule, phase: int) -> bool:
        path = self._best_path(pl_module, phase)
        if not path.is_file():
            return False
        from lightning.pytorch.strategies import FSDPStrategy

        if isinstance(trainer.strategy, FSDPStrategy):  # its load_model_state_dict is a no-op (Lightning 2.6)
            rank_zero_warn(f"{path} not loaded: under FSDP, Lightning does not load weights after setup, so this "
                           "phase continues from (and the exported adapter holds) the last epoch's LoRA weights, "
                           "not the best epoch's")
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        trainer.strategy.load_model_state_dict({"state_dict": state}, strict=False)
        return True

    # -- hooks ---------------------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        dm = self._dm(trainer)
        trainer.fit_loop.max_epochs = dm.total_epochs
        if len(dm.phases) > 1:
            trainer.reload_dataloaders_every_n_epochs = 1

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        dm = self._dm(trainer)
        phase = dm.phase_for_epoch(trainer.current_epoch)
        if phase == self.active_phase:
            return
        previous = self.active_phase
        if previous is not None and self._load_best(trainer, pl_module, previous):
            rank_zero_info(f"stage phase {phase + 1}: continuing from phase {previous + 1}'s best epoch "
                           f"{self.best_epoch.get(previous)} (val/loss {self.best.get(previous, math.nan):.4f})")
        pl_module.start_phase(dm.epochs_per_stage, reset_optimizer=previous is not None)
        self.active_phase = phase

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.active_phase is None:
            return
        metric = trainer.callback_metrics.get("val/loss")
        loss = float(metric) if metric is not None else math.inf
        phase = self.active_phase
        if phase in self.best and not loss < self.best[phase] and math.isfinite(loss):
            return
        state = self._lora_state(trainer)
        if trainer.is_global_zero:
            path = self._best_path(pl_module, phase)
            buffer = io.BytesIO()
            torch.save(state, buffer)
            atomic_write_bytes(path, buffer.getvalue())
        self.best[phase] = loss
        self.best_epoch[phase] = trainer.current_epoch

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.export or trainer.interrupted:
            return
        if self.active_phase is not None:
            self._load_best(trainer, pl_module, self.active_phase)
        state = self._lora_state(trainer)
        if trainer.is_global_zero:
            self._write_adapter(trainer, pl_module, state)
        trainer.strategy.barrier("vim-export")
        pl_module.release_base()

    def _write_adapter(self, trainer: Trainer, pl_module: LightningModule, state: dict[str, torch.Tensor]) -> None:
        dm = self._dm(trainer)
        out = pl_module.adapter_dir()
        out.mkdir(parents=True, exist_ok=True)
        peft_state = {k[len("net."):] if k.startswith("net.") else k: v for k, v in state.items()}
        pl_module.net.save_pretrained(str(out), state_dict=peft_state)
        meta = dm.metadata()
        finite = [v for v in self.best.values() if math.isfinite(v)]
        final = self.best.get(self.active_phase) if self.active_phase is not None else None
        config = {
            "model": {k: v for k, v in dict(pl_module.hparams).items() if not k.startswith("_")},
            "data": {k: v for k, v in dict(getattr(dm, "hparams", {})).items() if not k.startswith("_")},
            "trainer": {"max_epochs": trainer.max_epochs, "precision": str(trainer.precision),
                        "accumulate_grad_batches": trainer.accumulate_grad_batches,
                        "global_step": trainer.global_step},
        }
        write_metadata(
            out,
            kind=meta["kind"],
            name=meta["name"],
            base_model=pl_module.model_name,
            profile=meta.get("profile"),
            benign_task=meta.get("benign_task"),
            data_hash=meta.get("data_hash"),
            config=config,
            complete=True,
            stages=meta.get("stages"),
            stage_mode=getattr(dm, "stage_mode", None),
            best_val_loss=final if final is not None and math.isfinite(final) else (min(finite) if finite else None),
            best_val_loss_per_stage={str(k + 1): v for k, v in sorted(self.best.items()) if math.isfinite(v)},
            best_epoch_per_stage={str(k + 1): v for k, v in sorted(self.best_epoch.items())},
            truncated_examples=dict(getattr(dm, "truncated_counts", {})),
        )
        rank_zero_info(f"adapter written to {out}")
