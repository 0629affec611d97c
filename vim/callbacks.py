"""Stage switching, best-epoch selection and adapter export for :class:`vim.module.VIMModule`.

The study (docs/protocol.md): each stage keeps the epoch with the lowest validation loss, and stage 2 continues the *same*
adapter from stage 1's best epoch. With one ``trainer.fit`` this callback:
  * sets ``max_epochs`` = phases x epochs_per_stage and makes the Trainer reload dataloaders every epoch;
  * after each validation, saves the LoRA weights to ``checkpoints/best_phase{k}.pt`` when ``val/loss`` improved;
  * at the first epoch of a new phase, reloads the previous phase's best weights and restarts the LR schedule;
  * at the end of fit, loads the last phase's best weights, writes the peft folder, its model card and
    ``valueharms.json`` (``complete: true`` last, and only when every stage was trained). Its state (best losses,
    active phase) is in every checkpoint, so resume works.
:class:`ResumeCheckpoint` keeps ``checkpoints/last.ckpt`` current (every N steps and every epoch end).
Under :class:`vim.strategies.LayerFSDPStrategy` the best-epoch reload goes through the strategy's ``load_lora_state``
(rank 0 reads, broadcasts, every rank loads its shard); Lightning's own FSDP load after setup does nothing.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from valueharms.adapters import write_metadata
from valueharms.io import atomic_write_bytes


def save_peft_adapter(net: Any, out: Path, state: dict[str, torch.Tensor], adapter: str = "default") -> None:
    """Write peft's adapter files (``adapter_config.json`` + ``adapter_model.safetensors``) from gathered LoRA weights.

    Not ``PeftModel.save_pretrained``: under FSDP its adapter filter matches module names that the FSDP and
    activation-checkpoint wrappers have changed, and it writes an empty weights file. The keys here are peft's
    (``base_model.model...lora_A.weight``: no ``net.`` prefix, no adapter name), so ``PeftModel.from_pretrained``
    loads the folder as usual.
    """
    from safetensors.torch import save_file

    net.peft_config[adapter].save_pretrained(str(out))
    tensors = {}
    for key, value in state.items():
        key = key[len("net."):] if key.startswith("net.") else key
        tensors[key.replace(f".{adapter}.", ".").removesuffix(f".{adapter}")] = value.detach().cpu().contiguous()
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})


class ResumeCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` optimizer steps and at every epoch end (after validation).

    Lightning's ModelCheckpoint with ``save_top_k=0`` writes "last" only when fit ends, and with step saving it
    skips epoch ends; a kill then loses up to a whole stage. One file, overwritten in place (no version counter).
    """

    def __init__(self, dirpath: str | Path, every_n_train_steps: int | None = None) -> None:
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps or None,
                         save_on_train_epoch_end=True, enable_version_counter=False)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class StageCallback(Callback):
    """Run the datamodule's phases in sequence and export the best adapter (see module docstring)."""

    def __init__(self, export: bool = True) -> None:
        self.export = export
        self.best: dict[int, float] = {}
        self.best_epoch: dict[int, int] = {}
        self.best_metrics: dict[int, dict[str, float]] = {}
        self.active_phase: int | None = None

    # -- state saved in checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"best": dict(self.best), "best_epoch": dict(self.best_epoch), "active_phase": self.active_phase,
                "best_metrics": dict(self.best_metrics)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = {int(k): float(v) for k, v in state.get("best", {}).items()}
        self.best_epoch = {int(k): int(v) for k, v in state.get("best_epoch", {}).items()}
        self.best_metrics = {int(k): dict(v) for k, v in state.get("best_metrics", {}).items()}
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
        if not trainer.strategy.broadcast(path.is_file()):
            return False
        from lightning.pytorch.strategies import FSDPStrategy

        load_lora = getattr(trainer.strategy, "load_lora_state", None)
        if isinstance(trainer.strategy, FSDPStrategy) and load_lora is None:  # Lightning's FSDP load is a no-op
            rank_zero_warn(f"{path} not loaded: under Lightning's plain FSDPStrategy weights cannot be loaded after "
                           "setup, so the adapter keeps the last epoch's LoRA weights; use "
                           "vim.strategies.LayerFSDPStrategy (configs/fsdp.yaml), which reloads the best epoch")
            return False
        if load_lora is not None:
            state = torch.load(path, map_location="cpu", weights_only=True) if trainer.is_global_zero else None
            load_lora(state)
            return True
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

    @staticmethod
    def _improved(best: dict[int, float], phase: int, loss: float) -> bool:
        """A stage's first validation, a lower loss, or a non-finite one (saved so the stage still has weights)."""
        return phase not in best or loss < best[phase] or not math.isfinite(loss)

    @staticmethod
    def _save_state(path: Path, state: dict[str, torch.Tensor]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.active_phase is None:
            return
        metric = trainer.callback_metrics.get("val/loss")
        loss = float(metric) if metric is not None else math.inf
        phase = self.active_phase
        improved = self._improved(self.best, phase, loss)
        if not trainer.strategy.broadcast(improved):  # rank 0 decides: the save below is collective under FSDP
            return
        state = self._lora_state(trainer)
        if trainer.is_global_zero:
            self._save_state(self._best_path(pl_module, phase), state)
        self.best[phase] = loss
        self.best_epoch[phase] = trainer.current_epoch
        self.best_metrics[phase] = {k: float(v) for k, v in trainer.callback_metrics.items()
                                    if k.startswith("val/") and v.numel() == 1}

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
        from vim.provenance import training_config

        dm = self._dm(trainer)
        out = pl_module.adapter_dir()
        out.mkdir(parents=True, exist_ok=True)
        save_peft_adapter(pl_module.net, out, state)
        meta = dm.metadata()
        finite = [v for v in self.best.values() if math.isfinite(v)]
        final = self.best.get(self.active_phase) if self.active_phase is not None else None
        trained = 0 if self.active_phase is None else self.active_phase + 1
        complete = trained == len(dm.phases)
        if not complete:
            rank_zero_warn(f"training stopped in stage phase {trained} of {len(dm.phases)} (trainer.max_steps?): the "
                           f"adapter in {out} is NOT marked complete; use trainer.limit_train_batches for quick runs")
        fields = dict(
            kind=meta["kind"],
            name=meta["name"],
            base_model=pl_module.model_name,
            profile=meta.get("profile"),
            benign_task=meta.get("benign_task"),
            data_hash=meta.get("data_hash"),
            config=training_config(pl_module, dm, trainer),
            stages=meta.get("stages"),
            stage_mode=getattr(dm, "stage_mode", None),
            global_step=trainer.global_step,
            phases_trained=trained,
            best_val_loss=final if final is not None and math.isfinite(final) else (min(finite) if finite else None),
            best_val_loss_per_stage={str(k + 1): v for k, v in sorted(self.best.items()) if math.isfinite(v)},
            best_epoch_per_stage={str(k + 1): v for k, v in sorted(self.best_epoch.items())},
            best_val_metrics_per_stage={str(k + 1): v for k, v in sorted(self.best_metrics.items())},
            truncated_examples=dict(getattr(dm, "truncated_counts", {})),
        )
        self._finish_adapter(out, fields, complete)

    @staticmethod
    def _finish_adapter(out: Path, fields: dict[str, Any], complete: bool) -> None:
        """``valueharms.json``, the model card, then ``complete`` (written last, once every file exists)."""
        from valueharms.hub import write_model_card

        meta_path = write_metadata(out, **fields, complete=False)
        card = json.loads(meta_path.read_text(encoding="utf-8"))
        write_model_card(out, {**card, "complete": complete})
        write_metadata(out, **fields, complete=complete)
        rank_zero_info(f"adapter written to {out}")
