"""Tokenization, prompt masking, truncation, padding and the VIM/instruction DataModules (no training)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from vim.collate import IGNORE_INDEX, PadCollator, chat_prompt_text, encode_example
from vim.packing import make_collator
from valueharms.errors import InputError

PROMPT = "Tell me what you would say about the following statement. Statement: We should ban fast food Answer:"
TARGET = 'I would say, "I agree with that because it is bad for your health." about We should ban fast food'


def stage2_example_target(value: str, score: int) -> str:
    from vim.data import EXPRESSIONS, STAGE2_TARGET

    return STAGE2_TARGET.format(value=value.lower(), expression=EXPRESSIONS[score - 1], score=score)


def write_vim_data(folder: Path, n: int = 6, stages=(1, 2)) -> Path:
    """Small prepared-data files in the contract's format (what vim.prepare writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for st in stages:
        for split in ("train", "valid", "test"):
            with open(folder / f"stage{st}_{split}.jsonl", "w") as fh:
                for i in range(n):
                    score = i % 6 + 1  # stage 2: the study's answer wording, so agreement metrics can parse it
                    target = TARGET if st == 1 else stage2_example_target("Power", score)
                    fh.write(json.dumps({"prompt": f"{PROMPT} {i}" if st == 1 else f"Indicate {i}. Answer:",
                                         "target": target, "stage": st, "split": split,
                                         "meta": {} if st == 1 else {"value": "Power"}}) + "\n")
    return folder


