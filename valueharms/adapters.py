"""Adapter folders: peft's own files plus ``valueharms.json`` metadata that later steps read.

Wherever an adapter folder is expected, a Hugging Face hub id works too (``org/name``, ``org/name@revision``, or
``hf://org/name/sub/folder`` for one adapter inside a repo holding many): it is downloaded once with
``huggingface_hub.snapshot_download`` (its cache; ``HF_HUB_OFFLINE=1`` reads the cache only) and used like a folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from valueharms.errors import InputError
from valueharms.io import atomic_write_json
from valueharms.values import ValueProfile

METADATA_FILE = "valueharms.json"
METADATA_FORMAT = 1


@dataclass
class AdapterInfo:
    """What a trained adapter is: where it lives, what it was trained for, on which base model."""

    path: Path
    name: str
    kind: str  # "vim" | "benign"
    base_model: str
    distribution: str | None = None
    values: dict[str, float] | None = None
    benign_task: str | None = None
    complete: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def profile(self) -> ValueProfile | None:
        if self.values is None:
            return None
        return ValueProfile.from_mapping(self.distribution or self.name, self.values)

    @property
    def condition(self) -> str:
        """The condition name used in generation records (``vim:Pow``, ``benign:alpaca``)."""
        return f"{self.kind}:{self.name}"


def write_metadata(
    adapter_dir: str | Path,
    *,
    kind: str,
    name: str,
    base_model: str,
    profile: ValueProfile | None = None,
    benign_task: str | None = None,
    data_hash: str | None = None,
    config: Mapping[str, Any] | None = None,
    complete: bool = False,
    **extra: Any,
) -> Path:
    """Write ``valueharms.json`` atomically; call with ``complete=True`` only after the peft files are saved."""
    meta = {
        "format": METADATA_FORMAT,
        "kind": kind,
        "name": name,
        "distribution": profile.name if profile else None,
        "values": profile.as_dict() if profile else None,
        "benign_task": benign_task,
        "base_model": base_model,
        "data_hash": data_hash,
        "config": dict(config or {}),
        "complete": complete,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **extra,
    }
    return atomic_write_json(Path(adapter_dir) / METADATA_FILE, meta)


_HUB_REF = re.compile(r"^(?P<hf>hf://)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?P<sub>(?:/[\w.-]+)*)(?:@(?P<rev>[\w./-]+))?$")


def resolve_adapter(ref: str | Path, *, required: bool = True) -> Path:
    """A local folder as is; a hub id (see module docstring) downloaded to the hub cache and returned as a folder.

    A missing local path that is not a hub id is returned unchanged (callers report it). With ``required=False`` a
    hub id that cannot be fetched is also returned unchanged instead of raising.
    """
    path = Path(ref).expanduser()
    text = str(ref)
    match = _HUB_REF.match(text)
    if path.exists() or match is None or (match["sub"] and not match["hf"]):
        return path
    from huggingface_hub import snapshot_download

    sub = match["sub"].strip("/")
    try:
        local = Path(snapshot_download(repo_id=match["repo"], revision=match["rev"],
                                       allow_patterns=[f"{sub}/*", f"{sub}/**"] if sub else None))
    except Exception as err:  # noqa: BLE001 (offline, not found, auth, network: one line for the user)
        if not required:
            return path
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise InputError(text, None, None, f"no such folder, and no hub repo could be fetched "
                         f"({type(err).__name__}: {first})") from None
    return local / sub if sub else local


def read_metadata(adapter_dir: str | Path) -> AdapterInfo:
    adapter_dir = resolve_adapter(adapter_dir)
    path = adapter_dir / METADATA_FILE
    if not path.is_file():
        raise InputError(path, None, None, "not a value-harms adapter folder (metadata file missing)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(path, err.lineno, None, f"invalid JSON ({err.msg})") from None
    for key in ("kind", "name", "base_model"):
        if key not in meta:
            raise InputError(path, None, key, "missing field")
    return AdapterInfo(
        path=adapter_dir,
        name=meta["name"],
        kind=meta["kind"],
        base_model=meta["base_model"],
        distribution=meta.get("distribution"),
        values=meta.get("values"),
        benign_task=meta.get("benign_task"),
        complete=bool(meta.get("complete")),
        meta=meta,
    )


def is_complete(adapter_dir: str | Path) -> bool:
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        return False
    try:
        return read_metadata(adapter_dir).complete
    except InputError:
        return False


def find_adapters(root: str | Path, *, complete_only: bool = True) -> list[AdapterInfo]:
    """All adapter folders below ``root`` (a folder or hub id; sorted by name), complete ones only by default."""
    root = resolve_adapter(root, required=False)
    found: list[AdapterInfo] = []
    for meta_path in sorted(root.rglob(METADATA_FILE)) if root.exists() else []:
        info = read_metadata(meta_path.parent)
        if complete_only and not (info.complete and (info.path / "adapter_config.json").is_file()):
            continue
        found.append(info)
    return sorted(found, key=lambda a: (a.kind, a.name))


def iter_adapter_dirs(root: str | Path) -> Iterator[Path]:
    for info in find_adapters(root):
        yield info.path


def adapters_from(refs: Iterable[str | Path]) -> list[AdapterInfo]:
    """Adapters named by the user (pvq, the demo): an adapter folder, a folder searched for complete adapters, or a
    Hugging Face hub id (see :func:`resolve_adapter`); order kept, duplicates of one folder dropped."""
    found: dict[Path, AdapterInfo] = {}
    for ref in refs:
        path = resolve_adapter(ref)
        if (path / METADATA_FILE).is_file():
            infos = [read_metadata(path)]
        elif path.is_dir():
            infos = find_adapters(path)
        else:
            raise InputError(ref, None, None, "no such adapter folder or Hugging Face hub id")
        for info in infos:
            found.setdefault(info.path.resolve(), info)
    return list(found.values())


def attach_adapters(base: Any, adapters: Mapping[str, str | Path]) -> Any:
    """``base`` wrapped in ONE PeftModel holding every adapter (peft adapter name -> folder), ``base`` when none.

    Switch between them with ``set_adapter(name)``; a folder peft cannot load is an :class:`InputError` naming it.
    """
    model = base
    for i, (name, path) in enumerate(adapters.items()):
        try:
            if i == 0:
                from peft import PeftModel

                model = PeftModel.from_pretrained(base, str(path), adapter_name=name)
            else:
                model.load_adapter(str(path), adapter_name=name)
        except Exception as err:  # noqa: BLE001 (peft raises many kinds; the user needs the folder)
            raise InputError(path, None, None, f"adapter failed to load ({type(err).__name__}: {err})") from None
    return model


def training_curves(adapter_dir: str | Path) -> Any:
    """The fit's logged metrics as a pandas DataFrame (one row per logged step; columns ``step``, ``epoch``,
    ``train/loss``, ``val/loss``, ``val/agreement_accuracy`` ...), from ``<adapter>/logs/version_*/metrics.csv``.

    Each rerun of a fit (resume) writes a new version; rows of an earlier version at or after the step where a later
    version starts are dropped (that later run retrained those steps), so the curve is the one the weights followed.
    Empty DataFrame when the fit logged nothing.
    """
    import pandas as pd

    logs = resolve_adapter(adapter_dir) / "logs"
    versions = sorted(logs.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    frames = [pd.read_csv(p) for p in versions if p.stat().st_size]
    curve = pd.DataFrame()
    for frame in frames:
        if frame.empty:
            continue
        if not curve.empty and "step" in frame:
            curve = curve[curve["step"] < frame["step"].min()]
        curve = pd.concat([curve, frame], ignore_index=True)
    return curve
