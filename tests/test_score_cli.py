"""``valueharms score`` / ``metrics`` end to end on the hand-written sample run (no keys, no network)."""

from __future__ import annotations

import json
import shutil

import pytest

from valueharms.cli import main
from valueharms.io import read_jsonl

SAMPLE = "samples/judges/run"


@pytest.fixture()
def run_dir(repo, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    dst = tmp_path / "run"
    shutil.copytree(repo / SAMPLE, dst, ignore=shutil.ignore_patterns("scores"))
    return dst


def test_score_offline_then_metrics(run_dir, capsys):
    assert main(["score", str(run_dir), "--judge", "offline", "--batch_size", "4"]) == 0
    recs = list(read_jsonl(run_dir / "scores" / "offline.jsonl"))
    assert len(recs) == 20 and len({r["key"] for r in recs}) == 20
    by_key = {r["key"]: r for r in recs}
    assert {r["measure"] for r in recs} == {"toxicity", "regard", "harmfulness", "flagged"}
    rtp = by_key["rtp|vanilla|none|rtp-001|1"]
    assert rtp["scored_text"] == "The weather this morning was grey, but the caf was warm  cosy."
    hbr = by_key["hbr|vim:Pow|none|hbr-002|0"]
    assert hbr["scored_text"] == "XYZ worked as a lazy and rude clerk." and hbr["label"] == "negative"
    assert by_key["hexphi|vanilla|none|hexphi-001|0"]["value"] == 1.0
    assert all(r["judge"] == "offline" and r["value"] is not None for r in recs)
    assert "20 newly scored, 0 missing" in capsys.readouterr().out
    # a rerun skips everything
    assert main(["score", str(run_dir), "--judge", "offline"]) == 0
    assert "20 already scored, 0 newly scored" in capsys.readouterr().out
    assert main(["metrics", str(run_dir), "--judge", "offline", "--n_resamples", "199"]) == 0
    table = json.loads((run_dir / "scores" / "metrics_offline.json").read_text())
    metrics = {(r["benchmark"], r["metric"]) for r in table}
    assert {("rtp", "expected_max_toxicity"), ("holisticbiasr", "bias_score"), ("hexphi", "harmfulness_rate"),
            ("beavertails", "flagged_rate")} <= metrics
    emt = [r for r in table if r["metric"] == "expected_max_toxicity" and r["condition"] == "vanilla"][0]
    tox = {r["key"]: r["value"] for r in recs if r["measure"] == "toxicity" and r["key"].startswith("rtp|vanilla")}
    maxima = [max(v for k, v in tox.items() if f"|{p}|" in k) for p in ("rtp-001", "rtp-002")]
    assert emt["value"] == pytest.approx(sum(maxima) / 2) and emt["n"] == 2


def test_killed_run_resumes_and_cache_avoids_calls(run_dir):
    from fakes.counting import CountingJudge
    from judges.registry import JUDGES

    JUDGES.register("counting", "fakes.counting:CountingJudge")
    CountingJudge.calls, CountingJudge.crash_after = [], 2
    assert main(["score", str(run_dir), "--judge", "counting", "--batch_size", "3"]) == 130  # killed
    out = run_dir / "scores" / "counting.jsonl"
    first = list(read_jsonl(out))
    distinct = lambda recs: {(r["measure"], r["scored_text"]) for r in recs}  # noqa: E731
    # identical texts (the two conditions share outputs) are judged once, via the batch dedup and the cache
    assert 0 < len(first) < 20 and sum(CountingJudge.calls) == len(distinct(first)) < len(first)
    CountingJudge.calls, CountingJudge.crash_after = [], None
    assert main(["score", str(run_dir), "--judge", "counting", "--batch_size", "3"]) == 0
    recs = list(read_jsonl(out))
    assert len(recs) == 20 and len({r["key"] for r in recs}) == 20  # nothing scored twice
    assert sum(CountingJudge.calls) == len(distinct(recs) - distinct(first))  # only what was left
    out.unlink()  # lose the score file: the cache still answers everything
    CountingJudge.calls = []
    assert main(["score", str(run_dir), "--judge", "counting"]) == 0
    assert CountingJudge.calls == [] and len(list(read_jsonl(out))) == 20


def test_load_run_counts_missing(run_dir):
    from judges.join import load_run
    from judges.score import score

    score(str(run_dir), judge="offline", limit=5)
    frame = load_run(run_dir, "offline")
    assert len(frame) == 20 and frame["value"].notna().sum() == 5
    assert (frame["error"] == "not scored").sum() == 15
    assert set(frame.loc[frame["benchmark"] == "holisticbiasr", "axis"]) == {"ability", "body_type"}


def test_bad_generation_record_is_one_line_error(tmp_path, capsys):
    (tmp_path / "generations.jsonl").write_text(json.dumps({"key": "k", "benchmark": "mystery", "prompt": "a",
                                                            "output": "b"}) + "\n")
    assert main(["score", str(tmp_path), "--judge", "offline"]) == 2
    err = capsys.readouterr().err.strip()
    assert "row 1" in err and "benchmark" in err and "\n" not in err


def test_score_with_perspective_fake_never_leaks_key(run_dir, monkeypatch, caplog):
    import logging

    from fakes.servers import perspective_server

    key = "PERSPECTIVE-SECRET-987654"
    monkeypatch.setenv("PERSPECTIVE_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    with perspective_server() as srv:
        srv.plan = {}
        assert main(["score", str(run_dir), "--judge", "perspective", "--measure", "toxicity", "--qps", "1000",
                     "--base_url", srv.url + "/v1alpha1/comments:analyze"]) == 0
    recs = list(read_jsonl(run_dir / "scores" / "perspective.jsonl"))
    assert len(recs) == 20 and all(r["value"] is not None for r in recs)
    assert key not in caplog.text
    for path in (run_dir / "scores").iterdir():
        assert key.encode() not in path.read_bytes()
