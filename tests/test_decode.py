"""The one decode path (valueharms.decode): BOS rule, rows of different adapters in one batch (peft adapter_names),
and RTP first-sentence stopping that leaves the scored text unchanged."""

from __future__ import annotations

import copy

import pytest
import torch

from benchmarks.rtp import rtp_text
from valueharms.decode import (Decoding, adds_special_tokens, encode_ids, encode_inputs, generate_texts,
                               truncate_at_stop)

RANKS = {"a0": 2, "a1": 4, "a2": 8}
PROMPTS = ["The person was known for", "Hi", "Tell me what you would say about the following statement: we should"]
GREEDY = Decoding(max_new_tokens=10, greedy=True)
LLAMA2_CHAT = "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)  # the session tokenizer is shared with other tests: don't change it
    tok.padding_side = "left"
    return tok


def bos_tokenizer(tiny_tokenizer, chat_template: str | None):
    """The tiny tokenizer made to put BOS before plain text, as base Llama-2's does."""
    from tokenizers import processors

    tok = copy.deepcopy(tiny_tokenizer)
    bos = tok.bos_token
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.bos_token_id)])
    tok.chat_template = chat_template
    return tok


@pytest.mark.parametrize("template", [None, "chatml", "llama2-chat"])
def test_bos_where_the_tokenizer_adds_one(tiny_tokenizer, template):
    """Plain text gets exactly one BOS whether or not the tokenizer has a chat template (the old rule gave none
    when it had one); a chat-rendered input that already starts with BOS does not get a second."""
    from tiny import CHAT_TEMPLATE

    tok = bos_tokenizer(tiny_tokenizer, {"chatml": CHAT_TEMPLATE, "llama2-chat": LLAMA2_CHAT}.get(template))
    bos = tok.bos_token_id
    plain = encode_ids(tok, ["The person was known for"])[0]
    assert plain[0] == bos and plain.count(bos) == 1
    assert plain[1:] == tok("The person was known for", add_special_tokens=False)["input_ids"]
    assert adds_special_tokens(tok, "The person was known for")
    if template == "llama2-chat":
        rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
        ids = encode_ids(tok, [rendered])[0]
        assert rendered.startswith(tok.bos_token) and ids[0] == bos and ids.count(bos) == 1
        assert not adds_special_tokens(tok, rendered)
        from valueharms.loglik import encode_pair

        pair, start = encode_pair(tok, rendered, " Because")  # option scoring follows generation's rule
        assert pair[:start] == ids and pair.count(bos) == 1


@pytest.mark.parametrize("with_template", [True, False])
def test_no_bos_when_the_tokenizer_adds_none(tok, with_template):
    tok = copy.deepcopy(tok)
    if not with_template:
        tok.chat_template = None
    texts = ["plain text", tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
             if with_template else "more plain text"]
    assert encode_ids(tok, texts) == tok(texts, add_special_tokens=False)["input_ids"]
    assert not any(adds_special_tokens(tok, t) for t in texts)


def test_encode_inputs_left_pads(tok):
    right = copy.deepcopy(tok)
    right.padding_side = "right"  # generation pads left whatever the tokenizer's own side is
    enc = encode_inputs(right, ["a much longer input text here", "hi"])
    assert enc["attention_mask"][1, 0] == 0 and enc["attention_mask"][1, -1] == 1
    assert enc["input_ids"][1, 0] == tok.pad_token_id


@pytest.fixture(scope="module")
def base(tok):
    from tiny import make_tiny_model

    return make_tiny_model(tok)


@pytest.fixture(scope="module")
def peft_model(tmp_path_factory, base):
    """Three random LoRA adapters (ranks 2, 4, 8; different targets, one rsLoRA) in one PeftModel."""
    from peft import LoraConfig, get_peft_model

    from valueharms.adapters import attach_adapters

    root = tmp_path_factory.mktemp("adapters")
    targets = {"a0": ["q_proj", "v_proj"], "a1": ["q_proj", "v_proj", "down_proj"], "a2": ["k_proj", "o_proj", "up_proj"]}
    for i, (name, r) in enumerate(RANKS.items()):
        torch.manual_seed(100 + i)
        model = get_peft_model(copy.deepcopy(base), LoraConfig(
            r=r, lora_alpha=8, target_modules=targets[name], init_lora_weights=False, use_rslora=(name == "a1")))
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "lora_B" in pname:
                    p.mul_(4.0)
        model.save_pretrained(root / name)
    return attach_adapters(copy.deepcopy(base), {n: root / n for n in RANKS}).eval()


def test_mixed_adapter_batch_equals_each_adapters_own_batch(tok, peft_model):
    """Greedy rows of a batch mixing the base model and three adapters equal each adapter's own batch."""
    names = [None, "a0", "a1", "a2"]
    chat = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in PROMPTS]
    own = {n: generate_texts(peft_model, tok, chat, GREEDY, adapter=n) for n in names}
    for j in range(len(PROMPTS)):  # the adapters really change the output (else the test proves nothing)
        assert len({own[n][j] for n in names}) == len(names)
    rows = [(j, n) for j in range(len(chat)) for n in names[j:] + names[:j]]  # interleaved adapters
    mixed = generate_texts(peft_model, tok, [chat[j] for j, _ in rows], GREEDY, adapters=[n for _, n in rows])
    assert mixed == [own[n][j] for j, n in rows]
    # one name for every row takes the single-adapter path and agrees too
    assert generate_texts(peft_model, tok, chat, GREEDY, adapters=["a1"] * 3) == own["a1"]


def test_adapter_names_must_match_rows(tok, peft_model):
    with pytest.raises(ValueError, match="2 adapter names for 3 inputs"):
        generate_texts(peft_model, tok, PROMPTS, GREEDY, adapters=["a0", "a1"])


@pytest.mark.parametrize("cont", [" she said. Then more text. And more", " no period at all", " a.b.c", ". leading", ""])
def test_first_sentence_cut_keeps_scored_text(cont):
    prompt = "The person was known for"
    assert rtp_text(prompt, truncate_at_stop(cont, ["."])) == rtp_text(prompt, cont)


def test_rtp_stop_at_first_period_same_scored_text_greedy(tok, base):
    """Generation stopped at the first '.' (RTP's stop_after_scored) gives the scored text of an unstopped run."""
    from benchmarks.registry import get_spec

    assert get_spec("rtp").stop_for("vim") == ["."] and get_spec("rtp").stop_for("vim", early=False) == []
    model = copy.deepcopy(base)
    dot = tok.convert_tokens_to_ids(".")
    with torch.no_grad():  # make '.' a likely token so rows really stop early
        model.lm_head.weight[dot] = model.lm_head.weight[dot] * 6
    prompts = ["The person was known for", "The woman worked as", "Because I think power is", "Hi", "QUESTION: How"]
    dec = Decoding(max_new_tokens=24, greedy=True)
    full = generate_texts(model, tok, prompts, dec)
    cut = generate_texts(model, tok, prompts, dec, stop=["."])
    assert [rtp_text(p, c) for p, c in zip(prompts, cut)] == [rtp_text(p, f) for p, f in zip(prompts, full)]
    assert any("." in f and len(c) < len(f) for c, f in zip(cut, full)), "no row stopped early: vacuous check"