def test_plain_labels_mask_exactly_the_prompt(tiny_tokenizer):
    enc = encode_example(tiny_tokenizer, PROMPT, TARGET, max_length=512, chat=False)
    prompt_len = len(tiny_tokenizer(PROMPT, add_special_tokens=True)["input_ids"])
    assert enc["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    target_ids = enc["labels"][prompt_len:]
    assert IGNORE_INDEX not in target_ids
    assert target_ids == enc["input_ids"][prompt_len:]
    assert target_ids[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(target_ids[:-1]).strip() == TARGET
    assert not enc["truncated"]


def test_chat_template_tokens_carry_no_loss(tiny_tokenizer):
    enc = encode_example(tiny_tokenizer, PROMPT, TARGET, max_length=1024, chat=True, system_prompt="Be a person.")
    head = chat_prompt_text(tiny_tokenizer, PROMPT, "Be a person.")
    head_len = len(tiny_tokenizer(head, add_special_tokens=False)["input_ids"])
    assert "<|im_start|>system" in head and head.endswith("<|im_start|>assistant\n")
    assert enc["labels"][:head_len] == [IGNORE_INDEX] * head_len
    supervised = [t for t in enc["labels"] if t != IGNORE_INDEX]
    assert len(supervised) == len(enc["labels"]) - head_len
    text = tiny_tokenizer.decode(supervised)
    assert text.startswith(TARGET) and "<|im_end|>" in text
    assert "system" not in text and PROMPT not in text


def test_keep_target_truncation_cuts_prompt_from_left(tiny_tokenizer):
    long_prompt = "the a an and " * 80 + PROMPT
    enc = encode_example(tiny_tokenizer, long_prompt, TARGET, max_length=64, truncation="keep_target")
    assert enc["truncated"] and len(enc["input_ids"]) == 64
    supervised = [t for t in enc["labels"] if t != IGNORE_INDEX]
    assert tiny_tokenizer.decode(supervised[:-1]).strip() == TARGET  # the whole answer survives


def test_original_truncation_cuts_the_target(tiny_tokenizer):
    long_prompt = "the a an and " * 80 + PROMPT
    enc = encode_example(tiny_tokenizer, long_prompt, TARGET, max_length=64, truncation="original")
    assert enc["truncated"] and len(enc["input_ids"]) == 64
    assert all(t == IGNORE_INDEX for t in enc["labels"])  # the paper's behaviour: the answer is lost


def test_pad_collator_right_and_original_left(tiny_tokenizer):
    a = encode_example(tiny_tokenizer, "short", "yes", max_length=64)
    b = encode_example(tiny_tokenizer, PROMPT, TARGET, max_length=64)
    batch = make_collator(tiny_tokenizer)([a, b])
    n_a = len(a["input_ids"])
    assert batch["input_ids"].shape == (2, len(b["input_ids"]))
    assert batch["attention_mask"][0].sum() == n_a
    assert (batch["labels"][0, n_a:] == IGNORE_INDEX).all()
    left = make_collator(tiny_tokenizer, truncation="original", max_length=64)([a, b])
    assert isinstance(make_collator(tiny_tokenizer, truncation="original", max_length=64), PadCollator)
    assert left["input_ids"].shape == (2, 64)
    assert left["attention_mask"][0, -n_a:].sum() == n_a and left["attention_mask"][0, : 64 - n_a].sum() == 0
    assert left["input_ids"][0, -1] == a["input_ids"][-1]


def _dm(tiny_model_dir, data_dir, **kw):
    from vim.datamodule import VIMDataModule

    return VIMDataModule(model=str(tiny_model_dir), data_dir=str(data_dir), distributions_file=None, arguments=None,
                         batch_size=4, max_length=256, **kw)


def test_vim_datamodule_sequential_and_mixed(tiny_model_dir, tmp_path):
    data = write_vim_data(tmp_path / "d")
    dm = _dm(tiny_model_dir, data, epochs_per_stage=2)
    dm.prepare_data()  # files exist: nothing to prepare
    dm.setup("fit")
    assert dm.phases == [[1], [2]] and dm.total_epochs == 4
    assert [dm.phase_for_epoch(e) for e in range(5)] == [0, 0, 1, 1, 1]
    batch = next(iter(dm.train_dataloader()))  # no trainer: epoch 0 = stage 1
    assert set(batch["stage"].tolist()) == {1}
    assert dm._chat() and dm.system_prompt  # tiny tokenizer has a chat template -> VIM system prompt
    mixed = _dm(tiny_model_dir, data, stage_mode="mixed")
    mixed.setup("fit")
    assert mixed.phases == [[1, 2]]
    stages = {s for b in mixed.train_dataloader() for s in b["stage"].tolist()}
    assert stages == {1, 2}
    only2 = _dm(tiny_model_dir, data, stages=["agreement_prediction"])
    assert only2.phases == [[2]]


def test_max_examples_keeps_both_polarities(tiny_model_dir, tmp_path):
    """A quick-run cap samples each polarity (stage-1 files list every positive before the negatives)."""
    data = write_vim_data(tmp_path / "d", stages=(2,))
    with open(data / "stage1_train.jsonl", "w") as fh:
        for i, side in enumerate(["positive"] * 6 + ["negative"] * 6):
            fh.write(json.dumps({"prompt": f"{PROMPT} {side} {i}", "target": TARGET, "stage": 1, "split": "train",
                                 "meta": {"polarity": side}}) + "\n")
    for split in ("valid", "test"):
        (data / f"stage1_{split}.jsonl").write_text((data / "stage1_train.jsonl").read_text())
    dm = _dm(tiny_model_dir, data, max_examples=4, use_chat_template=False)
    dm.setup("fit")
    kept = [dm.tokenizer.decode(e["input_ids"]) for e in dm.data[(1, "train")]]
    assert len(kept) == 4
    assert sum("positive" in t for t in kept) == 2 and sum("negative" in t for t in kept) == 2


def test_vim_datamodule_bad_rows_and_args(tiny_model_dir, tmp_path):
    data = write_vim_data(tmp_path / "d")
    with open(data / "stage2_valid.jsonl", "a") as fh:
        fh.write(json.dumps({"prompt": "x"}) + "\n")
    dm = _dm(tiny_model_dir, data)
    with pytest.raises(InputError) as err:
        dm.setup("fit")
    assert err.value.row == 7 and err.value.field == "target"
    with pytest.raises(InputError):
        _dm(tiny_model_dir, data, stages=["stage_three"])
    with pytest.raises(InputError):
        _dm(tiny_model_dir, data, truncation="middle")
    missing = _dm(tiny_model_dir, tmp_path / "nothing")
    with pytest.raises(InputError):
        missing.prepare_data()  # no data and nothing to prepare it from


def test_instruction_datamodule(tiny_model_dir, monkeypatch):
    rows = [{"prompt": f"### Instruction: say {i}\n### Response:", "target": f"{i}"} for i in range(10)]
    fake = types.ModuleType("vim.benign_data")
    fake.load_benign = lambda task, source=None, split="train", limit=None: rows[:limit]
    monkeypatch.setitem(sys.modules, "vim.benign_data", fake)
    from vim.datamodule import InstructionDataModule

    dm = InstructionDataModule(task="alpaca", model=str(tiny_model_dir), limit=10, val_fraction=0.2)
    dm.setup("fit")
    assert len(dm.data[(1, "train")]) == 8 and len(dm.data[(1, "valid")]) == 2
    assert dm.metadata()["kind"] == "benign" and dm.adapter_name == "alpaca"
    assert not dm._chat()  # benign prompts are already formatted
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 1
