"""The LightningModule that trains a LoRA adapter on a causal LM: VIM (two stages) or a benign baseline.

Design (docs/protocol.md, "VIM training settings"):
  * the HF model + peft LoRA are built in ``configure_model`` (guarded) so FSDP can shard them at init;
  * checkpoints hold only the LoRA weights (``state_dict`` is filtered, ``strict_loading=False``), so they are small
    and resuming still works;
  * the LR schedule (AdamW, optional warmup, linear decay) restarts at each stage phase: the
    :class:`vim.callbacks.StageCallback` calls :meth:`start_phase`, which also clears the optimizer moments, as
    the paper's stage 2 is a fresh run from stage 1's best checkpoint;
  * per-stage losses are logged as ``train/loss_stage1``, ``val/loss_stage2`` ...; ``val/loss`` picks the best epoch;
  * stage-2 epochs also log ``val/agreement_accuracy`` and ``val/agreement_mae`` (torchmetrics; see vim.agreement);
  * ``checkpoints/last.ckpt`` is rewritten every ``checkpoint_every_n_steps`` steps and at every epoch end, so a
    killed fit loses at most that many steps; it also records the training config (``valueharms_config``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule

LORA_KEY = "lora_"


def phase_lr_factor(step: int, total: int, warmup: int) -> float:
    """The LR factor ``step`` steps into a phase of ``total`` steps: linear warm-up (optional), then linear decay to
    0 at the phase's end (HF's linear schedule, restarted each phase)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


