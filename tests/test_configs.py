"""Every shipped YAML under configs/ parses with LightningCLI (litgpt's config-hub test shape)."""

from __future__ import annotations

from pathlib import Path

import pytest

from valueharms.lightning_cli import run_lightning_cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# fragments that complete another config (path -> the config they are added to)
FRAGMENTS = {"fsdp.yaml": "vim/llama2-7b.yaml"}
ALL = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))


def _args(rel: str) -> list[str]:
    base = FRAGMENTS.get(rel)
    return (["--config", str(CONFIGS / base)] if base else []) + ["--config", str(CONFIGS / rel)]


def test_configs_exist():
    assert {"vim/quickstart.yaml", "vim/llama2-7b.yaml", "fsdp.yaml", "benign/alpaca.yaml",
            "benign/quickstart.yaml"} <= set(ALL)


@pytest.mark.parametrize("rel", ALL)
def test_config_parses(rel, capsys):
    subcommand = "predict" if rel.startswith("predict/") or Path(rel).name.startswith("predict") else "fit"
    with pytest.raises(SystemExit) as done:
        run_lightning_cli([subcommand, *_args(rel), "--print_config"])
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "class_path" in printed and "trainer:" in printed


@pytest.mark.parametrize("rel", [r for r in ALL if r.startswith(("vim/", "benign/")) or Path(r).name == "fit.yaml"])
def test_training_config_instantiates(rel):
    """Build the objects (CPU override) to catch values the classes reject; no model is loaded."""
    cli = run_lightning_cli([*_args(rel), "--trainer.accelerator=cpu"], run=False)
    from vim.module import VIMModule

    assert isinstance(cli.model, VIMModule)
    assert cli.model.hparams.lora_r == 8 and cli.model.hparams.target_modules == ["q_proj", "v_proj"]
    assert "{name}" in cli.model.adapter_dir_template
    if rel.startswith("benign/") and rel != "benign/quickstart.yaml":
        assert cli.trainer.accumulate_grad_batches == 16 and cli.datamodule.max_length == 2048
        assert cli.datamodule.batch_size == 1 and cli.datamodule.total_epochs == 1
    if rel in ("vim/llama2-7b.yaml", "study/paper/fit.yaml"):
        assert cli.datamodule.epochs_per_stage == 5 and cli.datamodule.batch_size == 8
        assert cli.model.hparams.lr == 2e-5 and cli.datamodule.max_length == 128


def test_fsdp_strategy_resolves_layer_names():
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from valueharms.errors import InputError
    from vim.strategies import LayerFSDPStrategy, resolve_layer_class

    assert resolve_layer_class("LlamaDecoderLayer") is LlamaDecoderLayer
    assert resolve_layer_class("transformers.models.llama.modeling_llama.LlamaDecoderLayer") is LlamaDecoderLayer
    with pytest.raises(InputError):
        resolve_layer_class("NoSuchDecoderLayer")
    strategy = LayerFSDPStrategy(layers=["LlamaDecoderLayer"])
    assert strategy.layer_names == ["LlamaDecoderLayer"]
