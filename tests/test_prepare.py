"""prepare_distribution / `valueharms prepare`: files, report, caps, truncation report, resume, one-line errors."""

from __future__ import annotations

import json

import pytest

from valueharms.cli import main
from valueharms.io import read_jsonl
from vim.prepare import prepare, prepare_distribution
from valueharms.values import ValueProfile, load_distributions

FILES = [f"stage{st}_{s}.jsonl" for st in (1, 2) for s in ("train", "valid", "test")]


@pytest.fixture()
def samples(repo):
    return repo / "samples" / "values" / "distributions.tsv", repo / "samples" / "valueeval" / "arguments.tsv"


def test_prepare_distribution_writes_contract_files(tmp_path, samples):
    dists, args = samples
    profile = load_distributions(dists, ["resp_01"])["resp_01"]
    report = prepare_distribution(profile, tmp_path / "resp_01", arguments=args)
    for name in FILES + ["prepare_report.json"]:
        assert (tmp_path / "resp_01" / name).is_file(), name
    rows = list(read_jsonl(tmp_path / "resp_01" / "stage1_train.jsonl"))
    assert {r["meta"]["polarity"] for r in rows} == {"positive", "negative"}
    assert all(set(r) == {"prompt", "target", "stage", "split", "meta"} and r["stage"] == 1 for r in rows)
    s1 = report["counts"]["stage1"]
    assert sum(s1[s]["total"] for s in ("train", "valid", "test")) == 80  # every sample argument, once
    assert s1["train"]["total"] == len(rows)
    stage2 = list(read_jsonl(tmp_path / "resp_01" / "stage2_train.jsonl"))
    assert report["counts"]["stage2"]["train"]["total"] == len(stage2) > 0
    assert json.loads((tmp_path / "resp_01" / "prepare_report.json").read_text())["data_hash"] == report["data_hash"]


def test_quickstart_distributions_get_both_polarities(tmp_path, samples, repo):
    dists, args = samples
    names = (repo / "samples" / "values" / "quickstart_names.txt").read_text().split()
    reports = prepare(str(dists), out=str(tmp_path), names=names, arguments=str(args), survey=None)
    for name in names:
        c = reports[name]["counts"]["stage1"]["train"]
        assert c.get("positive", 0) > 0 and c.get("negative", 0) > 0, name


def test_max_examples_caps_each_split_stratified(tmp_path, samples):
    dists, args = samples
    profile = load_distributions(dists, ["resp_01"])["resp_01"]
    report = prepare_distribution(profile, tmp_path / "d", arguments=args, max_examples=10)
    train = report["counts"]["stage1"]["train"]
    assert train["total"] == 10 and train["positive"] > 0 and train["negative"] > 0
    assert report["counts"]["stage2"]["train"]["total"] == 10


def test_one_sided_distribution_warns_not_crashes(tmp_path, samples):
    dists, args = samples
    profile = ValueProfile("flat", (2.0,) * 10)  # every argument's lowest labelled score is 2 < 3
    with pytest.warns(UserWarning, match="no positive"):
        report = prepare_distribution(profile, tmp_path / "d", arguments=args, threshold=3.0)
    assert report["counts"]["stage1"]["train"]["negative"] > 0


def test_truncation_report_with_tokenizer(tmp_path, samples, tiny_tokenizer):
    dists, args = samples
    profile = load_distributions(dists, ["Uni"])["Uni"]
    short = prepare_distribution(profile, tmp_path / "a", arguments=args, tokenizer=tiny_tokenizer, max_length=24)
    long = prepare_distribution(profile, tmp_path / "b", arguments=args, tokenizer=tiny_tokenizer, max_length=4096)
    cut = short["truncation"]["stage2_train"]
    assert cut["examples"] == short["counts"]["stage2"]["train"]["total"]
    assert cut["target_truncated"] == cut["examples"]  # the stage-2 instruction alone is longer than 24 tokens
    assert cut["target_lost"] == cut["examples"]
    assert long["truncation"]["stage2_train"]["target_truncated"] == 0


def test_offset_bug_option_changes_stage2(tmp_path, samples):
    dists, args = samples
    profile = load_distributions(dists, ["resp_01"])["resp_01"]
    fixed = prepare_distribution(profile, tmp_path / "a", arguments=args)
    buggy = prepare_distribution(profile, tmp_path / "b", arguments=args, stage2_column_offset_bug=True)
    assert "Achievement" in fixed["counts"]["stage2"]["train"]["by_value"]
    assert "Achievement" not in buggy["counts"]["stage2"]["train"]["by_value"]
    assert fixed["data_hash"] != buggy["data_hash"]


def test_cli_resume_rewrites_nothing(tmp_path, samples, capsys):
    dists, args = samples
    argv = ["prepare", "--distributions", str(dists), "--arguments", str(args), "--out", str(tmp_path),
            "--names", "[Pow, resp_02]", "--survey", "null"]
    assert main(argv) == 0
    first = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert len(first) == 2 * 7
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("cached") == 2
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == first
    assert main(argv + ["--threshold", "4"]) == 0  # changed setting -> new data hash -> rewritten
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} != first


def test_cli_bad_file_exits_2_with_one_line(tmp_path, samples, capsys):
    dists, args = samples
    lines = args.read_text().splitlines()
    cells = lines[5].split("\t")
    cells[2] = "neutral"
    lines[5] = "\t".join(cells)
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines) + "\n")
    code = main(["prepare", "--distributions", str(dists), "--arguments", str(bad), "--out", str(tmp_path / "o"),
                 "--names", "[Pow]", "--survey", "null"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and str(bad) in err and "row 6" in err and "Stance" in err
