"""Paid judgements survive kill -9 and Ctrl-C, one scorer per run, and an unreachable endpoint stops the run.

A real ``valueharms score`` subprocess (the console script) talks to a fake OpenAI server in this process that
counts requests per text and can hold requests (so the killed client has a known set in flight).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes.servers import openai_server
from valueharms.cli import main
from valueharms.io import read_jsonl

KEY = "sk-SECRET-test-key-0123456789"
N = 10
MARKERS = [f"txt{i}" for i in range(N)]
CONSOLE = str(Path(sys.executable).parent / "valueharms")


@pytest.fixture()
def run_dir(tmp_path, monkeypatch):
    """A generation run of N HEx-PHI answers, each with its own marker the fake server keys on."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    run = tmp_path / "run"
    run.mkdir()
    recs = [{"key": f"hexphi|vanilla|none|p{i}|0", "benchmark": "hexphi", "prompt_id": f"p{i}",
             "prompt": f"question {i}", "output": f"answer txt{i}", "condition": "vanilla"} for i in range(N)]
    (run / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run


def _args(run: Path, url: str) -> list[str]:
    return ["score", str(run), "--judge", "openai", "--judge.base_url", url + "/v1", "--judge.template", "ours",
            "--judge.concurrency", "2", "--judge.rps", "1000"]


def _start(run: Path, url: str) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    return subprocess.Popen([CONSOLE, *_args(run, url)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"scorer exited early ({proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _records(run: Path) -> list[dict]:
    path = run / "scores" / "openai.jsonl"
    return list(read_jsonl(path)) if path.is_file() else []


@pytest.mark.parametrize("stop", ["kill", "interrupt"])
def test_stopped_scorer_loses_no_paid_judgement(run_dir, stop):
    with openai_server() as srv:
        srv.hold_after = 4  # four answers, then two requests (the concurrency) held in flight
        proc = _start(run_dir, srv.url)
        try:
            # each answer is on disk as it arrives: four records while the chunk of ten is still running
            _wait_for(lambda: len(_records(run_dir)) == 4 and sum(srv.requests.values()) == 6, proc, "4 records")
            answered = {m for m in MARKERS if srv.successes[m]}
            proc.send_signal(signal.SIGKILL if stop == "kill" else signal.SIGINT)
            if stop == "interrupt":
                srv.hold_after = None
                srv.release.set()  # the held requests are answered now (after 503s the client retries)
            rc = proc.wait(timeout=120)
        finally:
            proc.kill()
        err = proc.stderr.read()
        srv.hold_after = None
        srv.release.set()
        if stop == "interrupt":
            assert rc == 130 and "interrupted; rerun the same command to resume" in err
            assert len(_records(run_dir)) == 6  # the two in flight at Ctrl-C were kept too
        else:
            assert rc == -signal.SIGKILL
        before = dict(srv.requests)
        assert main(_args(run_dir, srv.url)) == 0
    assert all(srv.successes[m] == 1 for m in MARKERS), dict(srv.successes)  # no text paid twice
    assert all(srv.requests[m] == before[m] for m in answered)  # answered texts are never asked again
    recs = [r for r in _records(run_dir) if r["value"] is not None]
    assert sorted(r["key"] for r in recs) == sorted(f"hexphi|vanilla|none|p{i}|0" for i in range(N))
    assert KEY not in err


def test_second_scorer_on_the_same_run_exits_with_one_line(run_dir, capsys):
    with openai_server() as srv:
        srv.hold_after = 0  # the first scorer waits on its first requests, holding the run's lock
        proc = _start(run_dir, srv.url)
        try:
            _wait_for(lambda: sum(srv.requests.values()) >= 1, proc, "the first request")
            assert main(_args(run_dir, srv.url)) == 2
            err = capsys.readouterr().err.strip()
            assert "another score is writing here" in err and "\n" not in err
            srv.hold_after = None
            srv.release.set()
            assert proc.wait(timeout=120) == 0, proc.stderr.read()
        finally:
            proc.kill()
    recs = _records(run_dir)
    assert len(recs) == N and len({r["key"] for r in recs}) == N  # no duplicate records
    assert all(srv.successes[m] == 1 for m in MARKERS)


def test_unreachable_endpoint_exits_within_a_minute(run_dir, capsys):
    from test_judges_api import closed_port

    port = closed_port()
    start = time.monotonic()
    assert main(["score", str(run_dir), "--judge", "openai", "--judge.template", "ours",
                 "--judge.base_url", f"http://127.0.0.1:{port}/v1"]) == 2
    assert time.monotonic() - start < 60
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # above it: only the progress bar
    assert last.startswith(f"valueharms: error: cannot reach the openai endpoint http://127.0.0.1:{port}/v1")
    assert "in a row" in last and KEY not in err
