"""LightningCLI entry for ``valueharms fit|validate|test|predict``.

Subclass mode for model and data: a YAML config picks ``class_path`` (VIM training, benign fine-tuning or
benchmark generation) so one CLI and one config format serve every Trainer-driven step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import yaml

from valueharms.errors import InputError


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


def find_resume_checkpoint(model: object, datamodule: object = None) -> Path | None:
    """``<adapter_dir>/checkpoints/last.ckpt`` of a VIM/benign module, when a previous fit left one."""
    adapter_dir = getattr(model, "adapter_dir", None)
    if not callable(adapter_dir):
        return None
    last = Path(adapter_dir(getattr(datamodule, "adapter_name", None))) / "checkpoints" / "last.ckpt"
    return last if last.is_file() else None


#: Built parsers, keyed by "with subcommands?". Building one introspects every Trainer/module/data signature
#: (seconds per call, most of a tiny fit's cost); parsing is stateless, so a sweep or a test session reuses them.
_PARSERS: dict[bool, tuple] = {}


def _cli_class():
    from lightning.pytorch.cli import LightningCLI

    class ValueHarmsCLI(LightningCLI):
        """LightningCLI whose ``fit`` resumes from ``last.ckpt`` automatically (a killed run is just rerun)."""

        def setup_parser(self, add_subcommands, main_kwargs, subparser_kwargs):  # noqa: ANN001 (LightningCLI)
            """Build the parser once per process (same classes and kwargs every time: see run_lightning_cli)."""
            cached = _PARSERS.get(add_subcommands)
            if cached is None:
                super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
                _PARSERS[add_subcommands] = (self.parser, getattr(self, "_subcommand_parsers", None),
                                             getattr(self, "_subcommand_method_arguments", None))
                return
            self.parser, subparsers, method_arguments = cached
            if add_subcommands:
                self._subcommand_parsers, self._subcommand_method_arguments = subparsers, method_arguments

        def instantiate_trainer(self, **kwargs):  # noqa: ANN003 (LightningCLI signature)
            """In a log (not a terminal) the bar becomes one progress line per N batches (valueharms.progress)."""
            from valueharms.progress import use_line_progress_bar

            trainer = super().instantiate_trainer(**kwargs)
            use_line_progress_bar(trainer)
            return trainer

        def fit(self, model, datamodule=None, ckpt_path=None, **kwargs):  # noqa: ANN001 (LightningCLI signature)
            if ckpt_path is None:
                found = find_resume_checkpoint(model, datamodule)
                if found is not None:
                    from lightning.pytorch.utilities import rank_zero_info

                    rank_zero_info(f"resuming from {found}")
                    ckpt_path = str(found)
            return self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, **kwargs)

        def predict(self, model, datamodule=None, **kwargs):  # noqa: ANN001 (LightningCLI signature)
            """Generation writes its records through a prediction writer; never hold them all in memory."""
            kwargs["return_predictions"] = False
            output = getattr(datamodule, "output", None)
            if output and self.config.get("predict", {}).get("trainer", {}).get("default_root_dir") is None:
                # the resolved config.yaml goes beside the generations, not into the current directory
                self.trainer._default_root_dir = str(Path(output).parent)
            return self.trainer.predict(model, datamodule=datamodule, **kwargs)

    return ValueHarmsCLI


def run_lightning_cli(argv: Sequence[str], *, run: bool = True):
    """Run LightningCLI with ``argv`` (``["fit", "--config", "configs/vim/quickstart.yaml", ...]``).

    With ``run=False`` the first element must not be a subcommand: the config is parsed and the objects are built
    (used to check shipped YAMLs and by the sweep).
    """
    _check_configs(argv)
    from lightning.pytorch import LightningDataModule, LightningModule

    return _cli_class()(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=list(argv),
        run=run,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "valueharms"},
    )
