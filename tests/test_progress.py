"""Progress in logs (one line per N items with rate and ETA) and the CLI's filter of library noise."""

from __future__ import annotations

import io
import logging
import re
import warnings

from valueharms.progress import LineTqdm, is_terminal, line_every, progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_every_n_items_with_rate_and_eta_and_messages_on_their_own_line():
    buf = io.StringIO()
    with progress(total=40, desc="score [offline]", unit="text", file=buf) as bar:
        assert isinstance(bar, LineTqdm)
        for i in range(40):
            bar.update(1)
            if i == 4:
                bar.write("a message", file=buf)
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue()
    assert lines.count("a message") == 1
    ticks = [line for line in lines if line.startswith("score [offline]:")]
    assert len(ticks) == 21  # the start, then one per 2 items (40 / 20)
    assert ticks[-1].startswith("score [offline]: 40/40 (100%)") and "ETA" in ticks[-1] and "text/s" in ticks[-1]
    assert re.search(r"\d+/40 \(\d+%\) \[.* elapsed, ETA .*, .*text/s\]", ticks[5])


def test_open_ended_loops_print_every_n_and_the_last_count():
    buf = io.StringIO()
    for _ in progress(iter(range(25)), desc="pvq", file=buf, every=10):
        pass
    counts = [int(m) for m in re.findall(r"pvq: (\d+) ", buf.getvalue())]
    assert counts == [0, 10, 20, 25]


def test_a_terminal_gets_the_usual_bar():
    assert is_terminal(_Tty()) and not is_terminal(io.StringIO())
    bar = progress(total=3, file=_Tty())
    assert not isinstance(bar, LineTqdm)
    bar.close()
    assert line_every(1000) == 50 and line_every(None) == 100 and line_every(7, every=3) == 3


def test_lightning_bar_swapped_for_lines_when_not_a_terminal():
    from lightning.pytorch import Trainer
    from lightning.pytorch.demos.boring_classes import BoringModel

    from valueharms.progress import use_line_progress_bar

    buf = io.StringIO()
    trainer = Trainer(max_steps=8, limit_val_batches=1, logger=False, enable_checkpointing=False,
                      enable_model_summary=False, accelerator="cpu")
    assert use_line_progress_bar(trainer, stream=buf)
    assert type(trainer.progress_bar_callback).__name__ == "LineProgressBar"
    trainer.fit(BoringModel())
    lines = [line for line in buf.getvalue().splitlines() if line.startswith("Epoch 0:")]
    assert 2 <= len(lines) <= 9 and lines[-1].startswith("Epoch 0: 8/8 (100%)") and "batch/s" in lines[-1]
    assert not use_line_progress_bar(Trainer(logger=False), stream=_Tty())  # a terminal keeps its bar


def test_cli_filters_known_library_noise_only(monkeypatch):
    from valueharms import cli

    monkeypatch.setattr(cli.sys, "warnoptions", [])
    monkeypatch.delenv("VALUEHARMS_VERBOSE", raising=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cli.quiet_library_noise()
        warnings.warn("LightningCLI's args parameter is intended to run from within Python like ...", UserWarning)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
        warnings.warn("You are using a custom batch sampler `FixedBatches` for prediction. ...", UserWarning)
        warnings.warn("something the user must see", UserWarning)
        warnings.warn("`is_gradient_checkpointing` is deprecated", DeprecationWarning)  # other category: kept
    assert [str(w.message) for w in seen] == ["something the user must see", "`is_gradient_checkpointing` is deprecated"]
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels]")
        log.info("GPU available: False, used: False")
    finally:
        log.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["GPU available: False, used: False"]


def test_verbose_keeps_everything(monkeypatch):
    from valueharms import cli

    monkeypatch.setenv("VALUEHARMS_VERBOSE", "1")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cli.quiet_library_noise()
        warnings.warn("LightningCLI's args parameter is intended to run from within Python", UserWarning)
    assert len(seen) == 1
