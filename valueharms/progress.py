"""Progress that shows in a terminal AND in a log file.

Why: a bar redraws one line with carriage returns, so a log of a long job (``nohup``, SLURM, CI) shows nothing until
the job ends, and a message printed meanwhile lands on top of the bar. When the output is not a terminal this module
prints one plain line every N items instead (count, %, elapsed, ETA, rate): :func:`progress` for loops (a tqdm
drop-in) and :class:`LineProgressBar` for Lightning's fit/validate/predict. In a terminal the usual bars stay.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any, Iterable

from tqdm import tqdm

#: Lines per run when the total is known (one every 5 %); without a total, one every this many items.
LINES_PER_RUN = 20
EVERY_WITHOUT_TOTAL = 100
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) [{elapsed} elapsed, ETA {remaining}, {rate_fmt}]{postfix}"
LINE_FORMAT_OPEN = "{desc}: {n_fmt} [{elapsed} elapsed, {rate_fmt}]{postfix}"


def is_terminal(stream: IO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def line_every(total: float | None, every: int | None = None) -> int:
    """Items between two lines: ``every`` if given, else 1/20 of the total, else :data:`EVERY_WITHOUT_TOTAL`."""
    if every:
        return max(1, int(every))
    if total and math.isfinite(total):
        return max(1, math.ceil(total / LINES_PER_RUN))
    return EVERY_WITHOUT_TOTAL


def format_line(desc: str, n: int, total: float | None, elapsed: float, unit: str = "it", postfix: str = "") -> str:
    """One progress line in tqdm's units (rate, ETA), without a bar."""
    known = bool(total) and math.isfinite(total or 0)
    return tqdm.format_meter(n, total if known else None, elapsed, prefix=desc, unit=unit,
                             bar_format=LINE_FORMAT if known else LINE_FORMAT_OPEN,
                             postfix=postfix or None)


class LineTqdm(tqdm):
    """tqdm for logs: a full line every ``every`` items and at the end, never a carriage-return redraw."""

    def __init__(self, *args: Any, every: int | None = None, **kwargs: Any) -> None:
        self._every_arg, self._printed, self._closing = every, -1, False
        kwargs.update(mininterval=0, miniters=1, dynamic_ncols=False, position=0)
        kwargs.setdefault("bar_format", LINE_FORMAT)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "" or self.disable or self.n == self._printed:
            return False
        done = self._closing or bool(self.total) and self.n >= self.total
        if self._printed >= 0 and not done and self.n - self._printed < line_every(self.total, self._every_arg):
            return False
        fmt = dict(self.format_dict)
        if not fmt.get("total"):
            fmt["bar_format"] = LINE_FORMAT_OPEN
        self.fp.write(self.format_meter(**fmt) + "\n")
        self.fp.flush()
        self._printed = self.n
        return True

    def clear(self, nolock: bool = False) -> None:  # nothing to erase: lines are final
        return None

    def moveto(self, n: int) -> None:
        return None

    def close(self) -> None:
        if not self.disable:
            self._closing = True
            self.display()
            self.leave = False  # tqdm would redraw and add a newline; the last line is already out
        super().close()


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             every: int | None = None, file: IO | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar in a terminal, :class:`LineTqdm` lines otherwise (same API: ``update``, ``close``, ``with``)."""
    stream = sys.stderr if file is None else file
    if is_terminal(stream):
        from tqdm.auto import tqdm as auto

        return auto(iterable, total=total, desc=desc, unit=unit, file=file, **kwargs)
    return LineTqdm(iterable, total=total, desc=desc, unit=unit, file=stream, every=every, **kwargs)


def _line_bar_class():
    from lightning.pytorch.callbacks import ProgressBar

    class LineProgressBar(ProgressBar):
        """Lightning progress for logs: one line per N batches (and per finished epoch) with rate, ETA and the
        progress-bar metrics (loss ...), for training and prediction; one line after each validation."""

        def __init__(self, every: int | None = None, stream: IO | None = None) -> None:
            super().__init__()
            self.every, self.stream, self._enabled = every, stream, True
            self._desc, self._total, self._start, self._printed, self._n = "", None, 0.0, -1, 0

        def disable(self) -> None:
            self._enabled = False

        def enable(self) -> None:
            self._enabled = True

        def print(self, *args: Any, **kwargs: Any) -> None:
            print(*args, file=self.stream or sys.stderr, flush=True, **kwargs)

        def _begin(self, desc: str, total: float | None) -> None:
            self._desc, self._total, self._start, self._printed, self._n = desc, total, time.monotonic(), -1, 0

        def _tick(self, n: int, metrics: dict | None = None, force: bool = False) -> None:
            self._n = n
            if not self._enabled or n == self._printed:
                return
            done = bool(self._total) and math.isfinite(self._total) and n >= self._total
            if not (force or done or self._printed < 0 or n - self._printed >= line_every(self._total, self.every)):
                return
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (metrics or {}).items()
                              if k != "v_num")
            self.print(format_line(self._desc, n, self._total, time.monotonic() - self._start, "batch",
                                   f" {shown}" if shown else ""))
            self._printed = n

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._begin(f"Epoch {trainer.current_epoch}", self.total_train_batches)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self._tick(batch_idx + 1, self.get_metrics(trainer, pl_module))

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self._tick(self._n, self.get_metrics(trainer, pl_module), force=True)

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if self._enabled and not trainer.sanity_checking:
                metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if "val" in k}
                shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
                self.print(f"{self.validation_description}: epoch {trainer.current_epoch} done {shown}".rstrip())

        def on_predict_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._begin(self.predict_description, sum(trainer.num_predict_batches))

        def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                 dataloader_idx: int = 0) -> None:
            self._tick(self._n + 1)

        def on_predict_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self._tick(self._n, force=True)

    return LineProgressBar


def line_progress_bar(every: int | None = None, stream: IO | None = None) -> Any:
    """A :class:`LineProgressBar` instance (the class is built lazily: Lightning is imported only when used)."""
    return _line_bar_class()(every=every, stream=stream)


def use_line_progress_bar(trainer: Any, stream: IO | None = None, every: int | None = None) -> bool:
    """Swap Lightning's default bar (tqdm or rich) for line progress when the output is not a terminal.

    A bar the user chose by its own class (a subclass, a custom bar) is kept. Returns whether it swapped.
    """
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    if is_terminal(sys.stderr if stream is None else stream):
        return False
    for i, callback in enumerate(trainer.callbacks):
        if type(callback) in (TQDMProgressBar, RichProgressBar):
            trainer.callbacks[i] = line_progress_bar(every=every, stream=stream)
            return True
    return False
