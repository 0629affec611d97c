"""``valueharms quickstart`` / ``make quickstart``: the whole study end to end on the embedded model.

Steps (each resumable; a finished step is recorded in ``OUT/quickstart_state.json`` and skipped on rerun):
prepare (value-labelled arguments -> VIM examples) -> fit one adapter per distribution in ``names`` ->
generate on the four benchmark samples (vanilla, VIM, ICL; mitigations none/value/safety, as the predict
config says) -> score with the offline judge -> PVQ-40 (placeholder items) -> training-data audit ->
analysis + report. Every step calls the same function as its own subcommand, in-process.

The shipped configs (``configs/vim/quickstart.yaml``, ``configs/predict/quickstart.yaml``) are copied into
``OUT/configs/`` with ``runs/quickstart`` replaced by ``out``, the model alias replaced by ``model`` and,
with ``fast=True``, sizes shrunk (so tests can run it with a tiny model in a temp folder).
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from analysis.data import generation_files
from valueharms.errors import InputError
from valueharms.io import atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = "runs/quickstart"
DEFAULT_MODEL = "smollm2-135m"
#: Keys shrunk by ``fast=True`` wherever they appear in a config with a larger value or null (value = the small
#: setting).
FAST = {"max_examples": 8, "max_prompts": 2, "limit": 1, "prompts_per_benchmark": 2, "max_new_tokens": 4,
        "samples_per_prompt": 1, "num_samples": 1, "epochs_per_stage": 1, "limit_train_batches": 2, "max_length": 128,
        "max_categories": 2}
#: Lists cut to their first N entries by ``fast=True``.
FAST_LISTS = {"icl_names": 1}


def repo_path(path: str | Path) -> Path:
    """A path as given if it exists from here, else relative to the repository (``make`` runs from the root)."""
    path = Path(path)
    return path if path.is_absolute() or path.exists() else REPO / path


def _shrunk(key: str, value: Any) -> tuple[bool, Any]:
    """The fast-mode value for ``key`` (True, value) when it shrinks ``value``, else (False, None)."""
    if key in FAST_LISTS and isinstance(value, list):
        return True, value[:FAST_LISTS[key]]
    if key in FAST and (value is None or isinstance(value, int) and not isinstance(value, bool) and value > FAST[key]):
        return True, FAST[key]
    return False, None


def _rewrite(node: Any, out: str, model: str, fast: bool) -> Any:
    """Copy a config tree, pointing runs/quickstart at ``out``, the model alias at ``model``, shrinking if fast."""
    if isinstance(node, dict):
        copy = {}
        for key, value in node.items():
            shrink, small = _shrunk(key, value) if fast else (False, None)
            copy[key] = small if shrink else _rewrite(value, out, model, fast)
        return copy
    if isinstance(node, list):
        return [_rewrite(v, out, model, fast) for v in node]
    if isinstance(node, str):
        if node == DEFAULT_MODEL:
            return model
        if node.startswith(DEFAULT_OUT):
            return out + node[len(DEFAULT_OUT):]
        if node.startswith(("samples/", "configs/", "analysis/")) and (REPO / node).exists():
            return str(REPO / node)
    return node


def derived_config(src: str | Path, dst: Path, out: str, model: str, fast: bool, fast_trainer: bool = False) -> Path:
    """Write ``src`` rewritten for this quickstart to ``dst``."""
    src = repo_path(src)
    if not src.is_file():
        raise InputError(src, None, None, "quickstart config not found (is the project checkout complete?)")
    config = _rewrite(yaml.safe_load(src.read_text(encoding="utf-8")) or {}, out, model, fast)
    if fast and fast_trainer:
        # batches per epoch, not max_steps: every stage still trains (max_steps would end the fit in stage 1)
        config.setdefault("trainer", {})["limit_train_batches"] = FAST["limit_train_batches"]
    atomic_write_text(dst, yaml.safe_dump(config, sort_keys=False))
    return dst


def call(command: str, **kwargs: Any) -> Any:
    """Call a subcommand's function in-process with the keyword arguments it accepts."""
    from valueharms.cli import COMMANDS, _resolve

    fn = _resolve(COMMANDS[command][0])
    params = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in kwargs.items() if k in params and v is not None})


class Steps:
    """Run named steps once: finished ones are recorded in a state file and skipped when the study is rerun."""

    def __init__(self, out: Path) -> None:
        self.path = out / "quickstart_state.json"
        self.state: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def run(self, name: str, fn: Callable[[], Any], step: int, total: int) -> Any:
        """Run ``fn`` unless recorded as done; print a numbered header (inner steps show their own progress bars)."""
        from rich.console import Console

        console = Console()
        if self.state.get(name, {}).get("done"):
            console.print(f"[dim]✓ [{step}/{total}] {name}: done earlier, skipped[/dim]")
            return None
        console.rule(f"quickstart [{step}/{total}]: {name}")
        start = time.time()
        result = fn()
        self.state[name] = {"done": True, "seconds": round(time.time() - start, 1)}
        atomic_write_json(self.path, self.state)
        console.print(f"✓ [{step}/{total}] {name} ({self.state[name]['seconds']} s)")
        return result


