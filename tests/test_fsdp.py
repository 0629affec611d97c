"""FSDP on 2 CPU processes (gloo) through ``valueharms fit``: the best epoch of each stage is really reloaded on every
rank (Lightning's FSDP load after setup is a no-op), the exported adapter is the best stage-2 epoch, and
checkpoints hold only LoRA weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from test_datamodule import write_vim_data
from vim.module import VIMModule

TESTS = Path(__file__).resolve().parent


def _lora_weights(trainer) -> dict[str, torch.Tensor]:
    """Every rank: the full LoRA weights (standard FSDP gather of the whole tiny model)."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from vim.strategies import clean_name

    with FSDP.summon_full_params(trainer.strategy.model, writeback=False):
        return {clean_name(k): v.detach().clone() for k, v in trainer.strategy.model.named_parameters()
                if "lora_" in k}


class FirstEpochOfStageIsBest(VIMModule):
    """Reports a worse val/loss for every epoch but the first of each stage, so the best epoch is not the last."""

    def _log_losses(self, prefix, batch, out) -> None:
        if prefix == "val" and self.current_epoch % 2 == 1:
            out.loss = out.loss + 100.0
        super()._log_losses(prefix, batch, out)


class Probe(Callback):
    """Writes per rank: LoRA weights at the end of each epoch and at stage 2's first batch (after the reload)."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def _dump(self, trainer, tag: str) -> None:
        weights = _lora_weights(trainer)
        torch.save(weights, self.out / f"{tag}-rank{trainer.global_rank}.pt")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._dump(trainer, f"end{trainer.current_epoch}")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 2 and batch_idx == 0:
            self._dump(trainer, "stage2-start")


def _config(tmp_path: Path, model_dir: Path, data: Path) -> Path:
    cfg = tmp_path / "fit.yaml"
    cfg.write_text(f"""
seed_everything: 1
trainer:
  accelerator: cpu
  devices: 2
  strategy:
    class_path: vim.strategies.LayerFSDPStrategy
    init_args: {{layers: [LlamaDecoderLayer], activation_checkpointing: false}}
  logger: false
  enable_progress_bar: false
  enable_model_summary: false
  num_sanity_val_steps: 0
  default_root_dir: {tmp_path}
  callbacks:
    - class_path: test_fsdp.Probe
      init_args: {{out: {tmp_path}}}
model:
  class_path: test_fsdp.FirstEpochOfStageIsBest
  init_args: {{model: {model_dir}, adapter_dir: '{tmp_path / 'adapters' / '{name}'}', lr: 5.0e-2,
              agreement_eval_examples: 3, checkpoint_every_n_steps: 1}}
data:
  class_path: vim.datamodule.VIMDataModule
  init_args: {{distribution: Pow, distributions_file: null, arguments: null, data_dir: {data},
              epochs_per_stage: 2, batch_size: 2, max_length: 256}}
""")
    return cfg


@pytest.mark.timeout(600)
def test_fsdp_reloads_best_epoch_on_every_rank(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    cfg = _config(tmp_path, tiny_model_dir, write_vim_data(tmp_path / "data", n=8))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.pop("LOCAL_RANK", None)
    done = subprocess.run([str(Path(sys.executable).parent / "valueharms"), "fit", "--config", str(cfg)], env=env,
                          capture_output=True, text=True, timeout=540, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    adapter = tmp_path / "adapters" / "Pow"
    best1 = torch.load(adapter / "checkpoints" / "best_phase0.pt", weights_only=True)
    best2 = torch.load(adapter / "checkpoints" / "best_phase1.pt", weights_only=True)
    assert len(best1) == 8 and all("lora_" in k for k in best1)  # 2 layers x (q, v) x (A, B)
    for rank in (0, 1):
        last_of_stage1 = torch.load(tmp_path / f"end1-rank{rank}.pt")
        start2 = torch.load(tmp_path / f"stage2-start-rank{rank}.pt")
        assert set(start2) == set(best1)
        assert any(not torch.equal(last_of_stage1[k], best1[k]) for k in best1)  # the reload has work to do
        for k, v in best1.items():
            assert torch.equal(start2[k], v), (rank, k)  # stage 2 starts from stage 1's best epoch on every rank
    meta = json.loads((adapter / "valueharms.json").read_text())
    assert meta["complete"] and meta["best_epoch_per_stage"] == {"1": 0, "2": 2}
    exported = load_file(adapter / "adapter_model.safetensors")
    final = torch.load(tmp_path / "end3-rank0.pt")
    assert any(not torch.equal(final[k], best2[k]) for k in best2)
    for k, v in best2.items():  # the exported adapter is stage 2's best epoch, not its last
        assert torch.equal(exported[k[len("net."):].replace(".default", "")], v), k
    ckpt = torch.load(adapter / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert sorted(ckpt["state_dict"]) == sorted(best1)  # LoRA weights only
