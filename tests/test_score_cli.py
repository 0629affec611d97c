"""``valueharms score`` / ``metrics`` end to end on the hand-written sample run (fake servers, no keys needed)."""

from __future__ import annotations

import json
import shutil

import pytest

from fakes.servers import openai_server, perspective_server
from valueharms.cli import main
from valueharms.io import read_jsonl, sha256_text

SAMPLE = "samples/judges/run"
KEY = "sk-SECRET-test-key-0123456789"


@pytest.fixture()
def run_dir(repo, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached Detoxify weights: auto stays local
    dst = tmp_path / "run"
    shutil.copytree(repo / SAMPLE, dst, ignore=shutil.ignore_patterns("scores"))
    return dst


@pytest.fixture()
def counting():
    from fakes.counting import CountingJudge
    from judges.registry import JUDGES

    JUDGES.register("counting", "fakes.counting:CountingJudge")
    CountingJudge.calls, CountingJudge.crash_after = [], None
    yield CountingJudge
    CountingJudge.calls, CountingJudge.crash_after = [], None


def test_score_offline_then_metrics(run_dir, capsys):
    assert main(["score", str(run_dir), "--judge", "offline", "--batch_size", "4"]) == 0
    recs = list(read_jsonl(run_dir / "scores" / "offline.jsonl"))
    assert len(recs) == 20 and len({r["key"] for r in recs}) == 20
    assert all(r["text_sha256"] == sha256_text(r["scored_text"]) for r in recs)
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


def test_killed_run_resumes_and_cache_avoids_calls(run_dir, counting):
    counting.crash_after = 2
    assert main(["score", str(run_dir), "--judge", "counting", "--batch_size", "3"]) == 130  # killed
    out = run_dir / "scores" / "counting.jsonl"
    first = list(read_jsonl(out))
    distinct = lambda recs: {(r["measure"], r["scored_text"]) for r in recs}  # noqa: E731
    # identical texts (the two conditions share outputs) are judged once, via the batch dedup and the cache
    assert 0 < len(first) < 20 and sum(counting.calls) == len(distinct(first)) < len(first)
    counting.calls, counting.crash_after = [], None
    assert main(["score", str(run_dir), "--judge", "counting", "--batch_size", "3"]) == 0
    recs = list(read_jsonl(out))
    assert len(recs) == 20 and len({r["key"] for r in recs}) == 20  # nothing scored twice
    assert sum(counting.calls) == len(distinct(recs) - distinct(first))  # only what was left
    out.unlink()  # lose the score file: the cache still answers everything
    counting.calls = []
    assert main(["score", str(run_dir), "--judge", "counting"]) == 0
    assert counting.calls == [] and len(list(read_jsonl(out))) == 20


def _rewrite_output(run_dir, key, output):
    path = run_dir / "generations.jsonl"
    recs = list(read_jsonl(path))
    for rec in recs:
        if rec["key"] == key:
            rec["output"] = output
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_changed_output_is_rejudged_through_the_cache(run_dir, counting, capsys):
    key = "hexphi|vanilla|none|hexphi-002|0"
    original = next(r["output"] for r in read_jsonl(run_dir / "generations.jsonl") if r["key"] == key)
    assert main(["score", str(run_dir), "--judge", "counting"]) == 0
    capsys.readouterr()
    _rewrite_output(run_dir, key, "A brand new answer.")
    counting.calls = []
    assert main(["score", str(run_dir), "--judge", "counting"]) == 0
    assert counting.calls == [1] and "19 already scored, 1 newly scored" in capsys.readouterr().out
    last = [r for r in read_jsonl(run_dir / "scores" / "counting.jsonl") if r["key"] == key][-1]
    assert last["scored_text"] == "A brand new answer." and last["text_sha256"] == sha256_text("A brand new answer.")
    _rewrite_output(run_dir, key, original)  # back to a text judged before: re-judged from the cache, no call
    counting.calls = []
    assert main(["score", str(run_dir), "--judge", "counting"]) == 0
    assert counting.calls == [] and "1 re-judged because their text changed, 0 judge calls" in capsys.readouterr().out


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


def test_study_folder_scores_each_generation_run(run_dir, tmp_path):
    study = tmp_path / "study"
    for name in ("a", "b"):
        shutil.copytree(run_dir, study / "generations" / name)
    assert main(["score", str(study), "--judge", "offline", "--benchmarks", "[rtp]"]) == 0
    for name in ("a", "b"):
        recs = list(read_jsonl(study / "generations" / name / "scores" / "offline.jsonl"))
        assert len(recs) == 8 and all(r["key"].startswith("rtp|") for r in recs)


def test_score_with_perspective_fake_never_leaks_key(run_dir, monkeypatch, caplog):
    import logging

    monkeypatch.setenv("PERSPECTIVE_API_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    with perspective_server() as srv:
        assert main(["score", str(run_dir), "--judge", "perspective", "--measure", "toxicity", "--judge.qps", "1000",
                     "--judge.base_url", srv.url + "/v1alpha1/comments:analyze"]) == 0
    recs = list(read_jsonl(run_dir / "scores" / "perspective.jsonl"))
    assert len(recs) == 20 and all(r["value"] is not None for r in recs)
    assert KEY not in caplog.text
    for path in (run_dir / "scores").iterdir():
        assert KEY.encode() not in path.read_bytes()


def test_openai_scores_what_it_can_and_names_the_rest(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with openai_server() as srv:
        judge = ["--judge", "openai", "--judge.base_url", srv.url + "/v1", "--judge.template", "ours"]
        assert main(["score", str(run_dir), *judge, "--benchmarks", "[hexphi]"]) == 0
        recs = list(read_jsonl(run_dir / "scores" / "openai.jsonl"))
        assert len(recs) == 4 and {r["measure"] for r in recs} == {"harmfulness"}
        assert main(["score", str(run_dir), *judge]) == 0
    out = capsys.readouterr().out
    assert "rtp, holisticbiasr: not scored by openai" in out and "4 already scored, 4 newly scored" in out
    recs = list(read_jsonl(run_dir / "scores" / "openai.jsonl"))
    assert len(recs) == 8 and {r["measure"] for r in recs} == {"harmfulness", "flagged"}
    assert all(r["judge"] == "openai" and r["value"] is not None for r in recs)


def test_paper_judges_every_measure_with_its_own_file(run_dir, tmp_path, monkeypatch, capsys):
    from fakes.tiny_bert import regard_folder

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("PERSPECTIVE_API_KEY", KEY)
    regard = regard_folder(tmp_path / "regard")
    with openai_server() as oai, perspective_server() as persp:
        assert main(["score", str(run_dir), "--judge", "paper",
                     "--judge.openai", json.dumps({"base_url": oai.url + "/v1", "template": "ours", "rps": 1000}),
                     "--judge.perspective", json.dumps({"base_url": persp.url + "/x", "qps": 1000}),
                     "--judge.regard", json.dumps({"model": str(regard), "device": "cpu"})]) == 0
    expected = {"perspective": {"toxicity"}, "regard": {"regard"}, "openai": {"harmfulness", "flagged"}}
    for judge, measures in expected.items():
        recs = list(read_jsonl(run_dir / "scores" / f"{judge}.jsonl"))
        assert {r["measure"] for r in recs} == measures and {r["judge"] for r in recs} == {judge}
        assert all(r["value"] is not None for r in recs)
    assert sorted(p.name for p in (run_dir / "scores").glob("*.jsonl")) == ["openai.jsonl", "perspective.jsonl",
                                                                          "regard.jsonl"]
    assert "not scored" not in capsys.readouterr().out


def test_auto_takes_local_models_only(run_dir, tmp_path):
    from fakes.tiny_bert import regard_folder

    regard = regard_folder(tmp_path / "regard")
    assert main(["score", str(run_dir), "--judge", "auto", "--judge.regard", json.dumps({"model": str(regard)})]) == 0
    regard_recs = list(read_jsonl(run_dir / "scores" / "regard.jsonl"))
    offline_recs = list(read_jsonl(run_dir / "scores" / "offline.jsonl"))
    assert {r["measure"] for r in regard_recs} == {"regard"} and len(regard_recs) == 4
    assert {r["measure"] for r in offline_recs} == {"toxicity", "harmfulness", "flagged"} and len(offline_recs) == 16


@pytest.mark.parametrize("args, env, expect", [
    (["--judge", "opneai"], {}, "did you mean 'openai'"),
    (["--judge", "openai", "--judge.template", "ours"], {}, "OPENAI_API_KEY"),
    (["--judge", "perspective"], {}, "PERSPECTIVE_API_KEY"),
    (["--judge", "paper"], {"OPENAI_API_KEY": KEY}, "PERSPECTIVE_API_KEY"),
    (["--judge", "openai", "--judge.base_url", "http//oops"], {"OPENAI_API_KEY": KEY}, "malformed URL"),
    (["--judge", "openai"], {"OPENAI_API_KEY": KEY, "VALUEHARMS_DATA": "/nonexistent"}, "study rubric not found"),
    (["--judge", "offline", "--benchmarks", "[nope]"], {}, "unknown benchmark 'nope'"),
    (["--judge", "detoxify", "--judge.model_type", "nope"], {}, "unknown Detoxify model 'nope'"),
])
def test_bad_judge_input_is_one_line_and_writes_nothing(run_dir, monkeypatch, capsys, args, env, expect):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["score", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and "\n" not in err and KEY not in err
    assert not (run_dir / "scores").exists()


@pytest.mark.parametrize("broken", ["no_network", "bad_checkpoint"])
def test_detoxify_weights_not_loadable_is_one_line(run_dir, tmp_path, monkeypatch, capsys, broken):
    """No network for torch hub's download, or a checkpoint that is not one: one line naming the fix, exit 2."""
    import urllib.error

    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    args = ["--judge", "detoxify"]
    if broken == "no_network":
        def offline(*a, **k):
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    else:
        bad = tmp_path / "bad.ckpt"
        bad.write_bytes(b"not a checkpoint")
        args += ["--judge.checkpoint", str(bad)]
    assert main(["score", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "Detoxify weights not loadable" in err and "\n" not in err and "--judge.checkpoint" in err
    assert not (run_dir / "scores").exists()
