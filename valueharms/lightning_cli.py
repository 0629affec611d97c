"""LightningCLI entry for ``valueharms fit|validate|test|predict``.

Subclass mode for model and data: a YAML config picks ``class_path`` (VIM training, benign fine-tuning or
benchmark generation) so one CLI and one config format serve every Trainer-driven step.

``fit`` adds what a long run needs: it resumes from the adapter's ``checkpoints/last.ckpt`` when rerun, refuses a
rerun whose training config differs from the recorded one (``--overwrite true`` discards the old adapter), skips a
finished adapter, logs curves to ``<adapter>/logs`` (CSV) unless ``trainer.logger`` is set, and rejects a
``trainer.max_epochs`` that the stages would silently override. Ctrl-C in any Trainer command surfaces as
KeyboardInterrupt (Lightning turns it into ``sys.exit(1)``), so ``valueharms`` exits 130 with the resume hint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

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


def _first_process() -> bool:
    """False in the extra processes a multi-device launch starts (they rerun this command with LOCAL_RANK > 0)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0) == 0 and int(os.environ.get("NODE_RANK", "0") or 0) == 0


def check_max_epochs(config_max_epochs: int | None, datamodule: object) -> None:
    """The stages fix the epoch count (stages x epochs_per_stage): a different --trainer.max_epochs is an error."""
    total = getattr(datamodule, "total_epochs", None)
    if config_max_epochs is None or total is None or int(config_max_epochs) == int(total):
        return
    raise InputError(None, None, "trainer.max_epochs", f"{config_max_epochs} conflicts with the stages' {total} epochs "
                     "(stages x epochs_per_stage); set data.init_args.epochs_per_stage (or epochs) instead, or "
                     "trainer.limit_train_batches / max_steps for a shorter run")


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

        def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (LightningCLI signature)
            parser.add_argument("--overwrite", type=bool, default=False,
                                help="discard what an earlier run of this command left (fit: the adapter and its "
                                     "checkpoints) and start afresh instead of resuming / refusing")

        def overwrite_requested(self) -> bool:
            return bool(self.config.get(self.subcommand, {}).get("overwrite", False))

        def fit(self, model, datamodule=None, ckpt_path=None, **kwargs):  # noqa: ANN001 (LightningCLI signature)
            check_max_epochs(self.config["fit"]["trainer"].get("max_epochs"), datamodule)
            if ckpt_path is None and callable(getattr(model, "resume_state", None)):
                folder, state = _resume_state(self, model, datamodule)
                if state.complete:
                    return None
                ckpt_path = str(state.checkpoint) if state.checkpoint is not None else None
                self._default_logger(folder)
            return _interruptible(self.trainer, self.trainer.fit, model, datamodule=datamodule, ckpt_path=ckpt_path,
                                  **kwargs)

        def _default_logger(self, folder: Path) -> None:
            """CSV curves in ``<adapter>/logs/version_N/metrics.csv`` unless the config chose a logger."""
            if self.config["fit"]["trainer"].get("logger") not in (None, True):
                return
            from lightning.pytorch.loggers import CSVLogger

            every = getattr(getattr(self, "model", None), "hparams", {}).get("checkpoint_every_n_steps") or 50
            # flushed as often as checkpoints are written: a kill loses the same steps from both
            self.trainer.loggers = [CSVLogger(save_dir=str(folder / "logs"), name="", flush_logs_every_n_steps=every)]

        def predict(self, model, datamodule=None, **kwargs):  # noqa: ANN001 (LightningCLI signature)
            """Generation writes its records through a prediction writer; never hold them all in memory."""
            kwargs["return_predictions"] = False
            if self.overwrite_requested() and hasattr(datamodule, "overwrite"):
                datamodule.overwrite = True  # '--overwrite true' means the same for predict as for fit
            output = getattr(datamodule, "output", None)
            if output and self.config.get("predict", {}).get("trainer", {}).get("default_root_dir") is None:
                # the resolved config.yaml goes beside the generations, not into the current directory
                self.trainer._default_root_dir = str(Path(output).parent)
            return _interruptible(self.trainer, self.trainer.predict, model, datamodule=datamodule, **kwargs)

        def validate(self, model, datamodule=None, **kwargs):  # noqa: ANN001 (LightningCLI signature)
            return _interruptible(self.trainer, self.trainer.validate, model, datamodule=datamodule, **kwargs)

    return ValueHarmsCLI


def _resume_state(cli: Any, model: Any, datamodule: Any) -> tuple[Path, Any]:
    """Ask the module where its fit stands (its ``resume_state`` hook) and say it."""
    from lightning.pytorch.utilities import rank_zero_info

    folder, state = model.resume_state(datamodule, cli.trainer, overwrite=cli.overwrite_requested(),
                                       may_delete=_first_process())
    if state.complete:
        rank_zero_info(f"adapter {folder} is already complete with this config: nothing to train "
                       "(--overwrite true retrains it)")
    elif state.checkpoint is not None:
        rank_zero_info(f"resuming from {state.checkpoint}")
    return folder, state


def _interruptible(trainer: object, method: Callable, *args: object, **kwargs: object) -> object:
    """Run a Trainer entry point; Lightning's Ctrl-C handling ends in ``sys.exit(1)``: re-raise it as Ctrl-C."""
    try:
        return method(*args, **kwargs)
    except SystemExit:
        if getattr(trainer, "interrupted", False):
            raise KeyboardInterrupt from None
        raise


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
