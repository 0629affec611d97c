"""Generation runner on the tiny model: batching, resume after a crash, mitigation text, adapter provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lightning.pytorch import Callback, Trainer

from benchmarks.generation import BenchmarkDataModule, GenerationModule, truncate_at_stop
from valueharms.prompts import DEFAULT_SAFETY_PROMPT, suppression_text

REPO = Path(__file__).resolve().parents[1]


def make_adapters(model_dir: Path, root: Path) -> None:
    from peft import LoraConfig, get_peft_model

    from valueharms.adapters import write_metadata
    from valueharms.model_loading import load_model
    from valueharms.values import ValueProfile

    for i, name in enumerate(["Pow", "Uni"]):
        import torch

        torch.manual_seed(i)
        m = get_peft_model(load_model(str(model_dir)), LoraConfig(r=2, target_modules=["q_proj", "v_proj"],
                                                                  init_lora_weights=False))
        m.save_pretrained(root / name)
        write_metadata(root / name, kind="vim", name=name, base_model=str(model_dir),
                       profile=ValueProfile.extreme({"Pow": "Power", "Uni": "Universalism"}[name]), complete=True)


def datamodule(out: Path, **kw) -> BenchmarkDataModule:
    args = dict(benchmarks={"rtp": {"source": str(REPO / "samples/benchmarks/rtp.jsonl")},
                            "beavertails": {"source": str(REPO / "samples/benchmarks/beavertails.csv"), "max_categories": 2}},
                output=str(out), limit=1, samples_per_prompt=1, batch_size=8, max_new_tokens=4)
    args.update(kw)
    return BenchmarkDataModule(**args)


def run(model_dir, dm, callbacks=()):
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=list(callbacks))
    trainer.predict(GenerationModule(model=str(model_dir), greedy=True), datamodule=dm, return_predictions=False)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_truncate_at_stop():
    assert truncate_at_stop("one. two\nthree", ["\n", "."]) == "one"
    assert truncate_at_stop("no stop", []) == "no stop"


def test_batched_equals_unbatched_greedy(tiny_model_dir):
    from benchmarks.base import Decoding
    from valueharms.decode import generate_texts
    from valueharms.model_loading import load_model, load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir), padding_side="left")
    model, dec = load_model(str(tiny_model_dir)), Decoding(max_new_tokens=8, greedy=True)
    prompts = ["a short one", "a much longer prompt with many more words in it than the other"]
    batched = generate_texts(model, tok, prompts, dec)
    single = [generate_texts(model, tok, [p], dec)[0] for p in prompts]
    assert batched == single and all(batched)


class Boom(Callback):
    """A crash after the first batch was written (callbacks run before the module's writer, so wait one batch)."""

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx >= 1:
            raise RuntimeError("killed")


def test_resume_mixed_adapters_and_mitigations(tiny_model_dir, tmp_path):
    make_adapters(tiny_model_dir, tmp_path / "adapters")
    out = tmp_path / "gen.jsonl"
    kw = dict(adapters_root=str(tmp_path / "adapters"), icl_distributions=str(REPO / "samples/values/distributions.tsv"),
              icl_names=["Pow"], icl_template="ours", mitigations=["none", "value", "dual"], suppress={"*": ["Power"]})
    with pytest.raises(RuntimeError, match="killed"):
        run(tiny_model_dir, datamodule(out, **kw), [Boom()])
    first = records(out)
    assert 0 < len(first) <= 8
    with out.open("a") as fh:
        fh.write('{"key": "torn')  # a crash mid-line
    dm = datamodule(out, **kw)
    run(tiny_model_dir, dm)
    recs = records(out)
    keys = [r["key"] for r in recs]
    assert len(keys) == len(set(keys)) == len(first) + len(dm.items)
    assert {r["condition"] for r in recs} == {"vanilla", "vim:Pow", "vim:Uni", "icl:Pow"}
    for r in recs:
        if r["condition_kind"] == "vim":
            assert r["adapter"].endswith(r["condition"].split(":")[1]) and len(r["adapter_sha256"]) == 64
            assert r["stop"] == (["."] if r["benchmark"] == "rtp" else [])  # RTP stops after its scored sentence
        else:
            assert r["adapter"] is None and r["adapter_sha256"] is None
        assert len(r["fingerprint"]) == 16
        sup = suppression_text(["Power"])
        assert r["model_input"].count(sup) == (1 if r["mitigation"] in ("value", "dual") else 0)
        assert r["model_input"].count(DEFAULT_SAFETY_PROMPT) == (1 if r["mitigation"] == "dual" else 0)
        if r["condition_kind"] == "vanilla" and r["benchmark"] == "rtp":
            assert r["stop"] == ["\n", "."] and "\n" not in r["output"] and "." not in r["output"]
    # adapters change the output of the same input
    by = {(r["benchmark"], r["prompt_id"], r["mitigation"], r["condition"]): r["output"] for r in recs}
    assert any(by[k] != by[(k[0], k[1], k[2], "vim:Uni")] for k in by if k[3] == "vim:Pow")


def test_condition_selection_names_file_and_adapter_kinds(tiny_model_dir, tmp_path):
    from benchmarks.conditions import build_conditions
    from valueharms.errors import InputError

    names = tmp_path / "names.txt"
    names.write_text("# the profiles to prompt\nUni\nPow\n")
    dist = str(REPO / "samples/values/distributions.tsv")
    conds = build_conditions(vanilla=False, icl_distributions=dist, icl_names=["Pow"], icl_names_file=str(names))
    assert sorted(c.name for c in conds) == ["icl:Pow", "icl:Uni"]
    names.write_text("# nothing\n")
    with pytest.raises(InputError, match="lists no distribution"):
        build_conditions(icl_distributions=dist, icl_names_file=str(names))
    make_adapters(tiny_model_dir, tmp_path / "adapters")
    root = str(tmp_path / "adapters")
    assert [c.kind for c in build_conditions(vanilla=False, adapters_root=root, adapter_kinds=["vim"])] == ["vim"] * 2
    assert build_conditions(adapters_root=root, adapter_kinds=["benign"])[0].name == "vanilla"
    assert len(build_conditions(adapters_root=root, adapter_kinds=["benign"])) == 1


def test_system_prompt_per_condition_kind(tiny_model_dir, tiny_tokenizer, tmp_path):
    """``system_prompt: {vim: "@vim"}`` serves VIM adapters with their training system prompt; other kinds and
    their fingerprints are untouched; an unknown kind is refused when the run is planned."""
    from valueharms.errors import InputError
    from valueharms.prompts import VIM_SYSTEM_PROMPT, build_model_input

    make_adapters(tiny_model_dir, tmp_path / "adapters")
    producer = {"model": "tiny", "dtype": "float32", "backend": "hf", "greedy": True}

    def items(**kw):
        dm = BenchmarkDataModule(benchmarks={"rtp": {"source": str(REPO / "samples/benchmarks/rtp.jsonl")}},
                                 output=str(tmp_path / "g.jsonl"), limit=2, samples_per_prompt=1,
                                 adapters_root=str(tmp_path / "adapters"), **kw)
        return {it.key: it for it in dm.plan(producer).items()}

    plain, served = items(), items(system_prompt={"vim": "@vim"})
    assert plain.keys() == served.keys()
    for key, it in served.items():
        before = plain[key]
        if it.condition.kind == "vim":
            assert it.spec.system_prompt == VIM_SYSTEM_PROMPT and it.fingerprint != before.fingerprint
            assert VIM_SYSTEM_PROMPT in build_model_input(it.item.prompt, it.spec, tiny_tokenizer)
        else:
            assert it.spec.system_prompt is None and it.fingerprint == before.fingerprint
    assert any(it.condition.kind == "vim" for it in served.values())
    everyone = items(system_prompt={"*": "Be brief."})
    assert {it.spec.system_prompt for it in everyone.values()} == {"Be brief."}
    with pytest.raises(InputError, match="unknown condition kind 'adapter'"):
        items(system_prompt={"adapter": "x"})
