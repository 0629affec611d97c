"""Multi-adapter engine (vim.engine.MultiLoRAEngine) vs HF + peft on a tiny random Llama, and scoring-aware stopping."""

from __future__ import annotations

import contextlib
import copy
import json

import pytest
import torch

from benchmarks.rtp import rtp_text
from vim.engine.stopping import FirstSentenceStoppingCriteria, cut_first_sentence, first_sentence_stop
from valueharms.errors import InputError

RANKS = {"a0": 2, "a1": 4, "a2": 8}
PROMPTS = ["The person was known for", "Hi", "Tell me what you would say about the following statement: we should"]


def chat(tok, text: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)  # the session tokenizer is shared with other tests: don't change its padding
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="module")
def base(tok):
    """One tiny random Llama per module; tests take deep copies (cheaper than building new ones)."""
    from tiny import make_tiny_model

    return make_tiny_model(tok)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, base) -> dict[str, str]:
    """Three random LoRA adapters (ranks 2, 4, 8; different targets, one rsLoRA) with non-zero, enlarged B."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("adapters")
    targets = {"a0": ["q_proj", "v_proj"], "a1": ["q_proj", "v_proj", "down_proj"], "a2": ["k_proj", "o_proj", "up_proj"]}
    out = {}
    for i, (name, r) in enumerate(RANKS.items()):
        torch.manual_seed(100 + i)
        model = get_peft_model(copy.deepcopy(base), LoraConfig(
            r=r, lora_alpha=8, target_modules=targets[name], init_lora_weights=False, use_rslora=(name == "a1")))
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "lora_B" in pname:
                    p.mul_(4.0)
        model.save_pretrained(root / name)
        out[name] = str(root / name)
    return out


@pytest.fixture(scope="module")
def engine(tok, base, adapters):
    from vim.engine import MultiLoRAEngine

    return MultiLoRAEngine(copy.deepcopy(base), tok, adapters)


@pytest.fixture(scope="module")
def reference(tok, base, adapters) -> dict:
    """HF + peft greedy continuations, one prompt group (all PROMPTS) per adapter, base via disable_adapter."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(copy.deepcopy(base), adapters["a0"], adapter_name="a0")
    for name in ("a1", "a2"):
        model.load_adapter(adapters[name], adapter_name=name)
    enc = tok([chat(tok, p) for p in PROMPTS], return_tensors="pt", padding=True, add_special_tokens=False)
    ref = {}
    for name in (None, *RANKS):
        if name:
            model.set_adapter(name)
        ctx = model.disable_adapter() if name is None else contextlib.nullcontext()
        with ctx, torch.no_grad():
            out = model.generate(**enc, max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id)
        ref[name] = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return ref


def mixed_batch(tok):
    names = [None, "a0", "a1", "a2"]
    rows = [(p, n) for j, p in enumerate(PROMPTS) for n in names[j:] + names[:j]]  # interleaved adapters
    return [chat(tok, p) for p, _ in rows], [n for _, n in rows], rows


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_mixed_batch_equals_peft_greedy(tok, base, adapters, engine, reference, cache):
    from vim.engine import MultiLoRAEngine

    eng = engine if cache == "dynamic" else MultiLoRAEngine(copy.deepcopy(base), tok, adapters, cache=cache)
    inputs, names, rows = mixed_batch(tok)
    out = eng.generate(inputs, names, max_new_tokens=10, do_sample=False)
    expected = [reference[n][PROMPTS.index(p)] for p, n in rows]
    assert out == expected
    # the adapters really change the output (otherwise this test would prove nothing)
    for j in range(len(PROMPTS)):
        assert len({reference[n][j] for n in (None, *RANKS)}) == 1 + len(RANKS)


