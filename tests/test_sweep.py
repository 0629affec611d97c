"""Sweep: the README command lines work, complete adapters are skipped, one worker per GPU, SLURM array groups."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_datamodule import write_vim_data
from test_fit_cli import _config
from valueharms.adapters import write_metadata
from valueharms.errors import InputError
from valueharms.cli import main
from vim.sweep import partition, sweep

VALUEHARMS = Path(sys.executable).parent / "valueharms"

VALUES = "Achievement\tBenevolence\tConformity\tHedonism\tPower\tSecurity\tSelf-direction\tStimulation\tTradition\tUniversalism"


@pytest.fixture()
def setup(tmp_path, tiny_model_dir):
    dist = tmp_path / "dist.tsv"
    dist.write_text(f"Country\t{VALUES}\nPow\t" + "\t".join(["1"] * 4 + ["6"] + ["1"] * 5)
                    + "\nAch\t6" + "\t1" * 9 + "\n")
    for name in ("Pow", "Ach"):
        write_vim_data(tmp_path / "data" / name, n=4)
    cfg = _config(tmp_path, tiny_model_dir, tmp_path / "data" / "{distribution}")
    cfg.write_text(cfg.read_text().replace("epochs_per_stage: 2", "epochs_per_stage: 1"))
    out = tmp_path / "out"
    done = out / "Pow"
    done.mkdir(parents=True)
    (done / "adapter_config.json").write_text("{}")
    write_metadata(done, kind="vim", name="Pow", base_model="tiny", complete=True)
    return dist, cfg, out


def test_sweep_skips_complete_and_trains_rest(setup, capsys):
    """The README form through the console entry point (valueharms.cli.main): --distributions --config --names."""
    dist, cfg, out = setup
    assert main(["sweep", "--distributions", str(dist), "--config", str(cfg), "--names", "[Pow, Ach]",
                 "--out", str(out), "--dry_run", "true"]) == 0
    printed = capsys.readouterr().out
    assert "1 to train, 1 complete" in printed and "--data.init_args.distribution Ach" in printed
    assert "--data.init_args.distribution Pow" not in printed
    assert main(["sweep", "--distributions", str(dist), "--config", str(cfg), "--names", "[Pow, Ach]",
                 "--out", str(out)]) == 0
    meta = json.loads((out / "Ach" / "valueharms.json").read_text())
    assert meta["complete"] and meta["name"] == "Ach" and meta["values"]["Achievement"] == 6.0
    assert json.loads((out / "Pow" / "valueharms.json").read_text())["base_model"] == "tiny"  # untouched
    from vim.module import VIMModule

    assert VIMModule._BASE_CACHE == {}  # released after the sweep


def test_sweep_readme_slurm_form_via_console_script(setup, tmp_path):
    """`valueharms sweep --distributions … --config … --names_file … --slurm …` as a real subprocess: the log folder
    exists before submission, and each array task runs its group of adapters (checked with a fake srun)."""
    dist, cfg, out = setup
    names = tmp_path / "names.txt"
    names.write_text("# study list\nPow\nAch\n")
    script = tmp_path / "paper" / "sweep.sbatch"
    done = subprocess.run([str(VALUEHARMS), "sweep", "--distributions", str(dist), "--config", str(cfg),
                           "--names_file", str(names), "--slurm", str(script), "--out", str(out), "--group_size", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = script.read_text()
    assert (tmp_path / "paper" / "logs").is_dir()  # SLURM opens the log file before the job runs
    assert f"#SBATCH --output={tmp_path / 'paper' / 'logs'}/" in text and "#SBATCH --array=0-1" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert not (out / "Ach").exists()  # nothing trained


def _run_task(script: Path, task: int, tmp_path: Path) -> list[str]:
    """Run one array task of a generated script with a fake ``srun`` that only prints the distribution it got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "srun"
    fake.write_text('#!/bin/bash\nwhile [ $# -gt 0 ]; do [ "$1" = --data.init_args.distribution ] && echo "$2"; '
                    "shift; done\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_ID": str(task),
           "VALUEHARMS": "valueharms"}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return [ln for ln in done.stdout.splitlines() if not ln.startswith("adapter ")]


def test_slurm_groups_split_the_names(setup, tmp_path):
    dist, cfg, out = setup
    names = ["Pow", "Ach", "Pow2", "Ach2", "Pow3"]
    dist.write_text(dist.read_text() + "".join(f"{n}\t" + "\t".join(["3"] * 10) + "\n" for n in names[2:]))
    script = tmp_path / "sweep.sbatch"
    sweep(str(dist), str(cfg), names=names, out=str(out), slurm=str(script), group_size=2)
    assert "#SBATCH --array=0-2" in script.read_text()
    tasks = [_run_task(script, t, tmp_path) for t in range(3)]
    assert tasks == [["Ach"], ["Pow2", "Ach2"], ["Pow3"]]  # Pow is complete: task 0 skips it


def test_partition_is_disjoint_and_balanced():
    names = [f"d{i}" for i in range(11)]
    shares = partition(names, 4)
    assert sorted(n for share in shares for n in share) == sorted(names)
    assert {len(s) for s in shares} == {2, 3}
    assert partition(["a"], 4) == [["a"]]