def quickstart(out: str = DEFAULT_OUT, model: str = DEFAULT_MODEL, names: str = "samples/values/quickstart_names.txt",
               fast: bool = False, distributions: str = "samples/values/distributions.tsv",
               fit_config: str = "configs/vim/quickstart.yaml",
               predict_config: str = "configs/predict/quickstart.yaml", judge: str = "offline",
               pvq_items: str | None = None) -> str:
    """Run the whole study end to end (prepare, fit, generate, score, PVQ, audit, analysis, report); resumable.

    Args:
        out: study folder (rerunning skips finished steps).
        model: base model alias, folder or hub id (tests pass a tiny model folder).
        names: distributions to train, one a line.
        fast: shrink every size (a smoke run in a few minutes).
        distributions: value distribution file.
        fit_config: VIM fit YAML (copied into OUT/configs with paths and model rewritten).
        predict_config: generation YAML (copied the same way).
        judge: the judge that scores generations and the audit.
        pvq_items: PVQ-40 items file (default: the shipped placeholders).
    """
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    names_path, dist_path = repo_path(names), repo_path(distributions)
    cfg_dir = out_dir / "configs"
    fit_cfg = derived_config(fit_config, cfg_dir / "fit.yaml", str(out_dir), model, fast, fast_trainer=fast)
    pred_cfg = derived_config(predict_config, cfg_dir / "predict.yaml", str(out_dir), model, fast)
    steps = Steps(out_dir)
    from valueharms.values import read_names

    wanted = read_names(names_path)
    from analysis.pvq import PLACEHOLDER_ITEMS

    plan: list[tuple[str, Callable[[], Any]]] = [
        ("prepare", lambda: _prepare(dist_path, names_path, wanted, out_dir, fit_cfg)),
        ("fit", lambda: call("sweep", distributions=str(dist_path), config=str(fit_cfg), names=wanted,
                             out=str(out_dir / "adapters"))),
        ("generate", lambda: _predict(pred_cfg)),
        ("score", lambda: [call("score", run=str(g), judge=judge) for g in _generation_runs(out_dir)]),
        ("pvq", lambda: call("pvq", adapters=str(out_dir / "adapters"), items=pvq_items or str(PLACEHOLDER_ITEMS),
                             model=model, out=str(out_dir / "report"), max_new_tokens=4 if fast else 20,
                             batch_size=64 if fast else None)),
        ("audit", lambda: call("audit", run=str(out_dir), judge=judge, out=str(out_dir / "report"))),
        ("report", lambda: call("report", run=str(out_dir), judge=judge, n_boot=100 if fast else 9999,
                                n_permutations=99 if fast else 9999)),
    ]
    # No outer rich Live display: Lightning's progress bar and the judges' bars must own the terminal.
    for step, (name, fn) in enumerate(plan, start=1):
        steps.run(name, fn, step, len(plan))
    report_path = out_dir / "report" / "report.html"
    print(f"quickstart done: open {report_path.resolve()}  (markdown: {report_path.with_suffix('.md')})")
    return str(report_path)


def _prepare(dist_path: Path, names_path: Path, wanted: list[str], out_dir: Path, fit_cfg: Path) -> Any:
    """``valueharms prepare`` when it is installed; otherwise the fit step's data module writes the data."""
    import importlib.util

    if importlib.util.find_spec("vim.prepare") is None:
        print("prepare: vim.prepare not available; the fit step writes OUT/data/<distribution>/ itself")
        return None
    data_args = (yaml.safe_load(fit_cfg.read_text()) or {}).get("data", {}).get("init_args", {})
    return call("prepare", distributions=str(dist_path), names=wanted, out=str(out_dir / "data"),
                arguments=data_args.get("arguments"), max_examples=data_args.get("max_examples"),
                survey=data_args.get("survey") or data_args.get("arguments"),  # stage 2 as the fit step builds it
                threshold=data_args.get("threshold"), seed=data_args.get("seed"))


def _predict(config: Path) -> Any:
    from valueharms.cli import run_command

    return run_command(["predict", "--config", str(config)])


def _generation_runs(out_dir: Path) -> list[Path]:
    runs = sorted({p.parent for p in generation_files(out_dir)})
    if not runs:
        raise InputError(out_dir / "generations", None, None, "the generate step wrote no generations*.jsonl")
    return runs
