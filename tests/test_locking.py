"""One writer per run: a second holder is refused with one line; a killed holder releases the lock."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from valueharms.errors import InputError
from valueharms.locking import RunLock

HOLD = """
import sys, time
from valueharms.locking import RunLock
with RunLock(sys.argv[1], what="score"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_second_writer_refused_and_kill_releases(tmp_path):
    target = tmp_path / "scores.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match="another score is writing here") as err:
            with RunLock(target, what="score"):
                pass
        assert "\n" not in str(err.value) and f"pid {proc.pid}" in str(err.value)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.time() + 10
    while True:  # the OS releases a killed holder's lock
        try:
            with RunLock(target, what="score"):
                break
        except InputError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_lock_is_reentrant_after_release(tmp_path):
    target = tmp_path / "generations.jsonl"
    with RunLock(target, what="predict"):
        pass
    with RunLock(target, what="predict"):
        assert "pid" in (tmp_path / "generations.jsonl.lock.owner").read_text()
    assert not (tmp_path / "generations.jsonl.lock.owner").exists()
