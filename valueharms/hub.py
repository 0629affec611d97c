"""Adapters that travel: a portable base-model name, a filled model card, and ``valueharms push`` to the HF hub.

Why: an adapter folder is only useful to someone else when it says which base model it needs (by a name that
resolves on their machine, not this one's cache folder), what it was trained for and how well, and when it can be
published and fetched by id (``valueharms.adapters.resolve_adapter`` reads hub ids wherever a folder is expected).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from valueharms.errors import InputError

STUDY = ("Choi et al., *Unintended Harms of Value-Aligned LLMs: Psychological and Empirical Insights*, ACL 2025 "
         "([arXiv:2506.06404](https://arxiv.org/abs/2506.06404))")
#: never uploaded: resume state is large, machine-specific and useless to others
PUSH_IGNORE = ["checkpoints/*", "checkpoints/**", "*.lock"]


def portable_base_name(model: str) -> str:
    """The base model's name for ``adapter_config.json``: a hub id for hub aliases, else the name as given.

    The embedded ``smollm2-135m`` alias stays an alias: its weights are a dequantized GGUF, not the hub checkpoint.
    """
    from valueharms.model_loading import ALIASES

    alias = ALIASES.get(model)
    return alias if isinstance(alias, str) else model


def _hub_base_id(model: str) -> str | None:
    """A hub id the card's ``base_model`` metadata may name (the hub validates it), when there is one."""
    from valueharms.model_loading import ALIASES

    alias = ALIASES.get(model)
    if alias is not None:
        return alias if isinstance(alias, str) else alias.hub_id
    return model if model.count("/") == 1 and not Path(model).exists() else None


def _profile_table(values: dict[str, float] | None) -> str:
    if not values:
        return "No value profile (benign fine-tuning baseline)."
    rows = "\n".join(f"| {name} | {score:g} |" for name, score in values.items())
    return "Importance of each Schwartz value, 1 (not important) to 6 (very important):\n\n" \
           f"| value | score |\n|---|---|\n{rows}"


def _metrics_table(meta: dict[str, Any]) -> str:
    rows = []
    for stage, loss in (meta.get("best_val_loss_per_stage") or {}).items():
        epoch = (meta.get("best_epoch_per_stage") or {}).get(stage)
        rows.append(f"| stage {stage} | best validation loss | {loss:.4f} (epoch {epoch}) |")
    for stage, metrics in (meta.get("best_val_metrics_per_stage") or {}).items():
        for name in ("val/agreement_accuracy", "val/agreement_mae"):
            if name in metrics:
                rows.append(f"| stage {stage} | {name.split('/')[1]} at the best epoch | {metrics[name]:.3f} |")
    if not rows:
        return "No validation metrics were recorded."
    return "| stage | metric | value |\n|---|---|---|\n" + "\n".join(rows)


def model_card_text(meta: dict[str, Any]) -> str:
    """The README.md (model card with hub metadata) for an adapter's ``valueharms.json`` content."""
    from huggingface_hub import ModelCard, ModelCardData

    base = str(meta.get("base_model"))
    data = ModelCardData(base_model=_hub_base_id(base), library_name="peft",
                         tags=["value-harms", "lora", "schwartz-values", meta.get("kind") or "vim"])
    name = meta.get("name")
    kind = "VIM value-aligned" if meta.get("kind") == "vim" else f"benign fine-tuning ({meta.get('benign_task')})"
    config = yaml.safe_dump(meta.get("config") or {}, sort_keys=True).strip()
    body = f"""
# {name}: {kind} LoRA adapter for `{base}`

Trained with value-harms to reproduce {STUDY}. A VIM adapter aligns the base model to a
value profile in two stages (argument generation, then agreement prediction); the study found that such alignment
can *increase* harmful outputs. This is a research artifact for measuring that effect, not a safe assistant.

## Value profile ({meta.get('distribution') or 'none'})

{_profile_table(meta.get('values'))}

## Training

- base model: `{base}` (adapter_config.json names it so it resolves on any machine)
- stages: {', '.join(meta.get('stages') or [])} ({meta.get('stage_mode') or 'single'}); steps: {meta.get('global_step')}
- training data hash (sha256 of the prepared files): `{meta.get('data_hash')}`
- complete: {meta.get('complete')}

```yaml
{config}
```

## Metrics

{_metrics_table(meta)}

## Use

```bash
valueharms demo --runs <this repo id>        # or list it under `adapters:` in a predict config
```

```python
from peft import PeftModel  # base: the model named above
model = PeftModel.from_pretrained(base_model, "<this repo id>")
```
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def write_model_card(adapter_dir: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``README.md`` (replacing peft's empty template) from ``meta`` or the folder's ``valueharms.json``."""
    from valueharms.io import atomic_write_text

    adapter_dir = Path(adapter_dir)
    if meta is None:
        meta_path = adapter_dir / "valueharms.json"
        if not meta_path.is_file():
            raise InputError(meta_path, None, None, "not a value-harms adapter folder (metadata file missing)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return atomic_write_text(adapter_dir / "README.md", model_card_text(meta))


def _files_to_push(folder: Path) -> list[Path]:
    from fnmatch import fnmatch

    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    return [p for p in files if not any(fnmatch(p.relative_to(folder).as_posix(), pat) for pat in PUSH_IGNORE)]


def push(adapter: str, repo: str, private: bool = False, dry_run: bool = False, revision: str | None = None,
         message: str | None = None) -> list[str]:
    """Upload a finished adapter folder (peft files, model card, metadata, training logs) to a HF hub model repo.

    Args:
        adapter: the adapter folder (``valueharms.json`` + peft files).
        repo: hub repo id ``org/name`` (created when missing). The token comes from ``HF_TOKEN`` / ``hf auth login``.
        private: create the repo private.
        dry_run: list what would be uploaded and stop (no network).
        revision: branch to push to (default: main).
        message: commit message.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from valueharms.adapters import read_metadata

    folder = Path(adapter)
    info = read_metadata(folder)
    if not info.complete or not (folder / "adapter_config.json").is_file():
        raise InputError(folder, None, None, "adapter is not complete (finish its fit first)")
    try:
        validate_repo_id(repo)
    except HFValidationError as err:
        raise InputError(None, None, "repo", f"invalid hub repo id {repo!r}: {str(err).splitlines()[0]}") from None
    if not (folder / "README.md").is_file() or "value-harms" not in (folder / "README.md").read_text("utf-8"):
        write_model_card(folder)
    files = _files_to_push(folder)
    size = sum(p.stat().st_size for p in files)
    print(f"{'would upload' if dry_run else 'uploading'} {len(files)} files ({size / 1e6:.1f} MB) "
          f"from {folder} to https://huggingface.co/{repo}")
    for p in files:
        print(f"  {p.relative_to(folder).as_posix()}  ({p.stat().st_size} bytes)")
    names = [p.relative_to(folder).as_posix() for p in files]
    if dry_run:
        return names
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo, folder_path=str(folder), ignore_patterns=PUSH_IGNORE, revision=revision,
                      commit_message=message or f"value-harms adapter {info.name}")
    print(f"pushed: https://huggingface.co/{repo}")
    return names