def test_one_worker_per_gpu(setup, monkeypatch, capsys):
    """--gpus auto starts one worker per visible GPU with CUDA_VISIBLE_DEVICES set, each on a disjoint share."""
    import vim.sweep as sw

    dist, cfg, out = setup
    names = ["Ach", "Ben", "Uni"]
    dist.write_text(dist.read_text() + "".join(f"{n}\t" + "\t".join(["3"] * 10) + "\n" for n in names[1:]))
    launched = []

    class FakeProc:
        def __init__(self, argv, env, stdout, stderr):
            launched.append((env["CUDA_VISIBLE_DEVICES"], json.loads(argv[argv.index("--names") + 1]), argv))
            self.returncode = 0

        def poll(self):
            return self.returncode

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setattr(sw.subprocess, "Popen", FakeProc)
    monkeypatch.setattr(sw, "run_workers", functools.partial(sw.run_workers, popen=FakeProc, poll_s=0.0))
    sweep(str(dist), str(cfg), names=["Pow", *names], out=str(out), overrides=["--trainer.accelerator=gpu"])
    assert [(gpu, share) for gpu, share, _ in launched] == [("3", ["Ach", "Uni"]), ("5", ["Ben"])]
    argv = launched[0][2]
    assert argv[argv.index("--gpus") + 1] == "1" and argv[argv.index("--config") + 1] == str(cfg)
    assert json.loads(argv[argv.index("--overrides") + 1]) == ["--trainer.accelerator=gpu"]
    capsys.readouterr()
    sweep(str(dist), str(cfg), names=names, out=str(out), dry_run=True)  # a CPU config is not split over GPUs
    assert "CUDA_VISIBLE_DEVICES" not in capsys.readouterr().out and len(launched) == 2
    assert (out / "logs").is_dir()
    with pytest.raises(InputError, match="gpus"):
        sweep(str(dist), str(cfg), names=names, out=str(out), gpus="4")


def test_sweep_unknown_or_empty_names(setup):
    dist, cfg, out = setup
    with pytest.raises(InputError):
        sweep(str(dist), str(cfg), names=["Nope"], out=str(out))
    with pytest.raises(InputError, match="empty"):
        sweep(str(dist), str(cfg), names=[], out=str(out))


def test_slurm_tasks_train_k_adapters_per_step(setup, tmp_path):
    """--adapters_per_step 2 --group_size 3: tasks of 4 names (whole groups of 2), each one in-task sweep; run for real
    through the console script (fake srun adds --dry_run): the complete adapter is skipped, the rest trained 2 at a time."""
    dist, cfg, out = setup
    names = ["Pow", "Ach", "Pow2", "Ach2", "Pow3"]
    dist.write_text(dist.read_text() + "".join(f"{n}\t" + "\t".join(["3"] * 10) + "\n" for n in names[2:]))
    script = tmp_path / "sweep.sbatch"
    sweep(str(dist), str(cfg), names=names, out=str(out), slurm=str(script), group_size=3, adapters_per_step=2,
          overrides=["--trainer.max_steps=1"])
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text and subprocess.run(["bash", "-n", str(script)]).returncode == 0
    bin_dir = tmp_path / "kbin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\nexec "$@" --dry_run true\n')
    (bin_dir / "srun").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "VALUEHARMS": str(VALUEHARMS)}
    fits = []
    for task in (0, 1):
        done = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        fits.append([ln for ln in done.stdout.splitlines() if ln.startswith("valueharms fit")])
    groups = [[json.loads(f.split("--data.init_args.distributions ")[1].split(" --")[0].strip("'"))
               for f in task] for task in fits]
    assert groups == [[["Ach", "Pow2"], ["Ach2"]], [["Pow3"]]]  # Pow is complete: task 0 regroups what is left
    assert all("vim.multi_adapter.MultiLoRAModule" in f and "--trainer.max_steps=1" in f for t in fits for f in t)


def test_gpu_workers_get_whole_groups_of_k(setup, monkeypatch):
    import vim.sweep as sw

    dist, cfg, out = setup
    names = ["Ach", "Ben", "Uni", "Sec", "Tra"]
    dist.write_text(dist.read_text() + "".join(f"{n}\t" + "\t".join(["3"] * 10) + "\n" for n in names[1:]))
    launched = []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setattr(sw, "run_workers", lambda shares, argv_for, out: launched.extend(
        (gpu, share, argv_for(share)) for gpu, share in shares))
    sweep(str(dist), str(cfg), names=names, out=str(out), adapters_per_step=2, overrides=["--trainer.accelerator=gpu"])
    assert [(gpu, share) for gpu, share, _ in launched] == [("0", ["Ach", "Ben", "Tra"]), ("1", ["Uni", "Sec"])]
    assert all(argv[argv.index("--adapters_per_step") + 1] == "2" for _, _, argv in launched)
    with pytest.raises(InputError, match="adapters_per_step"):
        sweep(str(dist), str(cfg), names=names, out=str(out), adapters_per_step=0)
