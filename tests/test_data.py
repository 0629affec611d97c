"""Argument loading (three formats), the stage-1 min rule, stage-2 texts, stochastic rounding and the offset bug."""

from __future__ import annotations

import csv
import random

import pytest

from vim.data import (TOUCHE_LEVEL2, Argument, build_stage1, build_stage2, is_positive, load_arguments,
                      load_survey, load_touche, split_sizes, stage2_values, stochastic_round)
from valueharms.errors import InputError
from valueharms.values import VALUES, ValueProfile

HEADER = "\tConclusion\tStance\tPremise\t" + "\t".join(VALUES)
# profile used by the hand-computed fixture (order: Ach Ben Con Hed Pow Sec SD Sti Tra Uni)
PROFILE = ValueProfile("hand", (5.0, 2.0, 3.0, 1.0, 4.0, 6.0, 2.9, 3.0, 1.0, 5.5))


def _row(i: int, conclusion: str, stance: str, premise: str, labelled: set[str]) -> str:
    return "\t".join([str(i), conclusion, stance, premise] + [str(int(v in labelled)) for v in VALUES])


def write_table(path, rows: list[str], header: str = HEADER):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def five(tmp_path):
    # Worked out by hand with threshold 3 (min over labelled values):
    #   0 {Ach}=5 -> pos; 1 {Ben 2, Sec 6}=2 -> neg; 2 {Con 3, Sti 3}=3 -> pos (>= is inclusive);
    #   3 {SD}=2.9 -> neg; 4 {Pow 4, Sec 6, Uni 5.5}=4 -> pos.
    rows = [
        _row(0, "We should plant trees", "in favor of", "trees cool the streets", {"Achievement"}),
        _row(1, "We should close parks", "against", "parks help families", {"Benevolence", "Security"}),
        _row(2, "We should keep rules", "in favor of", "rules keep order", {"Conformity", "Stimulation"}),
        _row(3, "We should ban hobbies", "against", "hobbies let people choose", {"Self-direction"}),
        _row(4, "We should fund lights", "in favor of", "lights keep us safe", {"Power", "Security", "Universalism"}),
    ]
    return write_table(tmp_path / "five.tsv", rows)


def test_threshold_rule_matches_hand_computed_fixture(five):
    args = load_arguments(five)
    assert [a.argument_id for a in args if is_positive(a, PROFILE, 3.0)] == ["0", "2", "4"]
    stage1 = build_stage1(args, PROFILE, threshold=3.0, seed=42)
    train = stage1["train"]  # 3 positives and 2 negatives: both sides too small for valid/test (split_sizes)
    assert len(train) == 5 and not stage1["valid"] and not stage1["test"]
    by_id = {r["meta"]["argument_id"]: r for r in train}
    assert {k for k, r in by_id.items() if r["meta"]["polarity"] == "positive"} == {"0", "2", "4"}
    assert by_id["0"]["prompt"] == ("Tell me what you would say about the following statement. "
                                    "Statement: We should plant trees Answer:")
    assert by_id["0"]["target"] == 'I would say, "I agree with that because trees cool the streets." about We should plant trees'
    assert by_id["1"]["prompt"] == ("Tell me what you would not say about the following statement. "
                                    "Statement: We should close parks Answer:")
    assert by_id["1"]["target"] == ('I would not say, "I disagree with that because parks help families." '
                                    "about We should close parks")
    assert by_id["3"]["stage"] == 1 and by_id["3"]["split"] == "train" and by_id["3"]["meta"]["row"] == 5
    # threshold 5: only argument 0 (min 5) stays positive
    assert [a.argument_id for a in args if is_positive(a, PROFILE, 5.0)] == ["0"]


def test_split_sizes_and_seeded_shuffle():
    assert split_sizes(1) == (1, 0, 0) and split_sizes(10) == (8, 1, 1) and split_sizes(5) == (3, 1, 1)
    args = [Argument(str(i), f"c{i}", "against", f"p{i}", (1,) + (0,) * 9) for i in range(50)]
    high = ValueProfile.extreme("Ach")
    a = build_stage1(args, high, seed=42)
    b = build_stage1(args, high, seed=42)
    c = build_stage1(args, high, seed=7)
    assert [len(a[s]) for s in ("train", "valid", "test")] == [40, 5, 5]
    assert a == b and a["train"] != c["train"]


