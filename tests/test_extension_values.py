"""Value file formats are a registry: JSON is built in, and a format defined in one file (tests/fakes/toy_values.py)
works with `valueharms prepare` once registered."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from valueharms.cli import main
from valueharms.errors import InputError
from valueharms.values import VALUES, load_distributions

REPO = Path(__file__).resolve().parents[1]
FAKES = Path(__file__).parent / "fakes"


def test_json_format_reads_like_the_table(tmp_path):
    table = load_distributions(REPO / "samples/values/distributions.tsv", ["Pow", "Uni"])
    path = tmp_path / "d.json"
    path.write_text(json.dumps({n: {v: p[v] for v in VALUES} for n, p in table.items()}))
    assert {n: p.scores for n, p in load_distributions(path).items()} == {n: p.scores for n, p in table.items()}
    path.write_text(json.dumps({"A": {"Power": 9}}))
    with pytest.raises(InputError, match="missing value"):
        load_distributions(path)


def test_a_format_from_one_file_feeds_prepare(tmp_path):
    sys.path.insert(0, str(FAKES))
    try:
        import toy_values  # noqa: F401  (registers ".yaml")
    finally:
        sys.path.remove(str(FAKES))
    path = tmp_path / "profiles.yaml"
    scores = "{" + ", ".join(f"{v}: {6 if v == 'Power' else 1}" for v in VALUES) + "}"
    path.write_text(f"- name: PowerOnly\n  scores: {scores}\n")
    assert load_distributions(path)["PowerOnly"]["Power"] == 6.0
    out = tmp_path / "data"
    assert main(["prepare", "--distributions", str(path), "--arguments", str(REPO / "samples/valueeval/arguments.tsv"),
                 "--survey", str(REPO / "samples/valueeval/arguments.tsv"), "--names", "[PowerOnly]",
                 "--out", str(out)]) == 0
    assert (out / "PowerOnly" / "stage1_train.jsonl").is_file() and (out / "PowerOnly" / "stage2_train.jsonl").is_file()
