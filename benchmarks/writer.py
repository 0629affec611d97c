"""Append generation records per batch (fsynced) to the file the run's lock protects; release the lock at the end.

Why a callback: Lightning calls it after every predict batch, on the end of predict and on any exception
(including a refused or crashed run), so records are on disk as soon as they exist and the writer lock never
outlives the run in a long-lived process (tests, notebooks).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter

from valueharms.io import JsonlAppender


class JsonlPredictionWriter(BasePredictionWriter):
    """Writes each predict batch's records as soon as it is generated, so a killed run loses at most one batch.

    ``datamodule`` is a :class:`benchmarks.generation.BenchmarkDataModule`: its ``run`` names the file (the output,
    or its shard/rank file) and holds the writer lock.
    """

    def __init__(self, datamodule: Any) -> None:
        super().__init__(write_interval="batch")
        self.datamodule = datamodule
        self._appender: JsonlAppender | None = None

    def _open(self) -> JsonlAppender:
        if self._appender is None:
            self._appender = JsonlAppender(self.datamodule.run.path)
        return self._appender

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        if prediction:
            self._open().write_many(prediction)

    def on_predict_end(self, trainer, pl_module) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None
        self.datamodule.release()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_predict_end(trainer, pl_module)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.on_predict_end(trainer, pl_module)
