"""VIMModule on the tiny model: loss falls, stage 2 starts from stage 1's best epoch, the exported adapter is
complete, LoRA-only, reloadable with peft and changes the model's outputs."""

from __future__ import annotations

import json

import pytest
import torch

from test_datamodule import write_vim_data

EPOCHS = 3


@pytest.fixture(scope="module")
def fitted(tiny_model_dir, tmp_path_factory):
    """One two-stage fit (3 epochs per stage) that every test below inspects."""
    from lightning.pytorch import Trainer

    from vim.datamodule import VIMDataModule
    from vim.module import VIMModule

    class Probe(VIMModule):
        """Records, at each epoch start (after the StageCallback ran), the LR and the LoRA weights."""

        epoch_starts: list[dict] = []
        train_losses: list[float] = []

        def on_train_epoch_start(self) -> None:
            lora = {k: v.detach().clone() for k, v in self.state_dict().items()}
            self.epoch_starts.append({"epoch": self.current_epoch, "lr": self.optimizers().param_groups[0]["lr"],
                                      "lora": lora})

        def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
            self.train_losses.append(float(outputs["loss"]))

    root = tmp_path_factory.mktemp("fit")
    data = write_vim_data(root / "data", n=8)
    module = Probe(model=str(tiny_model_dir), adapter_dir=str(root / "adapters" / "{name}"), lr=1e-2,
                   target_modules=["q_proj", "v_proj", "o_proj", "lm_head"], lora_dropout=0.0, agreement_eval_examples=4)
    dm = VIMDataModule(distribution="Pow", model=str(tiny_model_dir), data_dir=str(data), distributions_file=None,
                       arguments=None, batch_size=4, max_length=256, epochs_per_stage=EPOCHS)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, default_root_dir=str(root))
    trainer.fit(module, datamodule=dm)
    return {"root": root, "module": module, "trainer": trainer, "dir": root / "adapters" / "Pow",
            "model_dir": tiny_model_dir, "dm": dm}


def test_loss_falls_when_overfitting(fitted):
    losses = fitted["module"].train_losses
    per_epoch = 2  # 8 examples / batch 4
    first = sum(losses[:per_epoch]) / per_epoch
    last_stage1 = sum(losses[(EPOCHS - 1) * per_epoch: EPOCHS * per_epoch]) / per_epoch
    assert last_stage1 < first - 0.5, losses
    assert fitted["trainer"].current_epoch == 2 * EPOCHS  # max_epochs set from phases x epochs_per_stage
    metrics = fitted["trainer"].callback_metrics
    assert "train/loss_stage1" in metrics and "val/loss_stage2" in metrics
    # stage-2 agreement metrics (torchmetrics) are logged in stage-2 epochs only, with values in range
    assert 0.0 <= float(metrics["val/agreement_accuracy"]) <= 1.0
    assert 0.0 <= float(metrics["val/agreement_mae"]) <= 5.0


def test_stage2_starts_from_stage1_best_with_fresh_schedule(fitted):
    module, root = fitted["module"], fitted["dir"]
    starts = {s["epoch"]: s for s in module.epoch_starts}
    best1 = torch.load(root / "checkpoints" / "best_phase0.pt", weights_only=True)
    meta = json.loads((root / "valueharms.json").read_text())
    best_epoch = meta["best_epoch_per_stage"]["1"]
    assert 0 <= best_epoch < EPOCHS
    stage2 = starts[EPOCHS]
    assert set(best1) == set(stage2["lora"])
    for k, v in best1.items():
        assert torch.equal(v, stage2["lora"][k]), k
    lr = module.hparams.lr
    assert stage2["lr"] == pytest.approx(lr)  # schedule restarted (no warmup)
    assert starts[0]["lr"] == pytest.approx(lr)
    assert starts[EPOCHS - 1]["lr"] < lr  # linear decay inside a stage


