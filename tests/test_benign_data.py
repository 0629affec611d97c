"""Benign instruction data: the study's exact prompt formats from local samples and the study's grammar file."""

from __future__ import annotations

import json

import pytest

from vim.benign_data import load_benign
from valueharms.errors import InputError


def test_alpaca_with_and_without_input(repo):
    rows = load_benign("alpaca", str(repo / "samples" / "benign" / "alpaca.json"))
    raw = json.loads((repo / "samples" / "benign" / "alpaca.json").read_text())
    assert len(rows) == len(raw) >= 10
    no_input = next(i for i, r in enumerate(raw) if not r["input"])
    with_input = next(i for i, r in enumerate(raw) if r["input"])
    assert rows[no_input]["prompt"] == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
        f"### Instruction:\n{raw[no_input]['instruction']}\n\n### Response:\n")
    assert rows[with_input]["prompt"] == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        f"### Instruction:\n{raw[with_input]['instruction']}\n\n### Input:\n{raw[with_input]['input']}\n\n"
        "### Response:\n")
    assert rows[with_input]["target"] == raw[with_input]["output"]


def test_dolly_category_filter_and_limit(repo):
    path = str(repo / "samples" / "benign" / "dolly.jsonl")
    everything = load_benign("dolly", path)
    only = load_benign("dolly", path, categories=["open_qa"])
    dropped = load_benign("dolly", path, exclude_categories=["open_qa"])
    assert 0 < len(only) < len(everything) and len(only) + len(dropped) == len(everything)
    assert "### Input:\n" in "".join(r["prompt"] for r in everything)  # rows with a context
    assert len(load_benign("dolly", path, limit=3)) == 3


def test_samsum_and_grammar_formats(repo, study_data):
    sam = load_benign("samsum", str(repo / "samples" / "benign" / "samsum.jsonl"))
    first = json.loads((repo / "samples" / "benign" / "samsum.jsonl").read_text().splitlines()[0])
    assert sam[0] == {"prompt": f"Summarize this dialog:\n{first['dialogue']}\n---\nSummary:\n",
                      "target": first["summary"]}
    grammar = load_benign("grammar", str(study_data / "original" / "grammar_validation.csv"))
    assert len(grammar) > 1000
    assert grammar[0] == {
        "prompt": "Correct this to standard English:\nNew and new technology has been introduced to the society.\n"
                  "---\nCorrected:\n",
        "target": "New technology has been introduced to society.",
    }
    assert len(load_benign("grammar", str(repo / "samples" / "benign" / "grammar.csv"))) >= 10


def test_bad_inputs_are_one_line_errors(tmp_path):
    bad = tmp_path / "s.jsonl"
    bad.write_text(json.dumps({"dialogue": "a: hi"}) + "\n")
    with pytest.raises(InputError) as err:
        load_benign("samsum", str(bad))
    assert err.value.row == 1 and err.value.field == "summary"
    with pytest.raises(InputError, match="unknown benign task"):
        load_benign("poetry", str(bad))
    with pytest.raises(InputError, match="not found"):
        load_benign("alpaca", str(tmp_path / "missing.json"))