def test_single_adapter_batch_and_close(tok, base, adapters, reference):
    from vim.engine import MultiLoRAEngine, MultiLoRALinear

    base = copy.deepcopy(base)
    eng = MultiLoRAEngine(base, tok, adapters)
    inputs = [chat(tok, p) for p in PROMPTS]
    assert eng.generate(inputs, ["a1"] * 3, max_new_tokens=10, do_sample=False) == reference["a1"]
    assert eng.generate(inputs, [None] * 3, max_new_tokens=10, do_sample=False) == reference[None]
    # HF generate on the wrapped model is the base model; close() restores the plain Linears
    enc = tok(inputs, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        hf = base.generate(**enc, max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id)
    assert tok.batch_decode(hf[:, enc["input_ids"].shape[1]:], skip_special_tokens=True) == reference[None]
    eng.close()
    assert not any(isinstance(m, MultiLoRALinear) for m in base.modules())


def test_shared_prefill_equals_unshared(engine, tok):
    inputs, names = [], []
    for p, n in [(PROMPTS[0], "a0"), (PROMPTS[1], None), (PROMPTS[2], "a2")]:
        inputs += [chat(tok, p)] * 3
        names += [n] * 3
    kw = dict(max_new_tokens=10, do_sample=False)
    shared = engine.generate(inputs, names, share_prefill=True, **kw)
    assert shared == engine.generate(inputs, names, share_prefill=False, **kw)
    assert shared[0] == shared[1] == shared[2] and shared[0] != shared[3]


def test_sampling_seeded_and_stop_strings(engine, tok):
    inputs, names, _ = mixed_batch(tok)
    kw = dict(max_new_tokens=12, do_sample=True, temperature=1.0, top_p=0.9)
    a = engine.generate(inputs, names, seed=7, **kw)
    assert a == engine.generate(inputs, names, seed=7, **kw)
    assert a != engine.generate(inputs, names, seed=8, **kw)
    # stop strings: pick a substring from the middle of each greedy text; the stopped output is the text before it
    greedy = engine.generate(inputs, names, max_new_tokens=12, do_sample=False)
    for inp, name, text in list(zip(inputs, names, greedy))[:4]:
        stop = text[3:5]
        if len(stop) < 2 or not stop.isprintable():
            continue
        got = engine.generate([inp], [name], max_new_tokens=12, do_sample=False, stop=[stop, "never-matches"])
        assert got == [text[: text.find(stop)]]
    # mixed batch with per-row early stops (rows dropped from the batch mid-way) keeps the other rows intact
    stop = [greedy[0][2:4]]
    got = engine.generate(inputs, names, max_new_tokens=12, do_sample=False, stop=stop)
    assert got == [t[: t.find(stop[0])] if stop[0] in t else t for t in greedy]
    assert got[0] == greedy[0][: greedy[0].find(stop[0])]


def test_unknown_adapter_name(engine, tok):
    with pytest.raises(InputError, match="unknown adapter"):
        engine.generate([chat(tok, "x")], ["nope"], max_new_tokens=2)


@pytest.mark.parametrize("field,value", [("use_dora", True), ("bias", "all"), ("modules_to_save", ["lm_head"])])
def test_bad_adapter_config(tmp_path, tok, base, adapters, field, value):
    import shutil

    from vim.engine import MultiLoRAEngine, load_adapter

    bad = tmp_path / "bad"
    shutil.copytree(adapters["a0"], bad)
    cfg = json.loads((bad / "adapter_config.json").read_text())
    cfg[field] = value
    (bad / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError) as err:
        load_adapter("bad", bad)
    assert str(bad) in str(err.value) and field in str(err.value)
    if field == "use_dora":
        with pytest.raises(InputError, match="use_dora"):
            MultiLoRAEngine(copy.deepcopy(base), tok, {"ok": adapters["a1"], "bad": str(bad)})


def test_missing_adapter_folder(tmp_path, tok):
    from vim.engine import load_adapter

    with pytest.raises(InputError, match=str(tmp_path / "none")):
        load_adapter("x", tmp_path / "none")


# --------------------------------------------------------------------------------------- scoring-aware stopping
@pytest.mark.parametrize("cont", [" she said. Then more text. And more", " no period at all", " a.b.c", ". leading", ""])
def test_first_sentence_cut_keeps_scored_text(cont):
    prompt = "The person was known for"
    assert rtp_text(prompt, cut_first_sentence(cont)) == rtp_text(prompt, cont)
    assert first_sentence_stop(cont) == ("." in cont)


def test_first_sentence_criteria_same_rtp_text_greedy(tok, base):
    """HF greedy generate with FirstSentenceStoppingCriteria gives the same scored RTP text as without it."""
    from transformers import StoppingCriteriaList

    model = copy.deepcopy(base)
    dot = tok.convert_tokens_to_ids(".")
    with torch.no_grad():  # make '.' a likely token so the check is not vacuous
        model.lm_head.weight[dot] = model.lm_head.weight[dot] * 6
    prompts = ["The person was known for", "The woman worked as", "Because I think power is", "Hi", "QUESTION: How"]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=True)
    L = enc["input_ids"].shape[1]
    with torch.no_grad():
        full = model.generate(**enc, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)
        cut = model.generate(**enc, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id,
                             stopping_criteria=StoppingCriteriaList([FirstSentenceStoppingCriteria(tok, L)]))
    full_t = tok.batch_decode(full[:, L:], skip_special_tokens=True)
    cut_t = tok.batch_decode(cut[:, L:], skip_special_tokens=True)
    assert [rtp_text(p, c) for p, c in zip(prompts, cut_t)] == [rtp_text(p, f) for p, f in zip(prompts, full_t)]
    stopped = [c for c, f in zip(cut_t, full_t) if "." in c and len(c) < len(f)]
    assert stopped, "no row stopped early: the check would be vacuous"


