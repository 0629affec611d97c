"""What an adapter was trained with, and whether a rerun may continue it.

Why: a fit is resumed by simply rerunning it. That is only honest when the rerun asks for the same training: a rerun
with another learning rate must not continue (or, for a finished adapter, silently keep) weights trained with the
old one while ``valueharms.json`` claims the new settings. The recorded config lives in ``valueharms.json`` (finished
adapters) and in every checkpoint (``valueharms_config``, for interrupted ones); a rerun whose config differs is
refused with the differing fields named, unless ``--overwrite true`` discards the old adapter first.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valueharms.errors import InputError
from valueharms.io import same_input_path

#: recorded but not compared: output places, speed/memory knobs, metrics, and the global seed (LightningCLI draws a
#: new one per run when a config sets none; a resume takes the weights from the checkpoint and the batch order from
#: ``data.seed``, so refusing on it would only block honest resumes)
IGNORED = {
    "model": {"adapter_dir", "reuse_base", "checkpoint_every_n_steps", "gradient_checkpointing",
              "agreement_eval_examples"},
    "data": {"num_workers", "data_dir"},
    "trainer": {"seed"},
}
#: not even recorded: where the adapter is written and how fast it is trained
NOT_RECORDED = {"model": {"adapter_dir", "reuse_base"}, "data": {"num_workers"}, "trainer": set()}
#: what ``--overwrite`` removes from an adapter folder (never anything else the user put there)
ADAPTER_ENTRIES = ("checkpoints", "logs", "valueharms.json", "adapter_config.json", "adapter_model.safetensors",
                   "adapter_model.bin", "README.md")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def training_config(module: Any, datamodule: Any, trainer: Any) -> dict[str, Any]:
    """The settings that decide the weights: model and data hyperparameters, trainer numerics and the seed."""
    def section(obj: Any, name: str) -> dict[str, Any]:
        params = dict(getattr(obj, "hparams", {}) or {})
        return {k: v for k, v in params.items() if not k.startswith("_") and k not in NOT_RECORDED[name]}

    train = {
        "precision": str(getattr(trainer, "precision", None)),
        "accumulate_grad_batches": getattr(trainer, "accumulate_grad_batches", None),
        "max_steps": getattr(trainer, "max_steps", None),
        "limit_train_batches": getattr(trainer, "limit_train_batches", None),
        "gradient_clip_val": getattr(trainer, "gradient_clip_val", None),
        "seed": os.environ.get("PL_GLOBAL_SEED"),
    }
    return _plain({"model": section(module, "model"), "data": section(datamodule, "data"), "trainer": train})


def config_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``section.field (old -> new)`` for every weight-relevant field set in both configs that differs (a path
    differs only when it names other input: :func:`same_input_path`)."""
    out = []
    current = _plain(current)
    for section in ("model", "data", "trainer"):
        old, new = recorded.get(section) or {}, current.get(section) or {}
        for key in sorted(set(old) & set(new)):
            if key in IGNORED.get(section, set()):
                continue
            if old[key] != new[key] and not same_input_path(old[key], new[key]):
                out.append(f"{section}.{key} ({old[key]!r} -> {new[key]!r})")
    return out


@dataclass
class ResumeState:
    """Where a fit of one adapter folder stands before it starts."""

    adapter_dir: Path
    checkpoint: Path | None  # last.ckpt to resume from (None: start afresh)
    complete: bool  # a finished adapter with the same config: nothing to train


def _recorded(adapter_dir: Path, last: Path) -> tuple[dict[str, Any] | None, bool]:
    """(recorded training config or None, finished?): a finished adapter's metadata, else the last checkpoint's."""
    meta_path = adapter_dir / "valueharms.json"
    meta = None
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InputError(meta_path, err.lineno, None, f"invalid JSON ({err.msg})") from None
        if meta.get("complete"):
            return meta.get("config") or None, True
    if last.is_file():
        import torch

        ckpt = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
        return ckpt.get("valueharms_config"), False
    return (meta.get("config") or None) if meta else None, False


def resume_state(adapter_dir: Path, current: dict[str, Any], *, overwrite: bool, may_delete: bool) -> ResumeState:
    """Decide resume / skip / refuse for ``adapter_dir``; ``--overwrite`` deletes the old adapter's entries.

    ``may_delete`` is False on the extra processes of a multi-device fit (only the first process cleans up).
    """
    last = adapter_dir / "checkpoints" / "last.ckpt"
    recorded, complete = _recorded(adapter_dir, last)
    if overwrite:
        if may_delete:
            for entry in ADAPTER_ENTRIES:
                path = adapter_dir / entry
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        return ResumeState(adapter_dir, None, False)
    if recorded is not None:
        diffs = config_differences(recorded, current)
        if diffs:
            where = adapter_dir / ("valueharms.json" if complete else "checkpoints/last.ckpt")
            raise InputError(where, None, "config", "this adapter was trained with other settings: "
                             + ", ".join(diffs) + "; rerun with --overwrite true to discard it and train afresh "
                             "(or choose another adapter_dir)")
    return ResumeState(adapter_dir, last if last.is_file() and not complete else None, complete)
