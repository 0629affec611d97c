"""K adapters per step on one base (vim.multi_adapter) give what K separate fits give, and peft reads the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from vim.collate import PadCollator
from vim.packing import PackedCollator, prepare_model_for_packing
from vim.stacked_lora import build_routing, eject, inject, routed, segment_losses


class Killer(Callback):
    """Simulates a kill: raises after ``after`` training steps."""

    def __init__(self, after: int = 3) -> None:
        self.after = after

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.after:
            raise RuntimeError("simulated kill")


def _write_data(folder: Path, n: int, word: str) -> Path:
    """Prepared stage-1/2 files whose texts (and lengths) differ per distribution."""
    folder.mkdir(parents=True, exist_ok=True)
    for st in (1, 2):
        for split in ("train", "valid", "test"):
            with open(folder / f"stage{st}_{split}.jsonl", "w") as fh:
                for i in range(n):
                    prompt = f"Tell me what you would say about {word} {i}. Answer:" if st == 1 else f"Indicate {i}:"
                    target = f"I would say, {word * (1 + i % 3)} because {i}." if st == 1 else f"my answer is {i % 6}."
                    fh.write(json.dumps({"prompt": prompt, "target": target, "stage": st, "split": split}) + "\n")
    return folder


def _examples(seed: int, n: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = 4 + int(torch.randint(0, 9, (1,), generator=g))
        ids = torch.randint(10, 400, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [-100] * 2 + ids[2:]})
    return out


@pytest.mark.parametrize("packed", [True, False])
def test_routed_forward_equals_peft_per_adapter(tiny_tokenizer, tiny_model, packed):
    """Three adapters with different weights in one forward == peft with each adapter on its own examples."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    from vim.multi_adapter import combine_batches
    from vim.stacked_lora import adapter_state

    prepare_model_for_packing(tiny_model)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    groups = [_examples(s, 2 + s) for s in range(3)]
    collate = PackedCollator(tiny_tokenizer) if packed else PadCollator(tiny_tokenizer.pad_token_id)
    batches = [collate(g) for g in groups]
    with torch.no_grad():
        wrappers = inject(tiny_model, {n: (torch.zeros(4, m.in_features), torch.zeros(m.out_features, 4))
                                       for n, m in tiny_model.named_modules() if n.endswith(("q_proj", "v_proj"))},
                          3, r=4, alpha=8, dropout=0.0)
        for w in wrappers.values():
            for p in [*w.lora_A, *w.lora_B]:
                p.normal_(0, 0.3)
        merged, slices = combine_batches(batches)
        inputs = {k: merged[k] for k in ("input_ids", "attention_mask", "position_ids") if k in merged}
        with routed(wrappers, build_routing([0, 1, 2], slices, "cpu")):
            logits = tiny_model(**inputs).logits
        losses = segment_losses(logits, merged["labels"], slices)
        states = [adapter_state(wrappers, k) for k in range(3)]
    eject(tiny_model, wrappers)  # back to a plain model for peft
    assert len({round(float(v), 4) for v in losses}) == 3  # the adapters really differ
    for k, batch in enumerate(batches):
        peft_model = get_peft_model(tiny_model, config)
        set_peft_model_state_dict(peft_model, states[k])
        inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "position_ids", "labels") if key in batch}
        with torch.no_grad():
            ref = peft_model(**inputs, use_cache=False)
        assert float(losses[k]) == pytest.approx(float(ref.loss), abs=1e-5)
        s, e = slices[k]
        rows, width, vocab = ref.logits.shape
        ours = logits.reshape(-1, vocab)[s:e].reshape(rows, -1, vocab)[:, :width]  # extra right pads cut off
        torch.testing.assert_close(ours, ref.logits, atol=1e-4, rtol=1e-4)
        tiny_model = peft_model.unload()


def _fit(module, dm, root: Path):
    from lightning.pytorch import Trainer, seed_everything

    seed_everything(42)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, default_root_dir=str(root), enable_checkpointing=True)
    trainer.fit(module, datamodule=dm)
    return trainer


def test_k_adapters_train_like_k_separate_fits(tiny_model_dir, tmp_path):
    """Two distributions with different data sizes: the same losses, best epochs and weights as two fits."""
    from safetensors.torch import load_file

    from vim.datamodule import VIMDataModule
    from vim.module import VIMModule
    from vim.multi_adapter import MultiLoRAModule, MultiVIMDataModule

    sizes = {"Pow": 8, "Ach": 13}  # 2 vs 4 batches of 4: Pow's data runs out first in every epoch
    for name, n in sizes.items():
        _write_data(tmp_path / "data" / name, n, name.lower())
    common = dict(model=str(tiny_model_dir), data_dir=str(tmp_path / "data" / "{distribution}"),
                  distributions_file=None, arguments=None, batch_size=4, max_length=64, epochs_per_stage=2,
                  packing=True)
    hp = dict(model=str(tiny_model_dir), lr=5e-3, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
              attn_implementation="torch_varlen")
    single = {}
    for name in sizes:
        out = tmp_path / "single" / "{name}"
        _fit(VIMModule(adapter_dir=str(out), **hp), VIMDataModule(distribution=name, **common), tmp_path / "s")
        single[name] = tmp_path / "single" / name
    multi = MultiLoRAModule(adapter_dir=str(tmp_path / "multi" / "{name}"), **hp)
    _fit(multi, MultiVIMDataModule(distributions=list(sizes), **common), tmp_path / "m")
    for name in sizes:
        ref = json.loads((single[name] / "valueharms.json").read_text())
        got = json.loads((tmp_path / "multi" / name / "valueharms.json").read_text())
        assert got["complete"] and got["name"] == name and got["phases_trained"] == ref["phases_trained"] == 2
        assert (tmp_path / "multi" / name / "README.md").is_file()  # the model card, as a single fit writes it
        assert got["best_epoch_per_stage"] == ref["best_epoch_per_stage"]
        for stage, loss in ref["best_val_loss_per_stage"].items():
            assert got["best_val_loss_per_stage"][stage] == pytest.approx(loss, rel=1e-4)
        w_ref = load_file(single[name] / "adapter_model.safetensors")
        w_got = load_file(tmp_path / "multi" / name / "adapter_model.safetensors")
        assert set(w_got) == set(w_ref)
        for key in w_ref:
            torch.testing.assert_close(w_got[key], w_ref[key], atol=2e-5, rtol=1e-3)
    moved = load_file(single["Pow"] / "adapter_model.safetensors")
    assert any(v.abs().max() > 0 for k, v in moved.items() if "lora_B" in k)  # training did move the adapters
    assert (tmp_path / "multi" / multi.trainer.datamodule.adapter_name / "checkpoints" / "last.ckpt").is_file()
    assert multi.attention_kernel.startswith("torch_varlen")  # the kernel that ran is recorded (and logged)


