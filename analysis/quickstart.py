"""``valueharms quickstart`` / ``make quickstart``: the whole study end to end on the embedded model.

Steps (each resumable; a finished step is recorded in ``OUT/quickstart_state.json`` and skipped on rerun):
prepare (value-labelled arguments -> VIM examples) -> fit one adapter per distribution in ``names`` ->
generate on the four benchmark samples (vanilla, VIM, ICL; mitigations none/value/safety, as the predict
config says) -> score with the offline judge -> PVQ-40 (placeholder items) -> training-data audit ->
analysis + report. Every step calls the function behind its own subcommand, in-process, with explicit arguments
(no keyword filtering: a renamed parameter fails loudly here instead of being dropped). The run ends with a
benchmark line: seconds per step and in total.

The shipped configs (``configs/vim/quickstart.yaml``, ``configs/predict/quickstart.yaml``) are copied into
``OUT/configs/`` with ``runs/quickstart`` replaced by ``out``, the model alias replaced by ``model`` and,
with ``fast=True``, sizes shrunk (so tests can run it with a tiny model in a temp folder). A fast fit still trains
both VIM stages: it cuts the data to one batch per stage, never the total steps, which would stop training inside
stage 1.
"""

from __future__ import annotations

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
        "samples_per_prompt": 1, "num_samples": 1, "epochs_per_stage": 1, "max_length": 128,
        "max_categories": 2}
#: Data of a fast fit: one batch per stage to train on (validation gets a quarter: one example). The data is cut,
#: not the Trainer's steps or batches: a step cap would stop training inside stage 1, and a batch cap given as
#: ``limit_train_batches: 1`` can be read as the fraction 1.0 (all batches) by LightningCLI's parser.
FAST_FIT_DATA = {"batch_size": 2, "max_examples": 2}
#: Facts of a step's result kept in the state file (the benchmark line reports them on every rerun).
STEP_FACTS = {"pvq": ("mode", "unparseable", "answers")}
#: ICL conditions of a fast PVQ (the fast predict config likewise keeps one ICL profile).
FAST_PVQ_ICL = 1
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


def derived_config(src: str | Path, dst: Path, out: str, model: str, fast: bool, fast_fit: bool = False) -> Path:
    """Write ``src`` rewritten for this quickstart to ``dst``."""
    src = repo_path(src)
    if not src.is_file():
        raise InputError(src, None, None, "quickstart config not found (is the project checkout complete?)")
    config = _rewrite(yaml.safe_load(src.read_text(encoding="utf-8")) or {}, out, model, fast)
    if fast and fast_fit:
        config.setdefault("data", {}).setdefault("init_args", {}).update(FAST_FIT_DATA)
    atomic_write_text(dst, yaml.safe_dump(config, sort_keys=False))
    return dst


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
        start, cpu = time.time(), time.process_time()
        result = fn()
        self.state[name] = {"done": True, "seconds": round(time.time() - start, 1),
                            "cpu_seconds": round(time.process_time() - cpu, 1)}
        if isinstance(result, dict):  # facts a later summary reports (PVQ's unparseable count)
            self.state[name].update({k: result[k] for k in STEP_FACTS.get(name, ()) if k in result})
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
        fast: shrink every size (a smoke run: both VIM stages on a few batches, few prompts, PVQ with one ICL profile).
        distributions: value distribution file.
        fit_config: VIM fit YAML (copied into OUT/configs with paths and model rewritten).
        predict_config: generation YAML (copied the same way).
        judge: the judge that scores generations and the audit.
        pvq_items: PVQ-40 items file (default: the shipped placeholders).
    """
    started = time.time()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    names_path, dist_path = repo_path(names), repo_path(distributions)
    cfg_dir = out_dir / "configs"
    fit_cfg = derived_config(fit_config, cfg_dir / "fit.yaml", str(out_dir), model, fast, fast_fit=fast)
    pred_cfg = derived_config(predict_config, cfg_dir / "predict.yaml", str(out_dir), model, fast)
    from valueharms.values import read_names

    wanted = read_names(names_path)
    plan: list[tuple[str, Callable[[], Any]]] = [
        ("prepare", lambda: _prepare(dist_path, wanted, out_dir, fit_cfg)),
        ("fit", lambda: _fit(dist_path, fit_cfg, wanted, out_dir)),
        ("generate", lambda: _predict(pred_cfg)),
        ("score", lambda: _score(out_dir, judge)),
        ("pvq", lambda: _pvq(out_dir, pvq_items, fast)),
        ("audit", lambda: _audit(out_dir, judge)),
        ("report", lambda: _report(out_dir, judge, fast)),
    ]
    steps = Steps(out_dir)
    # No outer rich Live display: Lightning's progress bar and the judges' bars must own the terminal.
    for step, (name, fn) in enumerate(plan, start=1):
        steps.run(name, fn, step, len(plan))
    report_path = out_dir / "report" / "report.html"
    print(f"quickstart done: open {report_path.resolve()}  (markdown: {report_path.with_suffix('.md')})")
    print(benchmark_line(steps.state, [name for name, _ in plan], time.time() - started, fast))
    return str(report_path)


def benchmark_line(state: dict[str, Any], names: list[str], wall: float, fast: bool) -> str:
    """One line with each step's wall seconds (as recorded when it ran, CPU seconds of this process in brackets:
    on a shared machine wall time says more about the neighbours than about the code) and this run's wall time."""
    import os

    def seconds(key: str) -> list[float]:
        return [float(state.get(n, {}).get(key, float("nan"))) for n in names]

    parts = [f"{n} {w:.1f}s (cpu {c:.1f}s)" for n, w, c in zip(names, seconds("seconds"), seconds("cpu_seconds"))]
    pvq = state.get("pvq", {})
    extra = f"; PVQ unparseable {pvq['unparseable']} of {pvq['answers']}" if "unparseable" in pvq else ""
    return (f"quickstart benchmark ({'fast' if fast else 'full'}, {os.cpu_count()} CPUs): {', '.join(parts)}; "
            f"steps total {sum(seconds('seconds')):.1f}s (cpu {sum(seconds('cpu_seconds')):.1f}s); "
            f"this run {wall:.1f}s wall{extra}")


