"""Stage-2 agreement metrics: six candidate answers scored by likelihood; the shared-prompt pass equals six full
teacher-forced passes."""

from __future__ import annotations

import pytest
import torch

from test_datamodule import stage2_example_target
from vim.agreement import (build_items, candidate_logprobs, candidates, full_logprobs, predict_scores, shard,
                           target_score)
from vim.collate import encode_example


def _items(tokenizer, prompts, max_length=256, chat=False):
    rows = [{"prompt": p, "target": stage2_example_target("Power", s), "meta": {"value": "Power"}}
            for p, s in zip(prompts, (6, 2, 4))]

    def encode(prompt, target):
        return encode_example(tokenizer, prompt, target, max_length=max_length, chat=chat,
                              system_prompt="Be a person." if chat else None)

    return build_items(rows, encode, limit=None)


def test_candidates_and_targets():
    assert candidates("Power")[5] == "Because I think power is very important to me, my answer is 6."
    assert target_score(stage2_example_target("Hedonism", 3)) == 3
    assert target_score("I would say, something") is None


@pytest.mark.parametrize("chat", [False, True])
def test_shared_prompt_pass_equals_full_passes(tiny_model, tiny_tokenizer, chat):
    prompts = ["Indicate for the following statement. Statement: 'the a an'. Answer:",
               "Indicate 1. Answer:", "Indicate for the following statement whether it is 2. Answer:"]
    items = _items(tiny_tokenizer, prompts, chat=chat)
    assert [it["target"] for it in items] == [6, 2, 4]
    with torch.no_grad():
        shared = candidate_logprobs(tiny_model, items, tiny_tokenizer.pad_token_id, torch.device("cpu"))
        full = full_logprobs(tiny_model, items, tiny_tokenizer.pad_token_id, torch.device("cpu"))
    assert shared.shape == (3, 6)
    torch.testing.assert_close(shared, full, atol=1e-4, rtol=1e-4)
    preds = predict_scores(tiny_model, items, tiny_tokenizer.pad_token_id, torch.device("cpu"), batch_items=2)
    assert preds.tolist() == (full.argmax(1) + 1).tolist()


def test_truncated_candidates_fall_back_to_full_passes(tiny_model, tiny_tokenizer):
    long_prompt = "Indicate " + "the a an and or not " * 30 + "Answer:"
    items = _items(tiny_tokenizer, [long_prompt], max_length=40)  # keep_target cuts each candidate's prompt differently
    with torch.no_grad():
        got = candidate_logprobs(tiny_model, items, tiny_tokenizer.pad_token_id, torch.device("cpu"))
        want = full_logprobs(tiny_model, items, tiny_tokenizer.pad_token_id, torch.device("cpu"))
    torch.testing.assert_close(got, want)


def test_shard_pads_ranks_to_the_same_length():
    items = [{"target": i} for i in range(5)]
    (a, real_a), (b, real_b) = shard(items, 0, 2), shard(items, 1, 2)
    assert len(a) == len(b) == 3 and (real_a, real_b) == (3, 2)
    assert [x["target"] for x in a[:real_a] + b[:real_b]] == [0, 2, 4, 1, 3]
