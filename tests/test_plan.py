"""`valueharms plan` on a miniature study folder built here: counts, generations, GPU-hours, model inputs, and one
line naming what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from valueharms.cli import main
from valueharms.values import VALUES
from vim.data import load_arguments

REPO = Path(__file__).resolve().parents[1]
NAMES = ["Pow", "Uni", "resp_01"]


def _arguments(path: Path, n: int, offset: int = 0) -> Path:
    header = "\tConclusion\tStance\tPremise\t" + "\t".join(VALUES)
    rows = []
    for i in range(n):
        flags = ["1" if (i + j) % 4 == 0 else "0" for j in range(len(VALUES))]
        stance = "in favor of" if i % 2 else "against"
        rows.append("\t".join([str(i + offset), f"We should do thing {i}", stance, f"it helps case {i}", *flags]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def study(tmp_path, tiny_model_dir) -> dict:
    data = tmp_path / "data"
    dists = data / "distributions.tsv"
    dists.parent.mkdir(parents=True)
    dists.write_text((REPO / "samples/values/distributions.tsv").read_text(encoding="utf-8"), encoding="utf-8")
    _arguments(data / "args.tsv", 30)
    _arguments(data / "split/value_split/train.csv", 12)
    _arguments(data / "split/value_split/valid.csv", 4, 100)
    _arguments(data / "split/test.csv", 5, 200)
    folder = tmp_path / "study"
    folder.mkdir()
    (data / "names.txt").write_text("\n".join(NAMES) + "\n")
    (folder / "study.yaml").write_text(yaml.safe_dump({"names_file": str(data / "names.txt"), "benign": ["alpaca"]}))
    (folder / "icl_names.txt").write_text("Uni\n")
    fit = {"model": {"class_path": "vim.module.VIMModule", "init_args": {"model": str(tiny_model_dir)}},
           "data": {"class_path": "vim.datamodule.VIMDataModule", "init_args": {
               "distributions_file": str(dists), "arguments": str(data / "args.tsv"), "survey": str(data / "split"),
               "data_dir": str(tmp_path / "prepared/{distribution}"), "threshold": 3.0, "epochs_per_stage": 2,
               "max_length": 40}}}
    (folder / "fit.yaml").write_text(yaml.safe_dump(fit))
    predict = {"data": {"class_path": "benchmarks.generation.BenchmarkDataModule", "init_args": {
        "output": "g.jsonl",
        "benchmarks": {"rtp": {"source": str(REPO / "samples/benchmarks/rtp.jsonl"), "limit": 3},
                       "hexphi": {"source": str(tmp_path / "no-hexphi")}},
        "vanilla": True, "adapters_root": str(tmp_path / "adapters"),
        "icl_distributions": str(dists), "icl_names": ["Pow"],
        "icl_names_file": str(folder / "icl_names.txt"), "icl_template": "ours",
        "mitigations": ["none", "value"], "suppress": {"*": ["Power"]}}}}
    (folder / "predict.yaml").write_text(yaml.safe_dump(predict))
    perf = tmp_path / "perf"
    perf.mkdir()
    (perf / "cpu.json").write_text(json.dumps({"device": "cpu", "train_packed_tok_s": 5.0, "hf_generate_tok_s": 1.0}))
    (perf / "gpu.json").write_text(json.dumps({"device": "cuda", "shape": "llama2-7b", "date": "2026-12-01",
                                               "train_packed_tok_s": 1000.0, "hf_generate_tok_s": 500.0}))
    return {"folder": folder, "perf": perf, "out": tmp_path / "plan", "tok": str(tiny_model_dir), "data": data,
            "tmp": tmp_path}


def _run(study: dict, capsys, *extra: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["plan", "--study", str(study["folder"]), "--out", str(study["out"]), "--perf", str(study["perf"]),
                 "--tokenizer", study["tok"], *extra])
    return code, capsys.readouterr().err.strip().splitlines()


def test_plan_counts_and_names_what_is_missing(study, capsys):
    code, err = _run(study, capsys)
    errors = [ln for ln in err if ln.startswith("valueharms: error")]
    assert code == 2 and len(errors) == 1 and "no-hexphi" in errors[0] and "HEx-PHI" in errors[0]
    report = json.loads((study["out"] / "plan.json").read_text())
    t = report["training"]
    n_args = len(load_arguments(study["data"] / "args.tsv"))
    assert sum(t["stage1"][s]["examples"] for s in ("train", "valid", "test")) == 3 * n_args
    labelled = {s: sum(len(a.values) for a in load_arguments(p)) for s, p in
                (("train", study["data"] / "split/value_split/train.csv"),
                 ("valid", study["data"] / "split/value_split/valid.csv"), ("test", study["data"] / "split/test.csv"))}
    assert {s: t["stage2"][s]["examples"] for s in labelled} == {s: 3 * n for s, n in labelled.items()}
    assert t["stage2"]["train"]["tokens"] > t["stage2"]["train"]["trained_tokens"] > 0  # max_length 40 cuts some
    assert t["stage2"]["train"]["over_max_length"] > 0
    assert t["prepared"] == {"current": 0, "stale": 0, "absent": 3}
    # generations: rtp 3 prompts x 10 samples; vanilla + 3 assumed VIM + 1 benign (study.yaml) + 2 ICL profiles
    # (icl_names and icl_names_file together, as predict reads them); value needs Power
    rtp = report["generation"]["predict.yaml"]["counts"]["rtp"]
    assert rtp["conditions"] == {"vanilla": 1, "vim": 3, "benign": 1, "icl": 2}
    assert rtp["generations"]["vim"] == {"none": 90, "value": 90}
    assert rtp["max_generated_tokens"] == rtp["total_generations"] * 64
    # GPU-hours from the GPU perf file (the CPU one is never used)
    cost = report["cost"]
    assert cost["rates"]["source"].endswith("gpu.json") and cost["rates"]["train_tok_s"] == 1000.0
    expected = round((t["train_tokens"] + t["valid_tokens"] / 3) / 1000.0 / 3600, 1)
    assert cost["train_gpu_hours"] == expected
    assert t["train_tokens"] == 2 * (t["stage1"]["train"]["trained_tokens"] + t["stage2"]["train"]["trained_tokens"])
    inputs = study["out"] / "model_inputs" / "predict"
    icl = (inputs / "rtp.icl.none.txt").read_text(encoding="utf-8")
    first_prompt = json.loads((REPO / "samples/benchmarks/rtp.jsonl").read_text().splitlines()[0])["prompt"]["text"]
    assert icl.endswith(first_prompt) and "- Power: 6.0" in icl
    assert (inputs / "rtp.vanilla.none.txt").read_text(encoding="utf-8") == first_prompt
    assert "disregard" in (inputs / "rtp.vim.value.txt").read_text(encoding="utf-8")
    index = json.loads((inputs / "index.json").read_text())
    assert index["rtp.icl.none.txt"]["stop"] == ["\n", "."]  # ICL stops at a newline; RTP also after its scored sentence


def test_plan_passes_when_everything_is_there(study, capsys):
    cfg = yaml.safe_load((study["folder"] / "predict.yaml").read_text())
    cfg["data"]["init_args"]["benchmarks"]["hexphi"]["source"] = str(REPO / "samples/benchmarks/hexphi_placeholder")
    cfg["data"]["init_args"]["stop_after_scored"] = False
    (study["folder"] / "predict.yaml").write_text(yaml.safe_dump(cfg))
    code, err = _run(study, capsys, "--prepare_data", "true")
    assert code == 0, err
    index = json.loads((study["out"] / "model_inputs" / "predict" / "index.json").read_text())
    assert index["rtp.icl.none.txt"]["stop"] == ["\n"]  # as predict will stop: no early '.' when it is off
    report = json.loads((study["out"] / "plan.json").read_text())
    assert report["training"]["prepared"] == {"current": 3, "stale": 0, "absent": 0}
    written = json.loads((study["tmp"] / "prepared" / "Pow" / "prepare_report.json").read_text())
    assert written["counts"]["stage2"]["train"]["total"] == report["training"]["per_distribution"]["Pow"]["stage2"][
        "train"]["examples"]
    assert report["missing"] == [] and report["generation"]["predict.yaml"]["counts"]["hexphi"]["total_generations"] > 0


def test_plan_without_study_files_is_one_line(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    assert main(["plan", "--study", str(tmp_path / "s"), "--out", str(tmp_path / "o")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_plan_before_the_data_is_fetched_says_how_to_get_it(tmp_path, capsys):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "study.yaml").write_text("names_file: data/original/target_distribution_names.txt\n")
    assert main(["plan", "--study", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "target_distribution_names.txt" in err[0] and "valueharms data" in err[0]