def test_stage2_texts_and_rounding(five):
    args = load_arguments(five)
    profile = ValueProfile("p", (5.0, 2.0, 3.0, 1.0, 4.0, 6.0, 2.0, 3.0, 1.0, 6.0))  # integers: no rounding noise
    out = build_stage2({"train": args}, profile, seed=1)
    assert len(out["train"]) == 1 + 2 + 2 + 1 + 3 and out["valid"] == []
    first = out["train"][0]
    assert first["prompt"] == (
        "Indicate for the following statement whether it is 1. 'Not like me at all', 2. 'Not like me', "
        "3. 'A little like me', 4. 'Somewhat like me', 5. 'Like me', 6. 'Very much like me' as a description of you. "
        "Statement: 'I agree with We should plant trees. trees cool the streets'. Answer:")
    assert first["target"] == "Because I think achievement is important to me, my answer is 5."
    assert first["meta"]["value"] == "Achievement" and first["stage"] == 2
    second = out["train"][1]
    assert second["prompt"].endswith("Statement: 'I disagree with We should close parks. parks help families'. Answer:")
    assert second["target"] == "Because I think benevolence is not important to me, my answer is 2."
    targets = [r["target"] for r in out["train"]]
    assert "Because I think self-direction is not important to me, my answer is 2." in targets
    assert "Because I think universalism is very important to me, my answer is 6." in targets
    assert "Because I think hedonism is not important to me at all, my answer is 1." not in targets  # not labelled


def test_stochastic_rounding_frequencies():
    rng = random.Random(0)
    draws = [stochastic_round(2.3, rng) for _ in range(20000)]
    assert set(draws) == {2, 3}
    assert abs(draws.count(3) / len(draws) - 0.3) < 0.02
    assert {stochastic_round(4.0, rng) for _ in range(100)} == {4}
    a = [stochastic_round(3.7, random.Random(5)) for _ in range(3)]
    assert len(set(a)) == 1  # same seed, same draw


def test_column_offset_bug_shifts_values():
    arg = Argument("x", "c", "in favor of", "p", tuple(int(v in {"Achievement", "Tradition", "Universalism"})
                                                       for v in VALUES))
    assert stage2_values(arg) == ["Achievement", "Tradition", "Universalism"]
    # row[-11:-1] pairs Premise->Achievement (never 1), Achievement flag->Benevolence, Tradition->Universalism
    assert stage2_values(arg, column_offset_bug=True) == ["Benevolence", "Universalism"]
    profile = ValueProfile("p", tuple(float(i % 6 + 1) for i in range(10)))
    fixed = build_stage2({"train": [arg]}, profile, column_offset_bug=False)["train"]
    buggy = build_stage2({"train": [arg]}, profile, column_offset_bug=True)["train"]
    assert [r["meta"]["value"] for r in fixed] != [r["meta"]["value"] for r in buggy]


def test_real_valueeval_counts(study_data):
    args = load_arguments(study_data / "original" / "valueEval_10.csv")
    assert len(args) == 7374
    assert sum(a.stance == "in favor of" for a in args) == 4006
    assert sum(a.stance == "against" for a in args) == 3368
    sti = build_stage1(args, ValueProfile.extreme("Sti"))
    positives = [r for s in sti.values() for r in s if r["meta"]["polarity"] == "positive"]
    assert len(positives) == 1 and positives[0]["split"] == "train"


def test_real_value_split_gives_protocol_stage2_count(study_data):
    splits = load_survey(study_data / "original" / "argument_generation")
    assert len(splits["train"]) == 5899
    assert sum(len(a.values) for a in splits["train"]) == 16594


def test_touche_pair_collapses_level2_labels(shared_data):
    folder = shared_data / "touche23_valueeval"
    args = load_touche(folder / "arguments-training_sample.tsv")
    with (folder / "labels-training_sample.tsv").open(encoding="utf-8") as fh:
        labels = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    expected = {}
    for row in labels:
        flags = tuple(int(any(row[c] == "1" for c, b in TOUCHE_LEVEL2.items() if b == v)) for v in VALUES)
        if any(flags):  # only Face/Humility -> dropped, like the study's file
            expected[row["Argument ID"]] = flags
    assert len(labels) == 200 and len(args) == len(expected) < 200
    assert {a.argument_id: a.labels for a in args} == expected
    assert args[0].argument_id == "A01002" and args[0].stance == "in favor of"
    assert load_arguments(folder / "arguments-training_sample.tsv") == args  # auto-detected


@pytest.mark.parametrize("cell_index, value, field, needle", [
    (2, "maybe", "Stance", "stance"),
    (4, "2", "Achievement", "0 or 1"),
])
def test_bad_cells_name_file_row_and_column(tmp_path, cell_index, value, field, needle):
    good = _row(0, "c", "against", "p", {"Power"}).split("\t")
    bad = list(good)
    bad[cell_index] = value
    path = write_table(tmp_path / "bad.tsv", ["\t".join(good), "\t".join(bad)])
    with pytest.raises(InputError) as err:
        load_arguments(path)
    assert err.value.row == 3 and err.value.field == field and str(path) in str(err.value)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unlabelled_row_and_missing_column(tmp_path):
    path = write_table(tmp_path / "none.tsv", [_row(0, "c", "against", "p", set())])
    with pytest.raises(InputError, match="no value label") as err:
        load_arguments(path)
    assert err.value.row == 2
    header = HEADER.replace("\tPower", "")
    row = "\t".join(["0", "c", "against", "p"] + ["1"] * 9)
    with pytest.raises(InputError, match="missing value column") as err:
        load_arguments(write_table(tmp_path / "col.tsv", [row], header=header))
    assert err.value.field == "Power" and err.value.row == 1
