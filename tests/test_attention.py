"""Variable-length attention for packed rows (vim.attention): same loss and gradients as padded batches, the
kernel call in both torch signatures, and which kernel ``auto`` picks where."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vim import attention
from vim.collate import PadCollator
from vim.packing import PackedCollator, prepare_model_for_packing


def _examples(n: int = 5) -> list[dict]:
    g = torch.Generator().manual_seed(3)
    out = []
    for i in range(n):
        length = 4 + 3 * i
        ids = torch.randint(10, 400, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [-100] * 2 + ids[2:]})
    return out


def _loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids", "labels") if k in batch}
    loss = model(**inputs, use_cache=False).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if "q_proj" in n or "v_proj" in n}


def test_varlen_packed_and_padded_equal_dense_padded(tiny_tokenizer, tiny_model):
    prepare_model_for_packing(tiny_model)
    ex = _examples()
    padded, packed = PadCollator(tiny_tokenizer.pad_token_id)(ex), PackedCollator(tiny_tokenizer)(ex)
    tiny_model.set_attn_implementation("sdpa")
    ref_loss, ref_grads = _loss_and_grads(tiny_model, padded)
    tiny_model.set_attn_implementation(attention.register_varlen_attention())
    for batch in (packed, padded):  # packed rows from position_ids; padded rows unpadded through the mask
        loss, grads = _loss_and_grads(tiny_model, batch)
        assert loss == pytest.approx(ref_loss, abs=1e-5)
        for name, grad in ref_grads.items():
            torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4)
    assert attention.kernel_report(tiny_model, packed=True).startswith("torch_varlen (one SDPA per example")
    with torch.no_grad():  # without the restarts the row is one long sequence: the loss must differ
        leaky = tiny_model(input_ids=packed["input_ids"], labels=packed["labels"], use_cache=False).loss
    assert abs(float(leaky) - ref_loss) > 1e-3


def test_boundaries_are_computed_once_per_forward_not_per_layer(tiny_tokenizer, tiny_model, monkeypatch):
    """Every layer gets the same position_ids / padding mask: one boundary computation (one host sync) a forward."""
    calls = []
    for name in ("_position_boundaries", "_mask_boundaries"):
        real = getattr(attention, name)
        monkeypatch.setattr(attention, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    prepare_model_for_packing(tiny_model)
    tiny_model.set_attn_implementation(attention.register_varlen_attention())
    assert tiny_model.config.num_hidden_layers > 1
    ex = _examples()
    for batch, name in ((PackedCollator(tiny_tokenizer)(ex), "_position_boundaries"),
                        (PadCollator(tiny_tokenizer.pad_token_id)(ex), "_mask_boundaries")):
        for _ in range(2):  # two forwards on new tensors (a new step): each computes its boundaries once
            calls.clear()
            _loss_and_grads(tiny_model, {k: v.clone() for k, v in batch.items() if torch.is_tensor(v)})
            assert calls == [name]


def _reference(q, k, v, cu, cu_k, max_q, max_k, **kwargs):
    """A CPU stand-in for torch's CUDA varlen kernel (checks the arguments it is given)."""
    assert cu.dtype == torch.int32 and torch.equal(cu, cu_k) and max_q == max_k == int((cu[1:] - cu[:-1]).max())
    if "window_size" in kwargs:
        assert kwargs["window_size"] == (-1, 0)
    else:
        assert kwargs["is_causal"] is True
    if kwargs.get("enable_gqa") is None:
        assert k.shape[1] == q.shape[1]  # the old signature needs the KV heads repeated
    return attention._per_segment_sdpa(q, k, v, cu, kwargs.get("scale"))


def _new_signature(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None,
                   window_size=(-1, -1), enable_gqa=False):
    return _reference(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, scale=scale, window_size=window_size,
                      enable_gqa=enable_gqa)


def _old_signature(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, return_aux=None):
    return _reference(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=is_causal)


