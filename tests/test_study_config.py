"""configs/study/paper: the study's 154 names (from the rule), the fit config's inputs and settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from valueharms.values import EXTREME_NAMES, load_distributions, read_names, study_distribution_names
from vim.prepare import DEFAULT_ARGUMENTS, DEFAULT_DISTRIBUTIONS, DEFAULT_SURVEY

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "configs" / "study" / "paper"
PATH_KEYS = {"adapter_dir", "default_root_dir", "distributions_file", "arguments", "survey", "data_dir",
             "distribution"}


def test_names_rule_gives_the_study_list():
    names = study_distribution_names()
    assert len(names) == 154 == len(set(names))
    assert names[:3] == ["Ach", "close_Ach", "close_Ach_2"] and names[-1] == "close_Self-Transcendence_10"
    assert len(EXTREME_NAMES) == 14 and sum(not n.startswith("close_") for n in names) == 14


def test_names_match_the_study_files(study_data):
    manifest = yaml.safe_load((STUDY / "study.yaml").read_text())
    assert manifest["names_file"] == "data/original/target_distribution_names.txt"
    assert manifest["benign"] == ["alpaca", "dolly", "grammar", "samsum"]
    names = read_names(study_data / "original/target_distribution_names.txt")
    assert names == study_distribution_names()  # the study's file follows the naming rule
    profiles = load_distributions(study_data / "original/extreme_distributions.csv", names)
    assert len(profiles) == 154 and profiles["Pow"]["Power"] == 6.0


def _flat(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _flat(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], node


def test_fit_config_reads_the_study_inputs_and_keeps_the_paper_settings():
    fit = yaml.safe_load((STUDY / "fit.yaml").read_text())
    data = fit["data"]["init_args"]
    assert (data["distributions_file"], data["arguments"], data["survey"]) == (DEFAULT_DISTRIBUTIONS, DEFAULT_ARGUMENTS,
                                                                            DEFAULT_SURVEY)
    model = fit["model"]["init_args"]
    assert model["model"] == "meta-llama/Llama-2-7b-hf" and model["weight_decay"] == 0.01 and model["lr"] == 2e-5
    assert fit["trainer"]["precision"].startswith("bf16")
    # every training setting the general Llama-2 config also sets must agree (paths and placeholders excepted)
    general = dict(_flat(yaml.safe_load((REPO / "configs/vim/llama2-7b.yaml").read_text())))
    ours = dict(_flat(fit))
    shared = [k for k in general.keys() & ours.keys() if k.rsplit(".", 1)[-1] not in PATH_KEYS]
    assert len(shared) > 15
    assert {k: ours[k] for k in shared} == {k: general[k] for k in shared}


def test_nothing_in_the_repo_points_outside_it():
    """Code, configs, docs and tests name no file outside the checkout (the protocol is written in docs/protocol.md)."""
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    needles = ("../shared", "/work/", "PROTOCOL.md", "PATTERNS.md")
    offenders = []
    for rel in files:
        path = REPO / rel
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".txt", ".toml", ".cfg", ".sh", ""} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{rel}: {n}" for n in needles if n in text and rel != "tests/test_study_config.py"]
    assert offenders == []
