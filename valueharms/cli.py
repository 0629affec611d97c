"""The ``valueharms`` console script: one entry point, subcommands resolved lazily.

``fit`` / ``validate`` / ``predict`` go to LightningCLI (YAML configs under ``configs/``); the other
subcommands are plain functions whose signatures jsonargparse turns into flags (the litgpt shape); a function
may carry ``cli_argv`` (argv -> argv) to rewrite its arguments first (judges turn ``--judge NAME`` into the
judge's class path so its own options parse as ``--judge.OPTION``).
Bad input ends with one line on stderr naming file/row/field and exit code 2.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Callable, Sequence

#: subcommand -> "module:function". Each function takes typed keyword arguments (jsonargparse reads them).
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("valueharms.datafetch:data", "fetch the study's public inputs into data/ (verified, resumable)"),
    "plan": ("analysis.plan:plan", "dry run of a study folder: inputs, data counts, generations, GPU-hours"),
    "prepare": ("vim.prepare:prepare", "turn value distributions + arguments into VIM training examples"),
    "sweep": ("vim.sweep:sweep", "train one adapter per distribution (local loop or SLURM array script)"),
    "score": ("judges.score:score", "score a generation run with a judge (cached, resumable)"),
    "metrics": ("judges.metrics_cli:metrics", "compute benchmark metrics from scored runs"),
    "analyze": ("analysis.analyze:analyze", "regressions, comparisons and mitigation effects"),
    "audit": ("analysis.audit:audit", "toxicity audit of VIM training data"),
    "pvq": ("analysis.pvq:pvq", "PVQ-40 value-alignment check (NMSE)"),
    "report": ("analysis.report:report", "HTML + markdown study report"),
    "quickstart": ("analysis.quickstart:quickstart", "the whole study end to end on the embedded model"),
    "demo": ("demo.app:demo", "Gradio app: chat with value adapters"),
    "models": ("valueharms.model_loading:models_command", "list model aliases / convert and cache the embedded model"),
    "push": ("valueharms.hub:push", "upload a finished adapter (peft files + model card) to the Hugging Face hub"),
}
LIGHTNING_COMMANDS = ("fit", "validate", "predict")  # no module has a test step: no "test" command


#: Library warnings that tell a valueharms user nothing: messages about the project's deliberate choices (its
#: own batch sampler, batches without tensors, args passed to LightningCLI from the console script) and
#: deprecations inside libraries. Matched by message (re.match at the start) so other warnings still show.
NOISE_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"LightningCLI's args parameter is intended to run from within Python", Warning),
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", Warning),
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning),
    (r"You are using a custom batch sampler `\w+` for prediction", Warning),
    (r"You have overridden `transfer_batch_to_device` in `LightningModule` but have passed in a", Warning),
    (r"The '\w+_dataloader' does not have many workers", Warning),
    (r"`max_epochs` was not set\. Setting it to 1000 epochs", Warning),  # each stage sets its own epochs
    (r"Starting from v1\.9\.0, `tensorboardX` has been removed", Warning),  # CSV curves are on by design
    (r"Total length of `DataLoader` across ranks is zero", Warning),  # a finished run: predict says so itself
)
#: Library warnings silenced by category and module (deprecation notices addressed to library developers).
NOISE_MODULES: tuple[tuple[str, type[Warning]], ...] = (
    (r"pandas(\.|$)", DeprecationWarning), (r"gradio(\.|$)", DeprecationWarning), (r"gradio(\.|$)", FutureWarning),
    (r"jsonargparse(\.|$)", DeprecationWarning),
)
#: Log lines (Lightning's rank-zero info) that are advertisements or notes on the project's deliberate design.
NOISE_LOG_PREFIXES = ("💡 Tip", "The following callbacks returned in `LightningModule.configure_callbacks` will override")
NOISE_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning_utilities.core.rank_zero")


class _DropNoise:
    """A logging filter that drops the records listed in :data:`NOISE_LOG_PREFIXES`."""

    def filter(self, record: object) -> bool:
        message = str(getattr(record, "msg", ""))
        return not message.startswith(NOISE_LOG_PREFIXES)


def quiet_library_noise() -> None:
    """Filter the known library noise (not all warnings). Skipped when the user set -W / PYTHONWARNINGS or
    VALUEHARMS_VERBOSE=1, so anything can still be seen."""
    import logging
    import os
    import warnings

    if sys.warnoptions or os.environ.get("VALUEHARMS_VERBOSE") == "1":
        return
    from valueharms.progress import is_terminal

    if not is_terminal(sys.stderr):  # in a log, hub/transformers bars are carriage-return noise (read at their import)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for message, category in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for module, category in NOISE_MODULES:
        warnings.filterwarnings("ignore", category=category, module=module)
    for name in NOISE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())


def _resolve(target: str) -> Callable:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _usage() -> str:
    lines = ["usage: valueharms <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} LightningCLI {name} (use --config configs/...yaml)" for name in LIGHTNING_COMMANDS]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'valueharms <command> --help' for the options of one command."]
    return "\n".join(lines)


def run_command(argv: Sequence[str]) -> object:
    """Dispatch without catching errors (tests call this)."""
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return None
    name, rest = argv[0], list(argv[1:])
    if name in LIGHTNING_COMMANDS:
        from valueharms.lightning_cli import run_lightning_cli

        return run_lightning_cli([name, *rest])
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, [*COMMANDS, *LIGHTNING_COMMANDS], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SystemExit(f"valueharms: unknown command {name!r}{hint}; run 'valueharms --help'")
    from jsonargparse import CLI

    function = _resolve(COMMANDS[name][0])
    rewrite = getattr(function, "cli_argv", None)  # e.g. '--judge openai' -> the judge's class path
    if rewrite is not None:
        rest = rewrite(rest)
    if "config" in inspect.signature(function).parameters:
        return _run_flags_only(function, rest, f"valueharms {name}")
    return CLI(function, args=rest, as_positional=True, prog=f"valueharms {name}")


def _run_flags_only(function: Callable, argv: list[str], prog: str) -> object:
    """A function with its own ``config`` parameter (sweep: the fit YAML): jsonargparse's CLI reserves ``--config``
    for its own config files and drops the value, so parse the function's flags with a plain parser instead."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog=prog)
    parser.add_function_arguments(function, as_positional=False)
    cfg = parser.instantiate_classes(parser.parse_args(argv))
    return function(**cfg.as_dict())


def main(argv: Sequence[str] | None = None) -> int:
    from valueharms.errors import InputError

    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_library_noise()
    try:
        run_command(argv)
    except InputError as err:
        print(f"valueharms: error: {err.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("valueharms: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
