"""Append generation records per batch (fsynced), one file per rank when distributed; resumable by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter

from valueharms.io import JsonlAppender, read_jsonl


def rank_path(path: str | Path, rank: int, world_size: int) -> Path:
    path = Path(path)
    return path if world_size <= 1 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def done_keys(path: str | Path) -> set[str]:
    """Keys already written to ``path`` and its per-rank siblings (torn lines are ignored)."""
    path = Path(path)
    keys: set[str] = set()
    for p in [path, *sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"))]:
        if p.is_file():
            keys.update(r["key"] for r in read_jsonl(p) if isinstance(r, dict) and "key" in r)
    return keys


class JsonlPredictionWriter(BasePredictionWriter):
    """Writes each predict batch's records as soon as it is generated, so a killed run loses at most one batch."""

    def __init__(self, output: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self._appender: JsonlAppender | None = None

    def _open(self, trainer: Any) -> JsonlAppender:
        if self._appender is None:
            self._appender = JsonlAppender(rank_path(self.output, trainer.global_rank, trainer.world_size))
        return self._appender

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        if prediction:
            self._open(trainer).write_many(prediction)

    def on_predict_end(self, trainer, pl_module) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_predict_end(trainer, pl_module)
