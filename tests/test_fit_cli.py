"""``valueharms fit`` through LightningCLI: a killed run resumes from last.ckpt; bad input exits 2 on one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lightning.pytorch import Callback

from test_datamodule import write_vim_data
from valueharms.cli import main


class Killer(Callback):
    """Simulates a kill: raises after ``after`` training steps."""

    def __init__(self, after: int = 3) -> None:
        self.after = after

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.after:
            raise RuntimeError("simulated kill")


class StartRecorder(Callback):
    """Writes the global step at which training (re)started."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer, pl_module) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"{trainer.global_step}\n")


def _config(tmp_path: Path, model_dir: Path, data_dir: Path) -> Path:
    cfg = f"""
seed_everything: 1
trainer:
  accelerator: cpu
  logger: false
  enable_progress_bar: false
  enable_model_summary: false
  num_sanity_val_steps: 0
  default_root_dir: {tmp_path / 'logs'}
model:
  class_path: vim.module.VIMModule
  init_args:
    model: {model_dir}
    adapter_dir: {tmp_path / 'adapters' / '{name}'}
    lr: 1.0e-2
    checkpoint_every_n_steps: 1
data:
  class_path: vim.datamodule.VIMDataModule
  init_args:
    distribution: Pow
    distributions_file: null
    arguments: null
    data_dir: {data_dir}
    epochs_per_stage: 2
    batch_size: 4
    max_length: 256
"""
    path = tmp_path / "fit.yaml"
    path.write_text(cfg)
    return path


def test_killed_fit_resumes(tiny_model_dir, tmp_path):
    data = write_vim_data(tmp_path / "data", n=8)  # 2 steps per epoch, 2 stages x 2 epochs = 8 steps
    cfg = _config(tmp_path, tiny_model_dir, data)
    starts = tmp_path / "starts.txt"
    with pytest.raises(RuntimeError, match="simulated kill"):
        main(["fit", "--config", str(cfg), "--trainer.callbacks+=test_fit_cli.Killer",
              "--trainer.callbacks.after=5", "--trainer.callbacks+=test_fit_cli.StartRecorder",
              f"--trainer.callbacks.path={starts}"])
    adapter = tmp_path / "adapters" / "Pow"
    assert (adapter / "checkpoints" / "last.ckpt").is_file()
    assert not (adapter / "valueharms.json").exists()
    import torch

    saved_step = torch.load(adapter / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert 4 <= saved_step <= 5  # the kill lost at most the step in progress
    assert main(["fit", "--config", str(cfg), "--trainer.callbacks+=test_fit_cli.StartRecorder",
                 f"--trainer.callbacks.path={starts}"]) == 0
    first, second = [int(x) for x in starts.read_text().split()]
    assert first == 0 and second == saved_step  # continued from the last checkpoint, not from scratch
    meta = json.loads((adapter / "valueharms.json").read_text())
    assert meta["complete"] is True and meta["config"]["trainer"]["global_step"] == 8
    assert set(meta["best_epoch_per_stage"]) == {"1", "2"}
    assert (adapter / "adapter_model.safetensors").is_file()


def test_bad_yaml_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: vim.module.VIMModule\n   init_args: [\n")
    assert main(["fit", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml" in err and "invalid YAML" in err


def test_bad_distribution_file_is_one_line_exit_2(tiny_model_dir, tmp_path, capsys):
    dist = tmp_path / "dist.tsv"
    values = "Achievement\tBenevolence\tConformity\tHedonism\tPower\tSecurity\tSelf-direction\tStimulation\tTradition\tUniversalism"
    dist.write_text(f"Country\t{values}\nPow\t1\t1\t1\t1\tsix\t1\t1\t1\t1\t1\n")
    cfg = _config(tmp_path, tiny_model_dir, tmp_path / "not-prepared")
    text = cfg.read_text().replace("distributions_file: null", f"distributions_file: {dist}").replace(
        "arguments: null", f"arguments: {tmp_path / 'args.tsv'}")
    cfg.write_text(text)
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dist.tsv" in err[0] and "row 2" in err[0] and "Power" in err[0]


def test_bad_jsonl_row_is_one_line_exit_2(tiny_model_dir, tmp_path, capsys):
    data = write_vim_data(tmp_path / "data", n=4)
    with open(data / "stage1_train.jsonl", "a") as fh:
        fh.write('{"prompt": 3, "target": "x"}\n')
    cfg = _config(tmp_path, tiny_model_dir, data)
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stage1_train.jsonl" in err[0] and "row 5" in err[0] and "prompt" in err[0]
