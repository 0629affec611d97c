"""LightningCLI entry for ``valueharms fit|validate|test|predict``.

Subclass mode for model and data: a YAML config picks ``class_path`` (VIM training, benign fine-tuning or
benchmark generation) so one CLI and one config format serve every Trainer-driven step.
"""

from __future__ import annotations

from typing import Sequence

import yaml

from vim.errors import InputError


def _check_configs(argv: Sequence[str]) -> None:
    """Fail early with a one-line error on a missing or malformed YAML config (jsonargparse's are multi-line)."""
    args = list(argv)
    for i, arg in enumerate(args):
        path = None
        if arg in {"--config", "-c"} and i + 1 < len(args):
            path = args[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        if path is None:
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh)
        except FileNotFoundError:
            raise InputError(path, None, None, "config file not found") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            row = mark.line + 1 if mark is not None else None
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise InputError(path, row, None, f"invalid YAML: {problem}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise InputError(path, 1, None, "a config must be a YAML mapping")


def run_lightning_cli(argv: Sequence[str]):
    """Run LightningCLI with ``argv`` (``["fit", "--config", "configs/vim/quickstart.yaml", ...]``)."""
    _check_configs(argv)
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    return LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=list(argv),
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "valueharms"},
    )
