"""``valueharms fit`` through LightningCLI: a killed fit (kill -9 or Ctrl-C) resumes exactly from last.ckpt; a rerun
with other settings is refused; bad input exits 2 on one line."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lightning.pytorch import Callback

from test_datamodule import write_vim_data
from valueharms.cli import main

TESTS = Path(__file__).resolve().parent
VALUEHARMS = Path(sys.executable).parent / "valueharms"


class StartRecorder(Callback):
    """Writes the global step at which training (re)started."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer, pl_module) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"{trainer.global_step}\n")


class BatchRecorder(Callback):
    """Appends ``step epoch [row hashes]`` after every step, then sleeps (so a test can kill the run mid-epoch)."""

    def __init__(self, path: str, delay: float = 0.0) -> None:
        self.path, self.delay = path, delay

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        rows = [hashlib.sha1(str(r.tolist()).encode()).hexdigest()[:10] for r in batch["input_ids"]]
        with open(self.path, "a") as fh:
            fh.write(json.dumps([trainer.global_step, trainer.current_epoch, rows]) + "\n")
        time.sleep(self.delay)


def _config(tmp_path: Path, model_dir: Path, data_dir: Path, logger: bool = False) -> Path:
    cfg = f"""
seed_everything: 1
trainer:
  accelerator: cpu
  {'' if logger else 'logger: false'}
  enable_progress_bar: false
  enable_model_summary: false
  log_every_n_steps: 1
  num_sanity_val_steps: 0
  default_root_dir: {tmp_path / 'logs'}
model:
  class_path: vim.module.VIMModule
  init_args:
    model: {model_dir}
    adapter_dir: {tmp_path / 'adapters' / '{name}'}
    lr: 1.0e-2
    checkpoint_every_n_steps: 1
    agreement_eval_examples: 2
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


def _recorders(starts: Path, batches: Path, delay: float) -> list[str]:
    return ["--trainer.callbacks+=test_fit_cli.StartRecorder", f"--trainer.callbacks.path={starts}",
            "--trainer.callbacks+=test_fit_cli.BatchRecorder", f"--trainer.callbacks.path={batches}",
            f"--trainer.callbacks.delay={delay}"]


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([str(VALUEHARMS), *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_step(proc: subprocess.Popen, batches: Path, step: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if batches.is_file() and any(json.loads(l)[0] >= step for l in batches.read_text().splitlines() if l):
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no step {step} within {timeout}s")


def _steps(path: Path) -> dict[int, tuple[int, list[str]]]:
    return {s: (e, rows) for s, e, rows in (json.loads(l) for l in path.read_text().splitlines() if l)}


def test_killed_and_interrupted_fit_resumes_exactly(tiny_model_dir, tmp_path):
    """kill -9 mid-epoch, then Ctrl-C: each rerun continues from last.ckpt (not from scratch), Ctrl-C exits 130 with
    the resume hint, and every epoch of the final timeline trains each example exactly once."""
    import torch

    from valueharms.adapters import training_curves

    data = write_vim_data(tmp_path / "data", n=12)  # 3 steps per epoch, 2 stages x 2 epochs = 12 steps
    cfg = _config(tmp_path, tiny_model_dir, data, logger=True)
    starts, adapter = tmp_path / "starts.txt", tmp_path / "adapters" / "Pow"
    runs = [tmp_path / f"batches{i}.jsonl" for i in range(3)]

    first = _start(["fit", "--config", str(cfg), *_recorders(starts, runs[0], 0.4)])
    _wait_for_step(first, runs[0], 5)  # step 4's checkpoint is written before step 5 starts
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = torch.load(adapter / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert killed_at >= 4 and not (adapter / "valueharms.json").exists()

    # a rerun with other settings is refused before any training, naming the field
    assert main(["fit", "--config", str(cfg), "--model.init_args.lr", "0.5"]) == 2

    second = _start(["fit", "--config", str(cfg), *_recorders(starts, runs[1], 0.4)])
    _wait_for_step(second, runs[1], killed_at + 2)  # so step killed_at + 1 is checkpointed
    second.send_signal(signal.SIGINT)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 130, err
    assert err.strip().splitlines()[-1] == "valueharms: interrupted; rerun the same command to resume"
    interrupted_at = torch.load(adapter / "checkpoints" / "last.ckpt", map_location="cpu",
                                weights_only=False)["global_step"]

    assert main(["fit", "--config", str(cfg), *_recorders(starts, runs[2], 0.0)]) == 0
    assert [int(x) for x in starts.read_text().split()] == [0, killed_at, interrupted_at]
    assert killed_at < interrupted_at < 12

    # the timeline the final weights followed: run 1 up to its checkpoint, run 2 up to its own, then run 3
    timeline = {s: v for s, v in _steps(runs[0]).items() if s <= killed_at}
    timeline |= {s: v for s, v in _steps(runs[1]).items() if killed_at < s <= interrupted_at}
    timeline |= _steps(runs[2])
    assert sorted(timeline) == list(range(1, 13))
    for epoch in range(4):
        rows = [r for s, (e, batch) in timeline.items() if e == epoch for r in batch]
        assert len(rows) == 12 and len(set(rows)) == 12, (epoch, rows)  # each example once per epoch
    orders = [[r for s in sorted(timeline) if timeline[s][0] == e for r in timeline[s][1]] for e in (0, 1)]
    assert orders[0] != orders[1]  # reshuffled every epoch

    meta = json.loads((adapter / "valueharms.json").read_text())
    assert meta["complete"] is True and meta["global_step"] == 12
    assert set(meta["best_epoch_per_stage"]) == {"1", "2"}
    assert (adapter / "adapter_model.safetensors").is_file()
    curves = training_curves(adapter)
    steps = curves["step"].tolist()
    assert steps == sorted(steps) and curves["step"].max() >= 11
    assert {"train/loss_step", "val/loss", "val/agreement_accuracy"} <= set(curves.columns)
    assert curves["val/agreement_accuracy"].notna().sum() == 2  # stage-2 epochs only


def test_rerun_with_other_settings_is_refused_unless_overwrite(tiny_model_dir, tmp_path, capsys):
    data = write_vim_data(tmp_path / "data", n=4)
    cfg = _config(tmp_path, tiny_model_dir, data)
    cfg.write_text(cfg.read_text().replace("epochs_per_stage: 2", "epochs_per_stage: 1"))
    starts, batches = tmp_path / "starts.txt", tmp_path / "batches.jsonl"
    assert main(["fit", "--config", str(cfg)]) == 0
    meta_path = tmp_path / "adapters" / "Pow" / "valueharms.json"
    before = meta_path.read_bytes()
    capsys.readouterr()

    assert main(["fit", "--config", str(cfg), "--model.init_args.lr", "0.5", "--data.init_args.batch_size", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.lr (0.01 -> 0.5)" in err[0] and "data.batch_size (4 -> 2)" in err[0]
    assert "--overwrite" in err[0] and meta_path.read_bytes() == before  # never rewritten to claim new settings

    assert main(["fit", "--config", str(cfg), *_recorders(starts, batches, 0.0)]) == 0  # same config: nothing to do
    assert not starts.exists() and meta_path.read_bytes() == before

    assert main(["fit", "--config", str(cfg), "--model.init_args.lr", "0.5", "--overwrite", "true",
                 *_recorders(starts, batches, 0.0)]) == 0
    assert starts.read_text().split() == ["0"]  # trained afresh
    meta = json.loads(meta_path.read_text())
    assert meta["complete"] and meta["config"]["model"]["lr"] == 0.5


def test_max_epochs_conflict_is_one_line(tiny_model_dir, tmp_path, capsys):
    cfg = _config(tmp_path, tiny_model_dir, write_vim_data(tmp_path / "data", n=4))
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs", "7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trainer.max_epochs" in err[0] and "epochs_per_stage" in err[0]
    assert not (tmp_path / "adapters" / "Pow").exists()


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


def test_one_input_spelled_two_ways_is_not_a_change(tmp_path, monkeypatch):
    """The quickstart records 'samples/…' and rewrites its config with absolute paths: a rerun with the rewritten
    config must not be refused as other training data; another file still is."""
    from vim.provenance import config_differences

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.tsv").write_text("rows")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "d.tsv").write_text("rows")
    (tmp_path / "e.tsv").write_text("other rows")
    recorded = {"data": {"distributions_file": "d.tsv", "threshold": 3}}

    def diff(path: str) -> list[str]:
        return config_differences(recorded, {"data": {"distributions_file": path, "threshold": 3}})

    assert diff(str(tmp_path / "d.tsv")) == [] and diff(str(tmp_path / "copy" / "d.tsv")) == []
    assert diff("e.tsv") == ["data.distributions_file ('d.tsv' -> 'e.tsv')"]
    assert diff("missing.tsv") == ["data.distributions_file ('d.tsv' -> 'missing.tsv')"]
