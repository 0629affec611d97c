"""Train one VIM adapter per value distribution: in this process (reusing the base model) or as a SLURM array.

Each adapter is an ordinary ``valueharms fit`` of the same YAML with the distribution and output folder overridden,
so a SLURM task, a local sweep and a single fit produce identical folders. Adapters whose ``valueharms.json`` says
``complete: true`` are skipped; a half-trained one resumes from its ``last.ckpt``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

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


def slurm_script(config: str, distributions: str, names: list[str], out: str, extra: list[str], *,
                 job_name: str = "vim-sweep", gpus: int = 1, time: str = "24:00:00",
                 sbatch: list[str] | None = None) -> str:
    """A SLURM array script: task ``i`` fits ``names[i]`` (rerunning it resumes / skips complete adapters)."""
    quoted = " ".join(shlex.quote(n) for n in names)
    fixed = " ".join(shlex.quote(a) for a in [
        "--config", config, "--data.init_args.distributions_file", distributions, *extra])
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array=0-{len(names) - 1}",
        f"#SBATCH --gres=gpu:{gpus}",
        f"#SBATCH --time={time}",
        "#SBATCH --output=logs/%x-%A_%a.out",
        *[f"#SBATCH {s}" for s in (sbatch or [])],
        "set -euo pipefail",
        "mkdir -p logs",
        f"NAMES=({quoted})",
        'NAME="${NAMES[$SLURM_ARRAY_TASK_ID]}"',
        f'if grep -qs \'"complete": true\' {shlex.quote(out)}/"$NAME"/valueharms.json; then',
        '  echo "adapter $NAME already complete"; exit 0',
        "fi",
        f'srun valueharms fit {fixed} --data.init_args.distribution "$NAME" '
        f'--model.init_args.adapter_dir {shlex.quote(out)}/"$NAME"',
        "",
    ]
    return "\n".join(lines)


def sweep(
    distributions: str,
    config: str,
    names: list[str] | None = None,
    names_file: str | None = None,
    out: str = "runs/sweep/adapters",
    slurm: str | None = None,
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
        slurm: write a SLURM array script to this path instead of training.
        dry_run: print what would be trained and stop.
        overrides: extra LightningCLI flags passed to every fit (e.g. ``--trainer.max_steps=10``).
        reuse_base: keep the base model in memory between fits (local sweep only).
        adapters_per_step: train this many adapters at once on one base model, each with its own data, optimizer
            and best epoch (``vim.multi_adapter``; local sweep, one device).
    """
    if not Path(config).is_file():
        raise InputError(config, None, None, "config file not found")
    profiles = load_distributions(distributions)
    wanted = list(names or []) or (read_names(names_file) if names_file else list(profiles))
    unknown = [n for n in wanted if n not in profiles]
    if unknown:
        raise InputError(distributions, None, "name", f"no distribution named {unknown[0]!r}")
    extra = list(overrides or [])
    if slurm:
        atomic_write_text(slurm, slurm_script(config, distributions, wanted, out, extra))
        print(f"wrote SLURM array script for {len(wanted)} distributions: sbatch {slurm}")
        return [str(Path(out) / n) for n in wanted]
    todo = [n for n in wanted if not is_complete(Path(out) / n)]
    skipped = len(wanted) - len(todo)
    print(f"sweep: {len(todo)} to train, {skipped} complete (skipped)")
    if adapters_per_step > 1:
        from vim.multi_adapter import run_groups

        run_groups(config, distributions, todo, out, extra, adapters_per_step, dry_run=dry_run)
        return [str(Path(out) / n) for n in (todo if dry_run else wanted)]
    if dry_run:
        for name in todo:
            print("valueharms fit " + " ".join(shlex.quote(a) for a in _fit_args(config, distributions, name, out, extra)))
        return [str(Path(out) / n) for n in todo]
    from tqdm.auto import tqdm

    from valueharms.lightning_cli import run_lightning_cli

    reuse = ["--model.init_args.reuse_base", "true"] if reuse_base else []
    for name in tqdm(todo, desc="sweep", unit="adapter"):
        run_lightning_cli(["fit", *_fit_args(config, distributions, name, out, [*reuse, *extra])])
    from vim.module import VIMModule

    VIMModule._BASE_CACHE.clear()
    return [str(Path(out) / n) for n in wanted]
