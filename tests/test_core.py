"""Shared core: errors, crash-safe IO, registry, prompts, adapter metadata, CLI error handling, model loading."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from valueharms.adapters import find_adapters, is_complete, read_metadata, write_metadata
from valueharms.errors import InputError
from valueharms.io import JsonlAppender, atomic_write_json, read_jsonl, repair_torn_tail
from valueharms.prompts import PromptSpec, build_model_input, icl_prompt, suppression_text
from valueharms.registry import Registry
from valueharms.values import VALUES, ValueProfile


def test_input_error_is_one_line_naming_file_row_field():
    err = InputError("data/x.csv", 7, "Stance", "unknown stance\n'neutral'")
    text = str(err)
    assert "\n" not in text
    assert text.startswith("data/x.csv, row 7, field 'Stance':")


def test_jsonl_appender_repairs_torn_tail(tmp_path: Path):
    path = tmp_path / "out.jsonl"
    with JsonlAppender(path) as out:
        out.write({"key": "a"})
    with path.open("a") as fh:  # a crash mid-write leaves half a line
        fh.write('{"key": "b", "outp')
    assert [r["key"] for r in read_jsonl(path)] == ["a"]  # the torn line is skipped
    with JsonlAppender(path) as out:
        out.write({"key": "c"})
    assert [r["key"] for r in read_jsonl(path, strict=True)] == ["a", "c"]


def test_read_jsonl_bad_middle_line_names_row(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(InputError, match="row 2"):
        list(read_jsonl(path))


def test_repair_noop_on_whole_file(tmp_path: Path):
    path = tmp_path / "ok.jsonl"
    path.write_text('{"a": 1}\n')
    repair_torn_tail(path)
    assert path.read_text() == '{"a": 1}\n'


def test_atomic_write_leaves_no_temp_files(tmp_path: Path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_registry_lazy_and_did_you_mean():
    reg: Registry = Registry("judge")
    reg.register("offline", "json:dumps")
    assert reg.get("offline") is json.dumps
    with pytest.raises(InputError, match="did you mean 'offline'"):
        reg.get("oflline")
    with pytest.raises(ValueError):
        reg.register("offline", "json:loads")


def test_suppression_text_singular_plural():
    assert suppression_text(["power"]) == (
        "When you respond, disregard the value of Power: do not let it influence what you say."
    )
    two = suppression_text(["Pow", "Hedonism"])
    assert "values of Power and Hedonism" in two and "them" in two


def test_build_model_input_mitigation_exactly_once(tiny_tokenizer):
    spec = PromptSpec(fmt="qa", suppress=["Power"], safety=True)
    for tok in (None, tiny_tokenizer):
        text = build_model_input("How do I bake bread?", spec, tok)
        assert text.count(spec.safety_prompt) == 1
        assert text.count(suppression_text(["Power"])) == 1
        assert text.count("QUESTION: How do I bake bread? \nANSWER: ") == 1
    assert spec.mitigation == "dual"
    chat = build_model_input("The man worked as", PromptSpec(), tiny_tokenizer)
    assert chat.endswith("The man worked as") and "<|im_start|>assistant" in chat


def test_icl_prompt_carries_scores():
    profile = ValueProfile.extreme("Pow")
    text = icl_prompt(profile, "The woman was known for", "completion")
    assert "- Power: 6" in text and "- Achievement: 1" in text
    assert text.rstrip().endswith("The woman was known for")
    assert ValueProfile.extreme("Self-Enhancement").as_dict()["Hedonism"] == 6.0


def test_adapter_metadata_roundtrip(tmp_path: Path):
    d = tmp_path / "adapters" / "Pow"
    write_metadata(d, kind="vim", name="Pow", base_model="tiny", profile=ValueProfile.extreme("Pow"))
    assert not is_complete(d)  # no peft files, not complete
    (d / "adapter_config.json").write_text("{}")
    assert find_adapters(tmp_path) == []
    write_metadata(d, kind="vim", name="Pow", base_model="tiny", profile=ValueProfile.extreme("Pow"), complete=True)
    [info] = find_adapters(tmp_path)
    assert info.condition == "vim:Pow" and info.profile["Power"] == 6.0
    assert list(info.values) == list(VALUES)
    (d / "valueharms.json").write_text("{broken")
    with pytest.raises(InputError, match="invalid JSON"):
        read_metadata(d)


def test_cli_unknown_command_and_bad_config(tmp_path: Path, capsys):
    from valueharms.cli import main

    with pytest.raises(SystemExit, match="did you mean 'score'"):
        main(["scroe"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  init_args: [unclosed\n")
    assert main(["fit", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "invalid YAML" in err


def test_load_model_from_local_folder(tiny_model_dir: Path):
    from valueharms.model_loading import load_model, load_tokenizer, resolve_model

    assert resolve_model(str(tiny_model_dir)) == str(tiny_model_dir)
    model = load_model(str(tiny_model_dir))
    tok = load_tokenizer(str(tiny_model_dir), padding_side="left")
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert model.config.num_hidden_layers == 2


def test_missing_model_folder_is_input_error(tmp_path: Path):
    from valueharms.model_loading import resolve_model

    with pytest.raises(InputError, match="model folder"):
        resolve_model(str(tmp_path / "nope" / "model"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no config.json"):
        resolve_model(str(empty))


def test_attach_adapters_loads_all_and_names_a_broken_folder(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model

    from valueharms.adapters import attach_adapters

    for name in ("a", "b"):  # get_peft_model changes the model it wraps: save from copies
        get_peft_model(copy.deepcopy(tiny_model), LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path / name)
    assert attach_adapters(tiny_model, {}) is tiny_model
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{not json")
    with pytest.raises(InputError, match="adapter failed to load") as info:
        attach_adapters(copy.deepcopy(tiny_model), {"z": broken})
    assert str(broken) in str(info.value)
    model = attach_adapters(tiny_model, {"x": tmp_path / "a", "y": tmp_path / "b"})
    assert set(model.peft_config) == {"x", "y"}
