"""Train one VIM adapter per value distribution: in this process, one worker per GPU, or as a SLURM array.

Each adapter is an ordinary ``valueharms fit`` of the same YAML with the distribution and output folder overridden,
so a SLURM task, a local sweep and a single fit produce identical folders. Adapters whose ``valueharms.json`` says
``complete: true`` are skipped; a half-trained one resumes from its ``last.ckpt``.

A 7B LoRA fit fits on one GPU, so several GPUs are used by running one adapter per GPU (``--gpus``): N worker
processes, each seeing one GPU through ``CUDA_VISIBLE_DEVICES`` and training a disjoint share of the distributions.
A model too big for one GPU uses FSDP inside one fit instead (a config whose ``trainer.devices`` is not 1); CPU
configs are not split either.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from valueharms.adapters import is_complete
from valueharms.errors import InputError
from valueharms.io import atomic_write_text
from valueharms.values import load_distributions, read_names


def _fit_args(config: str, distributions: str, name: str, out: str, extra: list[str]) -> list[str]:
    return [
        "--config", config,
        "--data.init_args.distributions_file", distributions,
        "--data.init_args.distribution", name,
        "--model.init_args.adapter_dir", str(Path(out) / name),
        *extra,
    ]


def _valueharms_command() -> str:
    """How a job on this cluster calls this installation (the console script beside this Python, else ``-m``)."""
    script = Path(sys.executable).parent / "valueharms"
    return shlex.quote(str(script)) if script.is_file() else f"{shlex.quote(sys.executable)} -m valueharms.cli"


def _task_commands(config: str, distributions: str, names: list[str], out: str, extra: list[str], group_size: int,
                   adapters_per_step: int) -> list[str]:
    """The body of one array task: fit its names one after another, or (K > 1) one in-task sweep of K at a time."""
    if adapters_per_step > 1:
        tasks = [json.dumps(names[i:i + group_size]) for i in range(0, len(names), group_size)]
        fixed = " ".join(shlex.quote(a) for a in [
            "--distributions", distributions, "--config", config, "--out", out, "--gpus", "1",
            "--adapters_per_step", str(adapters_per_step), "--overrides", json.dumps(extra)])
        return [f"TASKS=({' '.join(shlex.quote(t) for t in tasks)})",
                f'srun $VALUEHARMS sweep {fixed} --names "${{TASKS[$SLURM_ARRAY_TASK_ID]}}"']
    fixed = " ".join(shlex.quote(a) for a in [
        "--config", config, "--data.init_args.distributions_file", distributions, *extra])
    return [
        f"NAMES=({' '.join(shlex.quote(n) for n in names)})",
        f"GROUP_SIZE={group_size}",
        'for NAME in "${NAMES[@]:$((SLURM_ARRAY_TASK_ID * GROUP_SIZE)):$GROUP_SIZE}"; do',
        f'  if grep -qs \'"complete": true\' {shlex.quote(out)}/"$NAME"/valueharms.json; then',
        '    echo "adapter $NAME already complete"; continue',
        "  fi",
        f'  srun $VALUEHARMS fit {fixed} --data.init_args.distribution "$NAME" '
        f'--model.init_args.adapter_dir {shlex.quote(out)}/"$NAME"',
        "done",
    ]


def slurm_script(config: str, distributions: str, names: list[str], out: str, extra: list[str], *,
                 log_dir: str, group_size: int = 1, job_name: str = "vim-sweep", gpus: int = 1,
                 time_limit: str = "24:00:00", sbatch: list[str] | None = None, adapters_per_step: int = 1) -> str:
    """A SLURM array script: task ``i`` fits ``names[i*group_size:(i+1)*group_size]`` one after another, or with
    ``adapters_per_step`` K > 1 trains them K at a time on one base (``group_size`` is then a multiple of K).

    Rerunning a task resumes its adapter from ``last.ckpt`` and skips finished ones. ``--chdir`` pins the folder the
    relative paths are relative to; ``log_dir`` must exist before ``sbatch`` (SLURM opens the log files first).
    """
    groups = -(-len(names) // group_size)
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array=0-{groups - 1}",
        f"#SBATCH --gres=gpu:{gpus}",
        f"#SBATCH --time={time_limit}",
        f"#SBATCH --chdir={os.getcwd()}",
        f"#SBATCH --output={Path(log_dir).resolve()}/%x-%A_%a.out",
        *[f"#SBATCH {s}" for s in (sbatch or [])],
        "set -euo pipefail",
        f"VALUEHARMS=${{VALUEHARMS:-{_valueharms_command()}}}",
        *_task_commands(config, distributions, names, out, extra, group_size, adapters_per_step),
        "",
    ]
    return "\n".join(lines)


def visible_gpus(gpus: str | int) -> list[str]:
    """GPU ids the workers get: ``auto`` = every visible GPU (CUDA_VISIBLE_DEVICES order), ``N`` = the first N."""
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if not visible:
        import torch

        visible = [str(i) for i in range(torch.cuda.device_count())]
    if str(gpus) == "auto":
        return visible
    try:
        n = int(gpus)
    except ValueError:
        raise InputError(None, None, "gpus", f"expected 'auto' or a number, got {gpus!r}") from None
    if n < 0 or (n > 1 and n > len(visible)):
        raise InputError(None, None, "gpus", f"{n} GPUs asked for, {len(visible)} visible")
    return visible[:n]


def partition(names: Sequence[str], workers: int) -> list[list[str]]:
    """Round-robin shares (sizes differ by at most one; together exactly ``names``, each name once)."""
    return [list(names[i::workers]) for i in range(workers) if names[i::workers]]


def partition_groups(names: Sequence[str], workers: int, k: int = 1) -> list[list[str]]:
    """Shares of whole groups of ``k`` consecutive names (round-robin over the groups), so a worker that regroups
    its share by ``k`` trains exactly these groups; ``k = 1`` is :func:`partition`."""
    groups = [list(names[i:i + k]) for i in range(0, len(names), k)]
    return [[n for group in share for n in group] for share in partition(groups, workers)]


def _one_gpu_per_fit(config: str, overrides: Sequence[str]) -> bool:
    """True when each fit uses one GPU (so one worker per GPU is right); CPU or FSDP/multi-device fits are not split."""
    trainer = (yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}).get("trainer") or {}
    settings = {"devices": trainer.get("devices", 1), "accelerator": trainer.get("accelerator", "auto")}
    for arg in overrides:
        for key in settings:
            if arg.startswith(f"--trainer.{key}="):
                settings[key] = arg.split("=", 1)[1]
    return str(settings["devices"]) == "1" and str(settings["accelerator"]) in ("gpu", "cuda", "auto")


def _worker_argv(distributions: str, config: str, names: list[str], out: str, overrides: list[str],
                 adapters_per_step: int = 1) -> list[str]:
    return [sys.executable, "-m", "valueharms.cli", "sweep", "--distributions", distributions, "--config", config,
            "--names", json.dumps(names), "--out", out, "--gpus", "1", "--overrides", json.dumps(overrides),
            "--adapters_per_step", str(adapters_per_step)]


def _print_fits(names: list[str], config: str, distributions: str, out: str, extra: list[str], k: int,
                env: str = "") -> None:
    """Dry run: the ``valueharms fit`` command lines that would train ``names`` (K at a time when ``k`` > 1)."""
    from vim.multi_adapter import group_fit_args

    for i in range(0, len(names), k):
        args = (group_fit_args(config, distributions, names[i:i + k], out, extra) if k > 1
                else _fit_args(config, distributions, names[i], out, extra))
        print(env + "valueharms fit " + " ".join(shlex.quote(a) for a in args))


def run_workers(shares: list[tuple[str, list[str]]], argv_for: Callable[[list[str]], list[str]], out: str,
                popen: Callable[..., Any] = subprocess.Popen, poll_s: float = 5.0) -> None:
    """One worker process per (gpu, names) share with ``CUDA_VISIBLE_DEVICES=gpu``; logs in ``out/logs``.

    Shows one progress bar over finished adapters; Ctrl-C stops every worker (their fits resume on the next run).
    """
    from valueharms.progress import progress

    log_dir = Path(out) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for gpu, names in shares:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
        log = open(log_dir / f"sweep-gpu{gpu}.log", "ab")  # noqa: SIM115 (closed below)
        procs.append((gpu, popen(argv_for(names), env=env, stdout=log, stderr=subprocess.STDOUT), log))
        print(f"sweep: worker on GPU {gpu}: {len(names)} adapters, log {log.name}")
    wanted = [n for _, names in shares for n in names]
    bar = progress(total=len(wanted), desc="sweep", unit="adapter")
    try:
        while any(p.poll() is None for _, p, _ in procs):
            bar.n = sum(is_complete(Path(out) / n) for n in wanted)
            bar.refresh()
            time.sleep(poll_s)
    except KeyboardInterrupt:
        for _, p, _ in procs:
            p.send_signal(2)
        for _, p, _ in procs:
            p.wait()
        raise
    finally:
        bar.n = sum(is_complete(Path(out) / n) for n in wanted)
        bar.close()
        for _, _, log in procs:
            log.close()
    failed = [gpu for gpu, p, _ in procs if p.returncode != 0]
    if failed:
        raise InputError(log_dir, None, None, f"sweep worker(s) on GPU {', '.join(failed)} failed; see their logs "
                         "(rerun the sweep to resume)")


def _train_here(todo: list[str], config: str, distributions: str, out: str, extra: list[str], reuse_base: bool) -> None:
    from valueharms.progress import progress

    from valueharms.lightning_cli import run_lightning_cli
    from vim.module import VIMModule

    reuse = ["--model.init_args.reuse_base", "true"] if reuse_base else []
    try:
        for name in progress(todo, desc="sweep", unit="adapter"):
            run_lightning_cli(["fit", *_fit_args(config, distributions, name, out, [*reuse, *extra])])
    finally:
        VIMModule._BASE_CACHE.clear()


def sweep(
    distributions: str,
    config: str,
    names: list[str] | None = None,
    names_file: str | None = None,
    out: str = "runs/sweep/adapters",
    gpus: str = "auto",
    slurm: str | None = None,
    group_size: int = 1,
    dry_run: bool = False,
    overrides: list[str] | None = None,
    reuse_base: bool = True,
    adapters_per_step: int = 1,
) -> list[str]:
    """Train one adapter per distribution (skipping complete ones), or write a SLURM array script.

    Args:
        distributions: TSV/CSV of value distributions.
        config: fit YAML (e.g. configs/vim/quickstart.yaml); distribution and adapter_dir are overridden.
        names: distributions to train (default: all in the file, or names_file).
        names_file: file with one distribution name a line.
        out: folder that receives one adapter folder per distribution.
        gpus: ``auto`` (one worker process per visible GPU, each training a share of the adapters), a number of
            GPUs, or 0/1 to train everything in this process.
        slurm: write a SLURM array script to this path instead of training (submit it with ``sbatch``).
        group_size: adapters trained one after another by each SLURM array task.
        dry_run: print what would be trained and stop.
        overrides: extra LightningCLI flags passed to every fit (e.g. ``--trainer.limit_train_batches=10``).
        reuse_base: keep the base model in memory between fits of one process.
        adapters_per_step: train this many adapters at once on one base model, each with its own data, optimizer
            and best epoch (``vim.multi_adapter``); with several GPUs each worker trains whole groups, and a SLURM
            task runs ``group_size`` (rounded up to a multiple of K) adapters K at a time.
    """
    if not Path(config).is_file():
        raise InputError(config, None, None, "config file not found")
    if group_size < 1:
        raise InputError(None, None, "group_size", f"must be at least 1, got {group_size}")
    if adapters_per_step < 1:
        raise InputError(None, None, "adapters_per_step", f"must be at least 1, got {adapters_per_step}")
    k = adapters_per_step
    profiles = load_distributions(distributions)
    if names is not None and not names:
        raise InputError(None, None, "names", "empty list: name at least one distribution (or omit --names)")
    wanted = list(names or []) or (read_names(names_file) if names_file else list(profiles))
    unknown = [n for n in wanted if n not in profiles]
    if unknown:
        raise InputError(distributions, None, "name", f"no distribution named {unknown[0]!r}")
    extra = list(overrides or [])
    if slurm:
        group_size = k * -(-group_size // k)  # whole groups of K per array task
        log_dir = Path(slurm).resolve().parent / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(slurm, slurm_script(config, distributions, wanted, out, extra, log_dir=str(log_dir),
                                              group_size=group_size, adapters_per_step=k))
        groups = -(-len(wanted) // group_size)
        print(f"wrote SLURM array script ({groups} array task(s) for {len(wanted)} distributions, logs in {log_dir}): "
              f"sbatch {slurm}")
        return [str(Path(out) / n) for n in wanted]
    todo = [n for n in wanted if not is_complete(Path(out) / n)]
    print(f"sweep: {len(todo)} to train, {len(wanted) - len(todo)} complete (skipped)")
    devices = visible_gpus(gpus) if todo else []
    split = len(devices) > 1 and len(todo) > k and _one_gpu_per_fit(config, extra)
    shares = partition_groups(todo, len(devices) if split else 1, k)
    if dry_run:
        for i, share in enumerate(shares):
            _print_fits(share, config, distributions, out, extra, k, f"CUDA_VISIBLE_DEVICES={devices[i]} " if split else "")
        return [str(Path(out) / n) for n in todo]
    if split:
        run_workers(list(zip(devices, shares)), lambda share: _worker_argv(distributions, config, share, out, extra, k),
                    out)
    elif todo and k > 1:
        from vim.multi_adapter import run_groups

        run_groups(config, distributions, todo, out, extra, k)
    elif todo:
        _train_here(todo, config, distributions, out, extra, reuse_base)
    return [str(Path(out) / n) for n in wanted]

