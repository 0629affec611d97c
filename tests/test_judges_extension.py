"""Adding a judge is one file: a toy judge with an option, registered from tests/fakes/toy_judge.py, works in
``valueharms score`` (options as --judge.OPTION, listed by --judge.help) and in the demo's judge hook."""

from __future__ import annotations

import shutil

import pytest

from valueharms.cli import main
from valueharms.io import read_jsonl


@pytest.fixture()
def toy():
    import fakes.toy_judge as module  # the one register line runs on import

    return module


def test_toy_judge_scores_through_the_console_script(toy, repo, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(repo / "samples/judges/run", run, ignore=shutil.ignore_patterns("scores"))
    assert main(["score", str(run), "--judge", "toy", "--judge.level", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "holisticbiasr, hexphi, beavertails: not scored by toy" in out
    recs = list(read_jsonl(run / "scores" / "toy.jsonl"))
    assert len(recs) == 8 and {r["measure"] for r in recs} == {"toxicity"}
    assert all(r["value"] == pytest.approx(0.5 * toy.toy_share(r["scored_text"])) for r in recs)
    assert any(r["value"] > 0 for r in recs) and {r["judge_version"] for r in recs} == {"toy-1:level=0.5"}
    with pytest.raises(SystemExit):
        main(["score", "--judge.help", "toy"])
    assert "--judge.level" in capsys.readouterr().out


def test_toy_judge_in_the_demo(toy, monkeypatch, tmp_path):
    import demo.app as app

    judge, status = app.load_judge("toy", {"level": 2.0})
    line = app.judge_text(judge, status, "HELLO world")
    assert f"{2.0 * toy.toy_share('HELLO world'):.3f}" in line and "toy" in line
    built = {}

    class NoModel:  # the demo's command without loading a model or serving
        def __init__(self, **kwargs):
            pass

        def choices(self):
            return ["vanilla"]

    class NoServer:
        local_url, share_url = "http://127.0.0.1:0/", None

        def queue(self):
            return self

        def launch(self, **kwargs):
            built["launched"] = True

        def block_thread(self):
            pass

        def close(self):
            built["closed"] = True

    monkeypatch.setattr(app, "ChatBackend", NoModel)
    monkeypatch.setattr(app, "build_app", lambda backend, judge, runs: built.update(judge=judge) or NoServer())
    assert main(["demo", str(tmp_path), "--judge", "toy", "--judge.level", "3"]) == 0  # a study without adapters
    assert isinstance(built["judge"], toy.ToyJudge) and built["judge"].level == 3.0 and built["launched"]
    assert built["closed"] and app.judge_text(built["judge"], "judge: toy", "AB").startswith("toxicity **3.000**")


def test_toy_judge_in_the_audit(toy, tmp_path):
    import json

    data = tmp_path / "data" / "Pow"
    data.mkdir(parents=True)
    rows = [{"input": "q", "target": "ALL CAPS"}, {"input": "q", "target": "no caps"}]
    (data / "stage1_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["audit", str(tmp_path / "data"), "--judge", "toy", "--judge.level", "0.8",
                 "--out", str(tmp_path / "report")]) == 0
    summary = json.loads((tmp_path / "report" / "audit.json").read_text())
    assert summary["judge"] == "toy" and summary["max"] == pytest.approx(0.8) and summary["above_0.5"] == 1