def _prepare(dist_path: Path, wanted: list[str], out_dir: Path, fit_cfg: Path) -> Any:
    """``valueharms prepare`` with the fit config's data settings (so the fit finds its data ready)."""
    from vim.prepare import prepare

    data = (yaml.safe_load(fit_cfg.read_text()) or {}).get("data", {}).get("init_args", {})
    return prepare(str(dist_path), out=str(out_dir / "data"), names=wanted, arguments=data["arguments"],
                   survey=data.get("survey") or data["arguments"],  # stage 2 as the fit step builds it
                   max_examples=data.get("max_examples"), threshold=data.get("threshold", 3.0),
                   seed=data.get("seed", 42))


def _fit(dist_path: Path, fit_cfg: Path, wanted: list[str], out_dir: Path) -> list[str]:
    """``valueharms sweep``; then every adapter must hold both VIM stages before later steps use it."""
    from vim.sweep import sweep

    folders = sweep(str(dist_path), str(fit_cfg), names=wanted, out=str(out_dir / "adapters"))
    check_stages(folders)
    return folders


def check_stages(folders: list[str]) -> None:
    """Refuse an adapter whose training stopped before its last stage (it must not pass for a VIM adapter)."""
    from valueharms.adapters import read_metadata

    for folder in folders:
        meta = read_metadata(folder).meta
        phases = len(meta.get("stages") or []) if meta.get("stage_mode") == "sequential" else 1
        trained = len(meta.get("best_epoch_per_stage") or {})
        if trained < phases:
            raise InputError(folder, None, "best_epoch_per_stage",
                             f"only {trained} of {phases} stages trained; delete the folder and refit")


def _predict(config: Path) -> Any:
    from valueharms.lightning_cli import run_lightning_cli

    return run_lightning_cli(["predict", "--config", str(config)])


def _score(out_dir: Path, judge: str) -> list[dict]:
    from judges.score import score

    return [score(str(run), judge=judge) for run in _generation_runs(out_dir)]


def _pvq(out_dir: Path, items: str | None, fast: bool) -> dict:
    from analysis.pvq import PLACEHOLDER_ITEMS, pvq

    return pvq(str(out_dir), items=items or str(PLACEHOLDER_ITEMS), mode="loglik",
               icl_limit=FAST_PVQ_ICL if fast else None)


def _audit(out_dir: Path, judge: str) -> dict:
    from analysis.audit import audit

    return audit(str(out_dir), judge=judge, out=str(out_dir / "report"))


def _report(out_dir: Path, judge: str, fast: bool) -> str:
    from analysis.report import report

    return report(str(out_dir), judge=judge, n_boot=100 if fast else 9999, n_permutations=99 if fast else 9999)


def _generation_runs(out_dir: Path) -> list[Path]:
    runs = sorted({p.parent for p in generation_files(out_dir)})
    if not runs:
        raise InputError(out_dir / "generations", None, None, "the generate step wrote no generations*.jsonl")
    return runs