# --------------------------------------------------------------------------------------- GenerationModule hookup
def test_generation_module_engine_backend_matches_hf(tiny_model_dir, tmp_path):
    """predict_step with backend="engine" (batches mixing adapters) writes the same greedy outputs as backend="hf".

    Drives the module directly (no Trainer) so both backends see exactly the batches ``batches()`` makes for them;
    the Trainer path is covered by test_generation and test_predict_cli."""
    from types import SimpleNamespace

    from test_generation import datamodule, make_adapters

    from benchmarks.generation import GenerationModule
    from valueharms.model_loading import load_model, load_tokenizer

    make_adapters(tiny_model_dir, tmp_path / "adapters")
    outs = {}
    for backend in ("hf", "engine"):
        dm = datamodule(tmp_path / f"{backend}.jsonl", adapters_root=str(tmp_path / "adapters"), mitigations=["none"],
                        batch_size=8, limit=1, max_new_tokens=8)
        dm.setup()
        module = GenerationModule(model=str(tiny_model_dir), greedy=True, backend=backend)
        module.tokenizer = load_tokenizer(str(tiny_model_dir), padding_side="left")
        module.set_adapters(load_model(str(tiny_model_dir)),
                            {c.adapter_name: c.adapter for c in dm.conditions if c.adapter})
        dm.trainer = SimpleNamespace(lightning_module=module)  # what batches() reads to pick the grouping
        batches = dm.batches()
        if backend == "engine":  # the engine's batches mix the two adapters' conditions
            assert any(len({dm.items[i]["condition"].name for i in b}) > 1 for b in batches)
        else:
            assert all(len({dm.items[i]["condition"].name for i in b}) == 1 for b in batches)
        recs = [r for b in batches for r in module.predict_step([dm.items[i] for i in b])]
        assert len(recs) == len(dm.items) and all(r["backend"] == backend for r in recs)
        outs[backend] = {r["key"]: r for r in recs}
    assert outs["hf"].keys() == outs["engine"].keys()
    for key, rec in outs["engine"].items():
        ref = outs["hf"][key]
        assert (rec["output"], rec["condition"], rec["adapter"]) == (ref["output"], ref["condition"], ref["adapter"])
    assert {r["condition"] for r in outs["engine"].values()} == {"vanilla", "vim:Pow", "vim:Uni"}
    assert len({r["output"] for r in outs["engine"].values() if r["benchmark"] == "beavertails"}) > 1


def test_eos_ends_each_row_at_its_first_eos(tok, engine):
    """Rows stop at their own first EOS (lengths per row; later tokens are padding), in a mixed-adapter batch."""
    enc = tok([chat(tok, p) for p in PROMPTS], return_tensors="pt", padding=True, add_special_tokens=False)
    names = [None, "a0", "a2"]
    free, _ = engine.generate_ids(enc["input_ids"], enc["attention_mask"], names, max_new_tokens=8,
                                  do_sample=False, ignore_eos=True)
    eos = int(free[0, 3])  # pretend the token row 0 generates at step 3 is EOS
    saved = engine.eos_ids
    engine.eos_ids = [eos]
    try:
        tokens, ends = engine.generate_ids(enc["input_ids"], enc["attention_mask"], names, max_new_tokens=8,
                                           do_sample=False)
    finally:
        engine.eos_ids = saved
    expected = [row.index(eos) if eos in row else 8 for row in free.tolist()]
    assert ends == expected and ends[0] <= 3
    for row, end, ref in zip(tokens.tolist(), ends, free.tolist()):
        assert row[:end + 1] == ref[:end + 1]  # same tokens up to and including the EOS
        assert all(t == engine.pad_id for t in row[end + 1:])  # nothing generated after it
