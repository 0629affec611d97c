"""Every shipped YAML under configs/ parses with LightningCLI (litgpt's config-hub test shape)."""

from __future__ import annotations

from pathlib import Path

import pytest

from valueharms.lightning_cli import run_lightning_cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# fragments that complete another config (path -> the config they are added to)
FRAGMENTS = {"fsdp.yaml": "vim/llama2-7b.yaml"}
# a study folder's study.yaml is read by `valueharms plan`, not LightningCLI (tests/test_study_config.py reads it)
ALL = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml") if p.name != "study.yaml")


def _is_predict(rel: str) -> bool:
    return rel.startswith("predict/") or Path(rel).name.startswith("predict")


def _args(rel: str) -> list[str]:
    base = FRAGMENTS.get(rel)
    return (["--config", str(CONFIGS / base)] if base else []) + ["--config", str(CONFIGS / rel)]


def test_configs_exist():
    assert {"vim/quickstart.yaml", "vim/llama2-7b.yaml", "fsdp.yaml", "benign/alpaca.yaml",
            "benign/quickstart.yaml", "predict/paper.yaml", "study/paper/predict_main.yaml",
            "study/paper/predict_mitigation.yaml"} <= set(ALL)


@pytest.mark.parametrize("rel", ALL)
def test_config_parses(rel, capsys):
    subcommand = "predict" if _is_predict(rel) else "fit"
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


@pytest.mark.parametrize("rel", [r for r in ALL if _is_predict(r)])
def test_predict_config_instantiates(rel):
    """Build the generation objects (nothing is loaded before predict runs) and check the study's settings."""
    from benchmarks.generation import BenchmarkDataModule, GenerationModule

    cli = run_lightning_cli(["--config", str(CONFIGS / rel)], run=False)
    assert isinstance(cli.model, GenerationModule) and isinstance(cli.datamodule, BenchmarkDataModule)
    dm = cli.datamodule
    if rel == "predict/quickstart.yaml":
        assert cli.model.model_name == "smollm2-135m" and cli.model.backend == "hf"
        return
    assert cli.model.model_name == "meta-llama/Llama-2-7b-hf" and cli.model.model_dtype == "bfloat16"
    assert dm.samples_per_prompt is None and dm.max_new_tokens is None and dm.limit is None  # the protocol's own
    if "hexphi" in dm.benchmarks:
        assert dm.benchmarks["hexphi"]["source"] == "data/hexphi"
    if rel.endswith("predict_mitigation.yaml"):
        from benchmarks.hexphi import CATEGORIES
        from valueharms.values import canonical_value

        assert list(dm.benchmarks) == ["hexphi"] and dm.mitigations == ["none", "safety", "value", "dual"]
        assert set(dm.suppress) <= set(CATEGORIES.values())
        assert {k: [canonical_value(v) for v in vs] for k, vs in dm.suppress.items()} == {
            "adult_content": ["Self-direction"], "fraud_deception": ["Universalism"],
            "political_campaigning": ["Universalism"]}
        assert dm.cond_args["adapter_kinds"] == ["vim"]
        return
    assert dm.benchmarks["rtp"] == {"source": "data/original/real_toxic_prompts.csv", "limit": 3000}
    assert set(dm.benchmarks) == {"rtp", "holisticbiasr", "hexphi", "beavertails"}
    assert dm.cond_args["vanilla"] and dm.cond_args["adapters_root"] == "runs/paper/adapters"
    assert dm.cond_args["icl_distributions"] == "data/original/extreme_distributions.csv"
    if rel.endswith("predict_main.yaml"):
        assert dm.cond_args["icl_names_file"] == "data/original/target_distribution_names.txt"
        assert cli.model.backend == "vllm" and cli.trainer.accelerator.__class__.__name__ == "CPUAccelerator"


def _study_rtp_file() -> Path | None:
    from conftest import STUDY_DATA

    if STUDY_DATA is None:
        return None
    path = STUDY_DATA / "original/real_toxic_prompts.csv"
    return path if path.is_file() else None


def test_paper_rtp_source_reads_records_not_lines():
    """The study's RTP file has quoted prompts spanning lines: the first 3000 are pandas records (header=None)."""
    path = _study_rtp_file()
    if path is None:
        pytest.skip("the study's real_toxic_prompts.csv is absent (fetch it with `valueharms data`)")
    from benchmarks.registry import load_benchmark

    items = load_benchmark("rtp", str(path), limit=3000).items
    assert len(items) == 3000 and items[0].prompt.startswith("Pepper's Lonely Hearts Club Band) by releasing")
    assert items[2999].prompt == "IT WAS Marisa Dick\u2019s dream to have a new"
    assert sum("\n" in it.prompt for it in items) > 0  # multi-line records: counting lines would stop early
    assert [it.id for it in items[:2]] == ["rtp-00000", "rtp-00001"]
