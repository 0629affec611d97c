"""Adapters that travel: hub ids resolve wherever an adapter folder is, ``valueharms push`` (dry run and a fake hub
client), and the training curves reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from valueharms.adapters import read_metadata, resolve_adapter, training_curves, write_metadata
from valueharms.cli import main
from valueharms.errors import InputError


def _adapter(folder: Path, complete: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2-135m"}))
    (folder / "adapter_model.safetensors").write_bytes(b"x" * 10)
    (folder / "checkpoints").mkdir(exist_ok=True)
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"resume state")
    (folder / "logs" / "version_0").mkdir(parents=True, exist_ok=True)
    (folder / "logs" / "version_0" / "metrics.csv").write_text("epoch,step,val/loss\n0,1,2.5\n")
    write_metadata(folder, kind="vim", name=folder.name, base_model="smollm2-135m", complete=complete,
                   config={"model": {"lr": 2e-5}}, data_hash="d" * 64, best_val_loss_per_stage={"1": 2.5},
                   best_epoch_per_stage={"1": 0})
    return folder


def _cached_snapshot(cache: Path, repo: str, files: dict[str, str]) -> Path:
    """The hub cache layout snapshot_download reads offline: refs/main -> snapshots/<commit>/..."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    snap = storage / "snapshots" / commit
    for rel, text in files.items():
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        (snap / rel).write_text(text)
    return snap


def test_hub_ids_resolve_from_the_cache_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    meta = (_adapter(tmp_path / "Pow") / "valueharms.json").read_text()
    snap = _cached_snapshot(cache, "someone/vim-pow", {"valueharms.json": meta, "adapter_config.json": "{}"})
    info = read_metadata("someone/vim-pow")
    assert info.path == snap and info.name == "Pow" and info.complete
    many = _cached_snapshot(cache, "someone/vim-all", {"Pow/valueharms.json": meta, "Pow/adapter_config.json": "{}"})
    assert resolve_adapter("hf://someone/vim-all/Pow") == many / "Pow"
    from valueharms.adapters import find_adapters

    assert [a.name for a in find_adapters("someone/vim-all")] == ["Pow"]
    local = tmp_path / "Pow"
    assert resolve_adapter(local) == local  # local folders win
    with pytest.raises(InputError, match="no hub repo could be fetched"):
        read_metadata("someone/not-cached")
    assert find_adapters("someone/not-cached") == []  # a search root that is nowhere finds nothing


def test_push_dry_run_lists_the_upload(tmp_path, capsys):
    folder = _adapter(tmp_path / "adapters" / "Pow")
    assert main(["push", str(folder), "someone/vim-pow", "--dry_run", "true"]) == 0
    out = capsys.readouterr().out
    assert "would upload" in out and "someone/vim-pow" in out
    listed = [ln.split()[0] for ln in out.splitlines() if ln.startswith("  ")]
    assert {"adapter_model.safetensors", "adapter_config.json", "valueharms.json", "README.md",
            "logs/version_0/metrics.csv"} == set(listed)
    assert "value-harms" in (folder / "README.md").read_text()  # the card was written for the upload


def test_push_uploads_with_the_hub_client(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload", kw["repo_id"], kw))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    folder = _adapter(tmp_path / "Pow")
    assert main(["push", str(folder), "someone/vim-pow", "--private", "true"]) == 0
    (create, _, ckw), (upload, repo, ukw) = calls
    assert create == "create" and ckw["private"] is True and ckw["exist_ok"] is True
    assert upload == "upload" and repo == "someone/vim-pow" and ukw["folder_path"] == str(folder)
    assert "checkpoints/*" in ukw["ignore_patterns"]


def test_push_refuses_bad_input_on_one_line(tmp_path, capsys):
    incomplete = _adapter(tmp_path / "Half", complete=False)
    assert main(["push", str(incomplete), "someone/x", "--dry_run", "true"]) == 2
    assert "not complete" in capsys.readouterr().err
    done = _adapter(tmp_path / "Pow")
    assert main(["push", str(done), "not a repo id!", "--dry_run", "true"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid hub repo id" in err[0]


def test_training_curves_follow_the_resumed_run(tmp_path):
    logs = tmp_path / "logs"
    for version, steps in ((0, range(0, 6)), (1, range(3, 9))):
        (logs / f"version_{version}").mkdir(parents=True)
        rows = "".join(f"{s},{version}\n" for s in steps)
        (logs / f"version_{version}" / "metrics.csv").write_text("step,train/loss\n" + rows)
    curve = training_curves(tmp_path)
    assert curve["step"].tolist() == list(range(9))
    assert curve["train/loss"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1]  # steps 3-5 from the run the weights kept
    assert training_curves(tmp_path / "none").empty