def test_checkpoints_hold_only_lora(fitted):
    ckpt = torch.load(fitted["dir"] / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    keys = list(ckpt["state_dict"])
    assert keys and all("lora_" in k for k in keys)
    assert "vim_schedule" in ckpt


def test_metadata_complete_and_correct(fitted):
    from valueharms.adapters import is_complete, read_metadata

    info = read_metadata(fitted["dir"])
    assert info.complete and is_complete(fitted["dir"])
    assert info.kind == "vim" and info.name == "Pow" and info.base_model == str(fitted["model_dir"])
    meta = info.meta
    assert meta["stages"] == ["argument_generation", "agreement_prediction"]
    assert meta["best_val_loss"] == pytest.approx(meta["best_val_loss_per_stage"]["2"])
    assert meta["config"]["model"]["lora_r"] == 8 and meta["config"]["data"]["epochs_per_stage"] == EPOCHS
    assert meta["config"]["model"]["weight_decay"] == 0.01  # the study's AdamW default
    assert "adapter_dir" not in meta["config"]["model"]  # where it is written is not how it was trained
    assert set(meta["best_val_metrics_per_stage"]["2"]) >= {"val/agreement_accuracy", "val/agreement_mae"}
    assert "val/agreement_accuracy" not in meta["best_val_metrics_per_stage"]["1"]
    assert len(meta["data_hash"]) == 64
    assert meta["values"] is None  # no distributions file given


def test_adapter_reloads_and_changes_outputs(fitted):
    from peft import PeftModel

    from valueharms.model_loading import load_model, load_tokenizer

    tok = load_tokenizer(str(fitted["model_dir"]))
    ids = tok("Tell me what you would say about the following statement.", return_tensors="pt")["input_ids"]
    base = load_model(str(fitted["model_dir"])).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
    tuned = PeftModel.from_pretrained(load_model(str(fitted["model_dir"])), str(fitted["dir"])).eval()
    with torch.no_grad():
        tuned_logits = tuned(ids).logits
    assert (tuned_logits - base_logits).abs().max() > 1e-2
    best2 = torch.load(fitted["dir"] / "checkpoints" / "best_phase1.pt", weights_only=True)
    saved = {k: v for k, v in tuned.state_dict().items() if "lora_" in k}
    for k, v in best2.items():  # exported weights are the best stage-2 epoch's
        assert torch.equal(saved[k[len("net."):]], v), k


def test_best_epoch_reload_under_fsdp_warns_instead_of_silently_doing_nothing(tmp_path):
    """Lightning's FSDPStrategy.load_model_state_dict is a no-op: the callback must say so, not claim a reload."""
    from types import SimpleNamespace

    from lightning.pytorch.strategies import FSDPStrategy

    from vim.callbacks import StageCallback

    module = SimpleNamespace(adapter_dir=lambda: tmp_path)
    best = StageCallback._best_path(module, 0)
    best.parent.mkdir(parents=True)
    torch.save({"net.x.lora_A.weight": torch.zeros(1)}, best)
    with pytest.warns(UserWarning, match="not loaded: under Lightning's plain FSDPStrategy"):
        assert StageCallback()._load_best(SimpleNamespace(strategy=FSDPStrategy()), module, 0) is False


def test_adapter_travels_with_a_filled_card(fitted):
    """adapter_config.json names the base as given (not a cache path); README.md is the filled model card."""
    folder = fitted["dir"]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(fitted["model_dir"])
    card = (folder / "README.md").read_text()
    meta = json.loads((folder / "valueharms.json").read_text())
    assert "library_name: peft" in card and "arXiv:2506.06404" in card
    assert meta["data_hash"] in card and "lora_r: 8" in card and "best validation loss" in card
    assert "agreement_accuracy" in card and "complete: True" in card


def test_portable_base_name():
    from valueharms.hub import portable_base_name

    assert portable_base_name("llama2-7b") == "meta-llama/Llama-2-7b-hf"  # alias of a hub checkpoint -> hub id
    assert portable_base_name("smollm2-135m") == "smollm2-135m"  # embedded GGUF: not the hub weights, keep alias
    assert portable_base_name("org/model") == "org/model"
