"""PVQ-40: parsing, scoring against a hand-computed fixture, option log-likelihoods against plain forwards, and runs
with the tiny model + a LoRA adapter in both answer modes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.pvq import (ITEM_KEY, PLACEHOLDER_ITEMS, alignment_mse, answer_options, model_prompt, parse_answer, pvq,
                          read_items, summarize, value_scores)
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


def test_prompt_is_the_stage2_instruction_and_options_are_the_stage2_answers(tiny_tokenizer):
    from valueharms.prompts import VIM_SYSTEM_PROMPT
    from vim.data import STAGE2_PROMPT, build_stage2
    from vim.collate import chat_prompt_text

    question = STAGE2_PROMPT.format(statement="I like power.")
    # chat template: exactly the stage-2 training head (system prompt + user turn + assistant header)
    assert model_prompt("I like power.", tiny_tokenizer, None, None) == chat_prompt_text(
        tiny_tokenizer, question, VIM_SYSTEM_PROMPT)
    assert model_prompt("I like power.", tiny_tokenizer, None, False) == question  # plain model: verbatim
    options = answer_options(2, question)  # item 2 is a Power item
    assert options[5] == " Because I think power is very important to me,"
    assert options[0] == " Because I think power is not important to me at all,"
    assert len(set(options)) == 6 and not any(a != b and b.startswith(a) for a in options for b in options)
    # the same sentence the stage-2 builder writes as a training target
    from vim.data import Argument

    arg = Argument("a1", "power", "in favor of", "x", tuple(int(v == "Power") for v in VALUES))
    from valueharms.values import ValueProfile

    target = build_stage2({"train": [arg]}, ValueProfile.extreme("Pow"))["train"][0]["target"]
    assert (" " + target).startswith(options[5]) and target.endswith("my answer is 6.")


def _tiny_adapter(tiny_model_dir, path, name, values, scale=1.0):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from valueharms.adapters import write_metadata
    from valueharms.values import ValueProfile

    torch.manual_seed(3)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.mul_(scale)
    model.save_pretrained(path)
    write_metadata(path, kind="vim", name=name, base_model=str(tiny_model_dir),
                   profile=ValueProfile.from_mapping(name, values), complete=True)


@pytest.mark.parametrize("chat", [True, False])
def test_option_logliks_equal_plain_forwards(tiny_model_dir, tmp_path, chat):
    """The packed prefix-tree scoring gives what one full forward per (prompt, option) gives, adapter on or off."""
    import torch

    from valueharms.adapters import attach_adapters
    from valueharms.loglik import encode_pair, option_logliks
    from valueharms.model_loading import load_model, load_tokenizer

    _tiny_adapter(tiny_model_dir, tmp_path / "A", "A", {v: 3.0 for v in VALUES}, scale=20.0)
    tok = load_tokenizer(str(tiny_model_dir))
    if not chat:
        tok.chat_template = None
    model = attach_adapters(load_model(str(tiny_model_dir)), {"a": tmp_path / "A"}).eval()
    prompts = [model_prompt(t, tok, None, None) for t in ("I like power.", "I help people.", "x")]
    options = [answer_options(2, prompts[0]), answer_options(12, prompts[1])[:3], [" yes"]]

    def plain(prompt: str, option: str) -> float:
        ids, start = encode_pair(tok, prompt, option)
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        return sum(float(lp[k - 1, ids[k]]) for k in range(start, len(ids)))

    for adapter in ("a", None):
        got = option_logliks(model, tok, prompts, options, adapter=adapter, max_tokens=64)  # forces several chunks
        from valueharms.decode import adapter_context

        with adapter_context(model, adapter):
            expected = [[plain(p, o) for o in opts] for p, opts in zip(prompts, options)]
        assert np.allclose(np.array(got[0] + got[1] + got[2]), np.array(expected[0] + expected[1] + expected[2]),
                           atol=1e-3), (adapter, got, expected)
    assert got != option_logliks(model, tok, prompts, options, adapter="a")  # the adapter changes the scores


def test_pvq_loglik_and_generate_with_tiny_model(tiny_model_dir, tmp_path):
    study = tmp_path / "study"
    _tiny_adapter(tiny_model_dir, study / "adapters" / "A", "A", {v: 1.0 + i % 6 for i, v in enumerate(VALUES)})
    summary = pvq(str(study), batch_size=40)  # RUN = the study folder: adapters/ in, report/ out
    path = study / "report" / "pvq_answers.jsonl"
    answers = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(answers) == 2 * 40 and {a["kind"] for a in answers} == {"vim", "icl"}
    assert summary["mode"] == "loglik" and summary["missing_answers"] == 0 and summary["unparseable"] == 0
    for a in answers:
        assert "Statement: 'PLACEHOLDER item" in a["model_input"] and len(a["logliks"]) == 6
        assert a["answer"] == int(np.argmax(a["logliks"])) + 1
        assert a["output"] == answer_options(a["item"], a["model_input"])[a["answer"] - 1].strip()
    from valueharms.prompts import VIM_SYSTEM_PROMPT

    assert all((VIM_SYSTEM_PROMPT in a["model_input"]) == (a["kind"] == "vim") for a in answers)
    assert summary["placeholder_items"] and summary["distributions"] == 1
    scores = pd.read_csv(study / "report" / "pvq_scores.csv")
    assert set(scores["kind"]) == {"vim", "icl"} and len(scores) == 2
    # rerun resumes: nothing new is asked
    pvq(str(study / "adapters"))
    assert len(path.read_text().splitlines()) == len(answers)

    gen = pvq(str(study), mode="generate", icl=False, max_new_tokens=2, out=str(tmp_path / "gen"))
    rows = [json.loads(line) for line in (tmp_path / "gen" / "pvq_answers.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and all("logliks" not in r and isinstance(r["output"], str) for r in rows)
    assert gen["mode"] == "generate" and gen["missing_answers"] == sum(r["answer"] is None for r in rows)
    with pytest.raises(InputError, match="unknown mode"):
        pvq(str(study), mode="parse")


def test_loglik_norm_picks_by_score_per_byte(monkeypatch):
    """The long 'not important to me at all' loses on its summed log-likelihood, wins per byte."""
    import valueharms.loglik
    from analysis.pvq import ask

    prompt = "Q"
    options = answer_options(1, prompt)  # ask() numbers its prompts as items 1, 2, ...
    per_byte = [-0.5 if i == 0 else -0.6 for i in range(6)]
    raw = [r * len(o.encode("utf-8")) for r, o in zip(per_byte, options)]
    monkeypatch.setattr(valueharms.loglik, "option_logliks", lambda *a, **k: [raw])
    summed = ask(None, None, [prompt], adapter=None, mode="loglik", icl=False)[0]
    normed = ask(None, None, [prompt], adapter=None, mode="loglik_norm", icl=False)[0]
    assert summed["answer"] == int(np.argmax(raw)) + 1 != 1
    assert normed["answer"] == 1 and normed["logliks"] == [round(x, 4) for x in raw]
    assert normed["per_byte"] == [round(x, 5) for x in per_byte] and "per_byte" not in summed