def test_group_stopped_before_the_last_stage_is_not_complete(tiny_model_dir, tmp_path):
    """The single fit's rule for group adapters too: a fit cut short in stage 1 (max_steps) is not complete."""
    from lightning.pytorch import Trainer

    from vim.multi_adapter import MultiLoRAModule, MultiVIMDataModule

    for name in ("Pow", "Ach"):
        _write_data(tmp_path / "data" / name, 8, name.lower())
    module = MultiLoRAModule(adapter_dir=str(tmp_path / "multi" / "{name}"), model=str(tiny_model_dir),
                             target_modules=["q_proj", "v_proj"])
    dm = MultiVIMDataModule(distributions=["Pow", "Ach"], model=str(tiny_model_dir), distributions_file=None,
                            arguments=None, data_dir=str(tmp_path / "data" / "{distribution}"), batch_size=4,
                            max_length=64, epochs_per_stage=2)
    Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, max_steps=2,
            num_sanity_val_steps=0, default_root_dir=str(tmp_path)).fit(module, datamodule=dm)
    for name in ("Pow", "Ach"):
        meta = json.loads((tmp_path / "multi" / name / "valueharms.json").read_text())
        assert meta["complete"] is False and meta["phases_trained"] == 1


def test_sweep_fits_groups_and_a_killed_group_resumes(tiny_model_dir, tmp_path, capsys):
    """``sweep --adapters_per_step 2``: groups of 2 (the last one of 1); a killed group resumes from last.ckpt."""
    from test_fit_cli import _config

    from vim.sweep import sweep

    values = "Achievement\tBenevolence\tConformity\tHedonism\tPower\tSecurity\tSelf-direction\tStimulation\t" \
             "Tradition\tUniversalism"
    dist = tmp_path / "dist.tsv"
    rows = {"Pow": [1, 1, 1, 1, 6, 1, 1, 1, 1, 1], "Ach": [6] + [1] * 9, "Ben": [1, 6] + [1] * 8}
    dist.write_text(f"Country\t{values}\n" + "".join(f"{n}\t" + "\t".join(map(str, v)) + "\n" for n, v in rows.items()))
    for name in rows:
        _write_data(tmp_path / "data" / name, 8, name.lower())
    cfg = _config(tmp_path, tiny_model_dir, tmp_path / "data" / "{distribution}")
    cfg.write_text(cfg.read_text().replace("epochs_per_stage: 2", "epochs_per_stage: 1"))
    out = tmp_path / "out"
    sweep(str(dist), str(cfg), out=str(out), adapters_per_step=2, dry_run=True)
    printed = capsys.readouterr().out
    assert printed.count("vim.multi_adapter.MultiLoRAModule") == 2 and '["Pow", "Ach"]' in printed
    with pytest.raises(RuntimeError, match="simulated kill"):
        sweep(str(dist), str(cfg), out=str(out), adapters_per_step=2,
              overrides=["--trainer.callbacks+=test_multi_adapter.Killer", "--trainer.callbacks.after=4"])
    assert not (out / "Pow" / "valueharms.json").exists()
    starts = tmp_path / "starts.txt"
    sweep(str(dist), str(cfg), out=str(out), adapters_per_step=2,
          overrides=["--trainer.callbacks+=test_fit_cli.StartRecorder", f"--trainer.callbacks.path={starts}"])
    first, second = [int(x) for x in starts.read_text().split()]
    assert first >= 2 and second == 0  # the first group continued from its checkpoint, the second started fresh
    for name, scores in rows.items():
        meta = json.loads((out / name / "valueharms.json").read_text())
        assert meta["complete"] and meta["name"] == name and meta["values"]["Power"] == float(scores[4])
        assert set(meta["best_epoch_per_stage"]) == {"1", "2"}


def test_group_adapters_name_their_base_as_single_fits_do():
    """One LoRA config for both module kinds: an alias is written as its hub id, never as given or a cache path."""
    from vim.module import VIMModule
    from vim.multi_adapter import MultiLoRAModule

    single, group = VIMModule(model="llama2-7b").lora_config(), MultiLoRAModule(model="llama2-7b").lora_config()
    assert single.base_model_name_or_path == group.base_model_name_or_path == "meta-llama/Llama-2-7b-hf"
    assert (single.r, single.lora_alpha, single.target_modules) == (group.r, group.lora_alpha, group.target_modules)
