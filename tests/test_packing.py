"""Packed (padding-free) batches give exactly the padded loss, and the token budget holds."""

from __future__ import annotations

import pytest
import torch

from vim.collate import PadCollator
from vim.packing import PackedCollator, TokenBudgetBatchSampler, pack_budget, prepare_model_for_packing


def _examples(n: int = 5) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        prompt_len, target_len = 3 + 2 * i, 2 + (i * 3) % 7
        ids = torch.randint(10, 400, (prompt_len + target_len,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [-100] * prompt_len + ids[prompt_len:], "stage": 1})
    return out


def test_collator_shapes_positions_and_labels(tiny_tokenizer):
    ex = _examples(3)
    batch = PackedCollator(tiny_tokenizer)(ex)
    total = sum(len(e["input_ids"]) for e in ex)
    assert batch["input_ids"].shape == (1, total) and "attention_mask" not in batch
    pos = batch["position_ids"][0].tolist()
    starts = [i for i, p in enumerate(pos) if p == 0]
    assert starts == [0, len(ex[0]["input_ids"]), len(ex[0]["input_ids"]) + len(ex[1]["input_ids"])]
    assert all(batch["labels"][0, s].item() == -100 for s in starts)  # no cross-example target
    assert batch["num_examples"] == 3 and batch["stage"].tolist() == [1]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_padded_loss(tiny_tokenizer, tiny_model, attn):
    tiny_model.set_attn_implementation(attn)
    assert tiny_model.config.use_cache  # the pitfall: with a cache, transformers ignores the packing
    prepare_model_for_packing(tiny_model)
    assert not tiny_model.config.use_cache
    ex = _examples(5)
    padded = PadCollator(tiny_tokenizer.pad_token_id)(ex)
    packed = PackedCollator(tiny_tokenizer)(ex)
    with torch.no_grad():
        loss_pad = tiny_model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"],
                              labels=padded["labels"]).loss
        out = tiny_model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], labels=packed["labels"])
        # without position_ids the examples would attend to each other: the loss must then differ
        leaky = tiny_model(input_ids=packed["input_ids"], labels=packed["labels"]).loss
    assert abs(out.loss.item() - loss_pad.item()) < 1e-5
    assert abs(leaky.item() - loss_pad.item()) > 1e-4
    # per-token logits match the padded rows too (the block-diagonal mask really isolates each example)
    with torch.no_grad():
        logits_pad = tiny_model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
    offset = 0
    for row, e in enumerate(ex):
        n = len(e["input_ids"])
        torch.testing.assert_close(out.logits[0, offset:offset + n], logits_pad[row, :n], atol=1e-4, rtol=1e-4)
        offset += n


def test_max_tokens_rejects_oversized_batch(tiny_tokenizer):
    with pytest.raises(ValueError, match="max_tokens"):
        PackedCollator(tiny_tokenizer, max_tokens=10)(_examples(3))


def test_token_budget_sampler_covers_everything_within_budget():
    lengths = [5, 17, 3, 40, 9, 9, 12, 1, 30, 8] * 7
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=48, seed=3)
    batches = list(sampler)
    seen = sorted(i for b in batches for i in b)
    assert seen == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 48 for b in batches)
    assert len(sampler) == len(batches)
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled per epoch
    assert pack_budget([100, 2], 10) == [[0], [1]]  # an over-long example is kept, alone


def test_pad_to_multiple_adds_a_separate_filler_without_loss(tiny_tokenizer, tiny_model):
    prepare_model_for_packing(tiny_model)
    ex = _examples(3)
    plain = PackedCollator(tiny_tokenizer)(ex)
    padded = PackedCollator(tiny_tokenizer, pad_to_multiple_of=16)(ex)
    total = plain["input_ids"].shape[1]
    assert padded["input_ids"].shape[1] % 16 == 0 and padded["input_ids"].shape[1] > total
    filler = padded["position_ids"][0, total:].tolist()
    assert filler == list(range(len(filler))) and (padded["labels"][0, total:] == -100).all()
    with torch.no_grad():
        a = tiny_model(**{k: plain[k] for k in ("input_ids", "position_ids", "labels")}).loss
        b = tiny_model(**{k: padded[k] for k in ("input_ids", "position_ids", "labels")}).loss
    assert abs(a.item() - b.item()) < 1e-6
