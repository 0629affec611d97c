"""With the study's data present (fetched or mirrored): `prepare` with defaults gives the study's counts.

Stage 1: positives/negatives of all 154 distributions under the min rule, checked against an independent pandas
computation. Stage 2: 16,594 / 2,062 / 2,089 examples from the study's argument split, for any distribution.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from valueharms.cli import main
from valueharms.values import VALUES, load_distributions, study_distribution_names
from vim.data import is_positive, load_arguments


def _pandas_counts(original) -> dict[str, tuple[int, int]]:
    """The rule read straight off the files: positive when the lowest score over labelled values is >= 3."""
    dists = pd.read_csv(original / "extreme_distributions.csv", sep="\t").set_index("Country")
    args = pd.read_csv(original / "valueEval_10.csv", sep="\t", index_col=0)
    labels = args[list(VALUES)].to_numpy().astype(bool)
    out = {}
    for name in study_distribution_names():
        lowest = np.where(labels, dists.loc[name, list(VALUES)].to_numpy(dtype=float), np.inf).min(axis=1)
        pos = int((lowest >= 3).sum())
        out[name] = (pos, len(args) - pos)
    return out


def test_stage1_counts_of_all_154_distributions(study_data):
    original = study_data / "original"
    profiles = load_distributions(original / "extreme_distributions.csv", study_distribution_names())
    arguments = load_arguments(original / "valueEval_10.csv")
    positives = {name: sum(is_positive(a, p, 3.0) for a in arguments) for name, p in profiles.items()}
    ours = {name: (pos, len(arguments) - pos) for name, pos in positives.items()}  # what build_stage1 splits
    expected = _pandas_counts(original)
    assert ours == expected
    assert ours["Sti"] == (1, 7373) and ours["Ach"] == (60, 7314) and ours["close_Ach"] == (0, 7374)
    assert sum(pos == 0 for pos, _ in ours.values()) == 5  # one-sided distributions the fit must survive


def test_prepare_with_defaults_gives_the_study_counts(study_data, tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "original").symlink_to(study_data / "original")
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--names", "[close_Pow_2, close_Ach]", "--out", "out"]) == 0
    expected = _pandas_counts(study_data / "original")
    for name in ("close_Pow_2", "close_Ach"):
        report = json.loads((tmp_path / "out" / name / "prepare_report.json").read_text())
        s1, s2 = report["counts"]["stage1"], report["counts"]["stage2"]
        pos = sum(s1[s].get("positive", 0) for s in s1)
        neg = sum(s1[s].get("negative", 0) for s in s1)
        assert (pos, neg) == expected[name]
        assert [s2[s]["total"] for s in ("train", "valid", "test")] == [16594, 2062, 2089]
        assert report["survey"].endswith("argument_generation")
    rows = (tmp_path / "out" / "close_Pow_2" / "stage2_train.jsonl").read_text().splitlines()
    assert len(rows) == 16594
