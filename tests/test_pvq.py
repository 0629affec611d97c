"""PVQ-40: parsing, scoring against a hand-computed fixture, and one run with the tiny model + a LoRA adapter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.pvq import ITEM_KEY, PLACEHOLDER_ITEMS, alignment_mse, parse_answer, pvq, read_items, summarize, value_scores
from valueharms.errors import InputError
from valueharms.values import VALUES


@pytest.mark.parametrize("text,expected", [
    (" 5. Like me", 5), ("my answer is 3.", 3), ("Very much like me", 6), ("It is not like me at all", 1),
    ("Somewhat like me, so 2", 4), ("I would say 10 or 7", None), ("no idea", None), ("Like me.", 5),
])
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected


def test_item_key_covers_40_items_once():
    items = sorted(i for v in ITEM_KEY.values() for i in v)
    assert items == list(range(1, 41)) and set(ITEM_KEY) == set(VALUES)


def test_scoring_matches_hand_computed_fixture():
    # Power items 2,17,39 answered 6,5,missing -> 5.5; Hedonism 10,26,37 -> 1,2,3 -> 2; the rest all 4;
    # Stimulation all missing -> excluded from the MSE.
    answers = {i: 4 for i in range(1, 41)}
    answers.update({2: 6, 17: 5, 39: None, 10: 1, 26: 2, 37: 3, 6: None, 15: None, 30: None})
    scores = value_scores(answers)
    assert scores["Power"] == 5.5 and scores["Hedonism"] == 2.0 and scores["Achievement"] == 4.0
    assert np.isnan(scores["Stimulation"])
    target = {v: 1.0 for v in VALUES} | {"Power": 6.0}
    # per value ((pred-1)/5 - (target-1)/5)^2: Power (4.5-5)^2/25=0.01, Hedonism 1/25=0.04, 7 others 9/25=0.36
    expected = (0.01 + 0.04 + 7 * 0.36) / 9
    assert alignment_mse(scores, target) == pytest.approx(expected)
    frame = pd.DataFrame({"kind": "vim", "distribution": "Pow", "item": list(answers),
                          "answer": [np.nan if a is None else a for a in answers.values()]})
    row = summarize(frame, {"Pow": target}).iloc[0]
    assert row["mse"] == pytest.approx(expected) and row["missing"] == 4


def test_items_file_must_have_40_lines(tmp_path):
    assert len(read_items(PLACEHOLDER_ITEMS)) == 40
    bad = tmp_path / "items.txt"
    bad.write_text("one\ntwo\n")
    with pytest.raises(InputError, match="found 2"):
        read_items(bad)


def _tiny_adapter(tiny_model_dir, path, name, values):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from valueharms.adapters import write_metadata
    from valueharms.values import ValueProfile

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(path)
    write_metadata(path, kind="vim", name=name, base_model=str(tiny_model_dir),
                   profile=ValueProfile.from_mapping(name, values), complete=True)


def test_pvq_end_to_end_with_tiny_model(tiny_model_dir, tmp_path):
    adapters = tmp_path / "adapters"
    _tiny_adapter(tiny_model_dir, adapters / "A", "A", {v: 1.0 + i % 6 for i, v in enumerate(VALUES)})
    summary = pvq(adapters=str(adapters), model=str(tiny_model_dir), out=str(tmp_path / "report"), max_new_tokens=2, batch_size=40)
    answers = [json.loads(line) for line in (tmp_path / "report" / "pvq_answers.jsonl").read_text().splitlines()]
    assert len(answers) == 2 * 40 and {a["kind"] for a in answers} == {"vim", "icl"}
    assert all("Statement: 'PLACEHOLDER item" in a["model_input"] for a in answers)
    assert summary["placeholder_items"] and summary["distributions"] == 1
    assert summary["missing_answers"] == sum(a["answer"] is None for a in answers)
    scores = pd.read_csv(tmp_path / "report" / "pvq_scores.csv")
    assert set(scores["kind"]) == {"vim", "icl"} and len(scores) == 2
    # rerun resumes: nothing new is generated
    pvq(adapters=str(adapters), model=str(tiny_model_dir), out=str(tmp_path / "report"), max_new_tokens=2)
    assert len((tmp_path / "report" / "pvq_answers.jsonl").read_text().splitlines()) == len(answers)