class VIMModule(LightningModule):
    """LoRA fine-tuning of a causal LM whose data, stages and metadata come from the DataModule."""

    #: base models kept between fits in one process (the sweep reuses them): (name, dtype) -> model
    _BASE_CACHE: dict[tuple[str, str | None], Any] = {}

    def __init__(
        self,
        model: str = "smollm2-135m",
        adapter_dir: str = "runs/adapters/{name}",
        lora_r: int = 8,
        lora_alpha: int = 32,
        lora_dropout: float = 0.1,
        target_modules: list[str] = ["q_proj", "v_proj"],  # noqa: B006 (YAML default)
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        dtype: str | None = None,
        gradient_checkpointing: bool = False,
        checkpoint_every_n_steps: int | None = 50,
        reuse_base: bool = False,
        agreement_eval_examples: int | None = 256,
        attn_implementation: str | None = None,
    ) -> None:
        """
        Args:
            model: HF hub id, local folder, ``.gguf`` file or alias (``smollm2-135m``).
            adapter_dir: output folder for the peft adapter + ``valueharms.json`` (``{name}`` = distribution/task).
            lora_r: LoRA rank.
            lora_alpha: LoRA scaling alpha.
            lora_dropout: LoRA dropout.
            target_modules: module names LoRA wraps.
            lr: AdamW learning rate (restarted per stage).
            weight_decay: AdamW weight decay (0.01: the study's trainer default).
            warmup_steps: linear warmup steps at the start of each stage (paper: 0).
            dtype: dtype to load the base weights in (None: checkpoint default; precision comes from the Trainer).
            gradient_checkpointing: trade compute for memory on long sequences.
            checkpoint_every_n_steps: rewrite ``last.ckpt`` every N optimizer steps (and at every epoch end): a
                killed fit loses at most N steps. ``null``/0: epoch ends only.
            reuse_base: keep the base model in memory after fit for the next fit in this process (sweeps).
            agreement_eval_examples: stage-2 validation examples answered with the six candidate scores each epoch
                for ``val/agreement_accuracy`` / ``val/agreement_mae`` (``null``: all; 0: off).
            attn_implementation: transformers attention kernel (``sdpa``, ``flex_attention``, ``flash_attention_2``,
                ``torch_varlen``) or ``auto`` (fastest available: varlen kernels for packed rows on CUDA, sdpa on
                CPU); see ``vim.attention``. The kernel that ran is logged at the first step.
        """
        super().__init__()
        self.save_hyperparameters()
        self.model_name = model
        self.adapter_dir_template = adapter_dir
        self.net: Any = None
        self.strict_loading = False
        self._phase_start_step = 0
        self._phase_total_steps = 1
        self._scheduler: Any = None
        from torchmetrics import MeanAbsoluteError
        from torchmetrics.classification import MulticlassAccuracy

        self.agreement_accuracy = MulticlassAccuracy(num_classes=6, average="micro")
        self.agreement_mae = MeanAbsoluteError()
        self._agreement_items: tuple[int, list[dict[str, Any]]] | None = None
        self._agreement_pending = False
        self.attention_kernel: str | None = None  # what the first training forward ran (vim.attention)

    # -- model -------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.net is not None:
            return
        from peft import get_peft_model

        from vim.attention import resolve_for_module

        attn = resolve_for_module(self.hparams.attn_implementation, self, self.hparams.dtype)
        key = (self.model_name, self.hparams.dtype)
        base = VIMModule._BASE_CACHE.pop(key, None) if self.hparams.reuse_base else None
        if base is not None and attn is not None:
            base.set_attn_implementation(attn)
        if base is None:
            from valueharms.model_loading import load_model

            base = load_model(self.model_name, dtype=self.hparams.dtype, attn_implementation=attn)
        if self.hparams.gradient_checkpointing:
            base.gradient_checkpointing_enable()
            base.enable_input_require_grads()
        config = self.lora_config()
        self.net = get_peft_model(base, config)
        # get_peft_model writes the base's own name_or_path (this machine's cache folder): keep the portable one
        self.net.peft_config["default"].base_model_name_or_path = config.base_model_name_or_path
        self.net.train()  # from_pretrained returns eval mode; LoRA dropout must be active in training

    def lora_config(self) -> Any:
        """This fit's LoRA settings; ``adapter_config.json`` names the base by alias / hub id, never this machine's
        cache folder (single fits and K-adapter fits alike)."""
        from peft import LoraConfig

        from valueharms.hub import portable_base_name

        hp = self.hparams
        return LoraConfig(task_type="CAUSAL_LM", r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                          target_modules=list(hp.target_modules),
                          base_model_name_or_path=portable_base_name(self.model_name))

    def release_base(self) -> None:
        """Strip the LoRA layers and keep the base model for the next fit (``reuse_base``)."""
        if self.hparams.reuse_base and self.net is not None:
            VIMModule._BASE_CACHE[(self.model_name, self.hparams.dtype)] = self.net.unload()
            self.net = None

    def adapter_dir(self, name: str | None = None) -> Path:
        """The output folder, with ``{name}`` filled from the DataModule (distribution or benign task)."""
        if name is None:
            dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
            name = getattr(dm, "adapter_name", None) or "adapter"
        return Path(self.adapter_dir_template.format(name=name, distribution=name))

    def resume_state(self, datamodule: Any, trainer: Any, *, overwrite: bool, may_delete: bool) -> tuple[Path, Any]:
        """Where this fit stands (:func:`vim.provenance.resume_state`): already complete with this config, a
        checkpoint to resume from, or a fresh start; a different recorded config is refused unless ``overwrite``.
        The CLI calls this hook, so the core never imports the VIM method."""
        from vim.provenance import resume_state, training_config

        folder = self.adapter_dir(getattr(datamodule, "adapter_name", None))
        return folder, resume_state(folder, training_config(self, datamodule, trainer), overwrite=overwrite,
                                    may_delete=may_delete)

    def configure_callbacks(self) -> list[Any]:
        """Stage switching, best-epoch export and an always-current ``last.ckpt`` for resume, without any YAML."""
        from vim.callbacks import ResumeCheckpoint, StageCallback

        last = ResumeCheckpoint(self.adapter_dir() / "checkpoints", self.hparams.checkpoint_every_n_steps)
        return [StageCallback(), last]

    # -- checkpoints hold LoRA weights only ---------------------------------------------------------------
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        full = super().state_dict(*args, **kwargs)
        return type(full)((k, v) for k, v in full.items() if LORA_KEY in k)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if LORA_KEY in k}
        checkpoint["vim_schedule"] = {"start": self._phase_start_step, "total": self._phase_total_steps}
        from vim.provenance import training_config

        checkpoint["valueharms_config"] = training_config(self, self.trainer.datamodule, self.trainer)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        sched = checkpoint.get("vim_schedule") or {}
        self._phase_start_step = int(sched.get("start", 0))
        self._phase_total_steps = int(sched.get("total", 1))

    # -- steps ----------------------------------------------------------------------------------------------
    def _forward(self, batch: dict[str, Any]) -> Any:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids", "labels") if k in batch}
        return self.net(**inputs, use_cache=False)  # no KV cache in training (packed batches need that too)

    def _log_losses(self, prefix: str, batch: dict[str, Any], out: Any) -> None:
        n = int(batch["input_ids"].shape[0])
        on_step = prefix == "train"
        # sync_dist: under FSDP/DDP every rank must see the same val/loss (the best epoch). Not for the per-stage
        # losses: in mixed mode a rank's batch may lack a stage, and unmatched syncs would hang
        self.log(f"{prefix}/loss", out.loss, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=n,
                 sync_dist=True)
        stages = batch.get("stage")
        if stages is None:
            return
        unique = torch.unique(stages).tolist()
        if len(unique) == 1:
            self.log(f"{prefix}/loss_stage{unique[0]}", out.loss, on_step=on_step, on_epoch=True, batch_size=n)
            return
        per_example = self._per_example_loss(out.logits, batch["labels"])
        for st in unique:
            mask = stages == st
            self.log(f"{prefix}/loss_stage{st}", per_example[mask].mean(), on_step=on_step, on_epoch=True,
                     batch_size=int(mask.sum()))

    @staticmethod
    def _per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
        tok = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels, ignore_index=-100,
                                                reduction="none")
        counts = (shift_labels != -100).sum(1).clamp(min=1)
        return tok.sum(1) / counts

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self._forward(batch)
        if self.attention_kernel is None:
            from vim.attention import log_kernel

            self.attention_kernel = log_kernel(self.net, batch)
        self._log_losses("train", batch, out)
        return out.loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self._forward(batch)
        self._log_losses("val", batch, out)
        if batch_idx == self.trainer.num_val_batches[0] - 1:  # inside the strategy's forward (FSDP unsharded)
            self._agreement_update()
        return out.loss

    def _agreement_update(self) -> None:
        """Stage-2 agreement: the most likely of the six answers vs the profile's score (see vim.agreement)."""
        items = self._agreement_eval_items()
        if not items:
            return
        from vim.agreement import predict_scores, shard

        mine, real = shard(items, self.global_rank, self.trainer.world_size)
        tok = self.trainer.datamodule.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        preds = predict_scores(self.net, mine, pad, self.device)[:real].to(self.device)
        target = torch.tensor([it["target"] for it in mine[:real]], dtype=torch.long, device=self.device)
        self.agreement_accuracy.update(preds - 1, target - 1)
        self.agreement_mae.update(preds.float(), target.float())
        self._agreement_pending = True

    def on_validation_epoch_end(self) -> None:
        if self._agreement_pending:
            self.log("val/agreement_accuracy", self.agreement_accuracy.compute(), sync_dist=True)  # same on all ranks
            self.log("val/agreement_mae", self.agreement_mae.compute(), sync_dist=True)
            self.agreement_accuracy.reset()
            self.agreement_mae.reset()
            self._agreement_pending = False

    def _agreement_eval_items(self) -> list[dict[str, Any]]:
        """Encoded six-candidate items for the stage-2 validation rows, when this epoch trains stage 2."""
        limit = self.hparams.agreement_eval_examples
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if limit == 0 or self.trainer.sanity_checking or not hasattr(dm, "phases") or not hasattr(dm, "rows"):
            return []
        if 2 not in dm.phases[dm.phase_for_epoch(self.current_epoch)]:
            return []
        rows = dm.rows.get((2, "valid")) or []
        if self._agreement_items is None or self._agreement_items[0] != id(rows):
            from vim.agreement import build_items

            self._agreement_items = (id(rows), build_items(rows, dm.encode, limit))
        return self._agreement_items[1]

    # -- optimisation: linear decay restarted at each stage -------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        return phase_lr_factor(step - self._phase_start_step, self._phase_total_steps, self.hparams.warmup_steps)

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        self._scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self._scheduler, "interval": "step"}}

    def start_phase(self, epochs: int, *, reset_optimizer: bool) -> None:
        """Restart the LR schedule for a phase of ``epochs`` epochs starting now (called at an epoch start)."""
        trainer = self.trainer
        batches = trainer.num_training_batches
        if not math.isfinite(batches):
            batches = 1
        if trainer.limit_train_batches is not None and isinstance(trainer.limit_train_batches, int):
            batches = min(batches, trainer.limit_train_batches)
        per_epoch = max(1, math.ceil(batches / max(1, trainer.accumulate_grad_batches)))
        self._phase_start_step = trainer.global_step
        self._phase_total_steps = per_epoch * max(1, epochs)
        for optimizer in trainer.optimizers:
            if reset_optimizer:
                optimizer.state.clear()
        if self._scheduler is not None:
            factor = self._lr_factor(trainer.global_step)
            for group, base_lr in zip(self._scheduler.optimizer.param_groups, self._scheduler.base_lrs):
                group["lr"] = base_lr * factor
