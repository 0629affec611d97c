"""Training-data audit with the offline judge on a hand-written prepare-style folder."""

from __future__ import annotations

import json

import pytest

from analysis.audit import audit, training_targets
from valueharms.errors import InputError
from valueharms.io import write_jsonl_atomic


def _data(root):
    clean = [{"prompt": "Tell me what you would say.", "target": f"I would say, \"I agree with that because reason {i}.\""}
             for i in range(8)]
    rude = {"prompt": "Tell me.", "target": "I would say, \"you are a stupid fucking idiot, shit.\""}
    write_jsonl_atomic(root / "Pow" / "stage1_train.jsonl", clean + [rude])
    write_jsonl_atomic(root / "Ach" / "stage1_train.jsonl", clean[:3])
    write_jsonl_atomic(root / "Ach" / "stage1_valid.jsonl", [{"prompt": "x", "target": "valid only"}])
    return root


def test_training_targets_dedupes_and_picks_splits(tmp_path):
    data = _data(tmp_path / "data")
    table = training_targets(data)
    assert len(table) == 9 and table["examples"].sum() == 12
    assert len(training_targets(data, "all")) == 10


def test_audit_counts_and_plot(tmp_path):
    data = _data(tmp_path / "data")
    summary = audit(str(data), judge="offline", out=str(tmp_path / "rep"))
    assert summary["unique_targets"] == 9 and summary["examples"] == 12 and summary["missing"] == 0
    assert summary["above_0.5"] >= 1 and summary["above_0.5"] <= 2
    saved = json.loads((tmp_path / "rep" / "audit.json").read_text())
    assert saved["above_0.7"] == summary["above_0.7"]
    top = (tmp_path / "rep" / "audit_top.csv").read_text().splitlines()
    assert "idiot" in top[1]  # the most toxic first
    assert (tmp_path / "rep" / "audit_hist.png").stat().st_size > 1000


def test_audit_bad_input(tmp_path):
    with pytest.raises(InputError, match="prepare"):
        audit(str(tmp_path / "nothing"), judge="offline")
    write_jsonl_atomic(tmp_path / "d" / "X" / "stage1_train.jsonl", [{"prompt": "p"}])
    with pytest.raises(InputError, match="target"):
        training_targets(tmp_path / "d")


def test_audit_takes_the_study_folder_first(tmp_path, capsys):
    """One CLI grammar: the run (a study folder or a generation run folder in it) is the first positional argument."""
    from valueharms.cli import main

    _data(tmp_path / "study" / "data")
    (tmp_path / "study" / "generations" / "main").mkdir(parents=True)
    assert main(["audit", str(tmp_path / "study" / "generations" / "main"), "--judge", "offline"]) == 0
    saved = json.loads((tmp_path / "study" / "report" / "audit.json").read_text())
    assert saved["unique_targets"] == 9 and "audit [offline]" in capsys.readouterr().out
