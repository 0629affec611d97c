"""What produced a generation: content identities of the base model and adapters, the prompt spec, and the
``fingerprint`` every generation record carries.

Why: a generation key (benchmark|condition|mitigation|prompt|sample) says nothing about the model, adapter weights,
templates or decoding behind the text, so a retrained adapter or a changed setting used to be silently skipped on
resume. A record is reused only when its fingerprint equals the one the current settings give.

Identities are cheap on purpose (they are computed on every ``predict``):

* base model, local folder (also the converted embedded alias): sha256 of each small config/tokenizer file, and
  for each weight file its size plus the sha256 of its first and last MiB (a safetensors header names every tensor
  and its byte range; the sampled bytes change with any retraining); a hub id: its name and the commit of the
  cached snapshot. The folder's path is not part of it (moving a model keeps its identity).
* adapter: sha256 of ``adapter_config.json`` and of ``adapter_model.safetensors`` (or ``.bin``), combined.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

from valueharms.errors import InputError
from valueharms.io import sha256_file, sha256_text

FINGERPRINT_CHARS = 16
SMALL_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json",
               "special_tokens_map.json", "chat_template.jinja", "chat_template.json", "tokenizer.model",
               "model.safetensors.index.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")
SAMPLE_BYTES = 1 << 20


def _jsonable(obj: Any) -> Any:
    """JSON for the few non-JSON values in specs (value profiles, paths, tuples)."""
    if hasattr(obj, "as_dict") and hasattr(obj, "name"):  # ValueProfile
        return {"name": obj.name, "values": obj.as_dict()}
    if is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in fields(obj)}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    return str(obj)


def canonical_json(obj: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, tuples as lists."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values (what run.json stores and compares)."""
    return json.loads(canonical_json(obj))


def fingerprint(group_json: str, prompt: str) -> str:
    """The record fingerprint: short sha256 of the canonical JSON of a group's parts, a newline, the prompt text."""
    return sha256_text(group_json + "\n" + prompt)[:FINGERPRINT_CHARS]


def _sampled_sha256(path: Path) -> str:
    """``size:<bytes>:<sha256 of the first and last MiB>``: a content identity that reads at most 2 MiB."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as fh:
        h.update(fh.read(SAMPLE_BYTES))
        if size > SAMPLE_BYTES:
            fh.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            h.update(fh.read(SAMPLE_BYTES))
    return f"size:{size}:{h.hexdigest()}"


def folder_identity(folder: str | Path) -> dict[str, str]:
    """File name -> content identity for a model folder's config, tokenizer and weight files."""
    folder = Path(folder)
    out: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name in SMALL_FILES:
            out[path.name] = sha256_file(path)
        elif path.is_file() and path.suffix in WEIGHT_SUFFIXES:
            out[path.name] = _sampled_sha256(path)
    return out


def hub_revision(repo_id: str) -> str | None:
    """The commit of ``repo_id``'s snapshot (its small files are fetched, or read from the cache when offline)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.jinja", "tokenizer.model"])).name
    except Exception:  # noqa: BLE001 (offline and uncached: loading the model will say what is wrong)
        return None


def model_identity(name: str) -> dict[str, Any]:
    """The base model's identity: ``name`` for aliases and hub ids, the content of a local folder, a hub commit."""
    from valueharms.model_loading import ALIASES, resolve_model

    resolved = resolve_model(name)
    ident: dict[str, Any] = {}
    if name in ALIASES or not Path(name).expanduser().exists():
        ident["name"] = name
    if Path(resolved).is_dir():
        ident["files"] = folder_identity(resolved)
    else:
        ident["revision"] = hub_revision(resolved)
    return ident


def adapter_sha256(folder: str | Path) -> str:
    """sha256 of an adapter's config and weights (a retrained adapter in the same folder gets a new one)."""
    folder = Path(folder)
    weights = [folder / n for n in ("adapter_model.safetensors", "adapter_model.bin") if (folder / n).is_file()]
    config = folder / "adapter_config.json"
    if not weights or not config.is_file():
        raise InputError(folder, None, None, "adapter folder lacks adapter_config.json or adapter_model.safetensors")
    return hashlib.sha256((sha256_file(config) + sha256_file(weights[0])).encode()).hexdigest()


def prompt_identity(spec: Any, *, profile_values: bool = True) -> dict[str, Any]:
    """A PromptSpec as JSON with only the texts in effect (a safety prompt only when ``safety``, the suppression
    template only when values are suppressed, the ICL template text only for ICL), so editing an unused template
    does not make other records stale. Specs come from ``GenerationPlan.templates_for``, which always sets the ICL
    template of an ICL condition."""
    rec = {f.name: getattr(spec, f.name) for f in fields(spec)}
    if not rec.get("safety"):
        rec.pop("safety_prompt", None)
    if not rec.get("suppress"):
        rec.pop("suppression_template", None)
    if rec.get("icl_profile") is None:
        rec.pop("icl_template", None)
    if not profile_values:
        rec["icl_profile"] = rec.get("icl_profile") is not None
        rec["suppress"] = bool(rec.get("suppress"))
    return jsonable(rec)