@pytest.mark.parametrize("kernel", [_new_signature, _old_signature])
def test_kernel_call_adapts_to_the_torch_signature(tiny_tokenizer, tiny_model, monkeypatch, kernel):
    """The CUDA path's argument building, run on CPU against a stand-in with each torch API shape (GQA model)."""
    prepare_model_for_packing(tiny_model)
    ex = _examples(4)
    padded, packed = PadCollator(tiny_tokenizer.pad_token_id)(ex), PackedCollator(tiny_tokenizer)(ex)
    with torch.no_grad():
        ref = tiny_model(**{k: padded[k] for k in ("input_ids", "attention_mask", "labels")}).loss
    monkeypatch.setattr(attention, "_flash_kernel", lambda q: kernel)
    tiny_model.set_attn_implementation(attention.register_varlen_attention())
    with torch.no_grad():
        got = tiny_model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], labels=packed["labels"],
                         use_cache=False).loss
    assert float(got) == pytest.approx(float(ref), abs=1e-5)
    assert "FlashAttention varlen kernel" in attention.kernel_report(tiny_model, packed=True)


def test_boundaries_from_collator_kwargs_and_position_ids(tiny_tokenizer):
    ex = _examples(3)
    batch = PackedCollator(tiny_tokenizer, flash_kwargs=True)(ex)
    module = torch.nn.Linear(2, 2)
    from_kwargs = attention._boundaries(module, 1, batch["input_ids"].shape[1], dict(batch))
    no_cu = {k: v for k, v in batch.items() if not k.startswith(("cu_seq", "max_length"))}
    from_pos = attention._boundaries(module, 1, batch["input_ids"].shape[1], no_cu)
    lengths = [len(e["input_ids"]) for e in ex]
    expected = F.pad(torch.tensor(lengths).cumsum(0), (1, 0)).tolist()
    assert from_kwargs[0].tolist() == from_pos[0].tolist() == expected
    assert from_kwargs[1] == from_pos[1] == max(lengths)


def test_auto_picks_varlen_on_cuda_and_sdpa_on_cpu(monkeypatch):
    assert attention.resolve_attn_implementation(None, device_type="cuda", dtype=torch.bfloat16) is None
    assert attention.resolve_attn_implementation("auto", device_type="cpu", dtype=torch.float32) == "sdpa"
    assert attention.resolve_attn_implementation("eager", device_type="cpu", dtype=None) == "eager"
    monkeypatch.setattr(attention, "_torch_varlen_fn", lambda: _new_signature)
    assert attention.resolve_attn_implementation("auto", device_type="cuda", dtype=torch.bfloat16) == attention.VARLEN
    # fp32 has no flash kernel: the block-sparse flex path is next
    assert attention.resolve_attn_implementation("auto", device_type="cuda", dtype=torch.float32) == "flex_attention"
    monkeypatch.setattr(attention, "_torch_varlen_fn", lambda: None)
    assert attention.resolve_attn_implementation("auto", device_type="cuda", dtype=torch.bfloat16) in (
        "flash_attention_2", "flex_attention")


def test_flex_attention_document_mask_equals_padded(tiny_tokenizer, tiny_model):
    """transformers' flex path (compiled; forward only: no flex backward on CPU) on a packed row."""
    prepare_model_for_packing(tiny_model)
    ex = _examples(3)
    padded, packed = PadCollator(tiny_tokenizer.pad_token_id)(ex), PackedCollator(tiny_tokenizer)(ex)
    with torch.no_grad():
        ref = tiny_model(**{k: padded[k] for k in ("input_ids", "attention_mask", "labels")}).loss
        tiny_model.set_attn_implementation("flex_attention")
        got = tiny_model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], labels=packed["labels"],
                         use_cache=False).loss
    assert float(got) == pytest.approx(float(ref), abs=1e-5)
    assert attention.kernel_report(tiny_model, packed=True) == "flex_attention (document block mask)"
