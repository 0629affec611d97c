"""The vLLM backend of ``valueharms predict`` (``model.init_args.backend: vllm``; ``pip install '.[vllm]'``).

Why: HF ``generate`` has no continuous batching or paged KV cache; vLLM's offline ``LLM`` with multi-LoRA serves
every adapter condition from one base model, schedules every pending request of a batch at once and reuses shared
prompt prefixes (the ICL preambles). Records, keys and fingerprints are the hf backend's; only the text generator
differs. vLLM is imported lazily, and tests inject a fake API (``api=``) so the requests are checked on CPU.

Requests: the pending samples of one prompt (same key but the sample index) form one request with ``n`` samples
and a seed derived from the run seed and the request key, so a rerun draws the same samples. Greedy decoding
sends one request per sample (``n`` must be 1 for greedy in vLLM). Prompts are sent as token ids from
:func:`valueharms.decode.encode_ids`, so both backends apply the same BOS rule.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

from valueharms.decode import encode_ids, truncate_at_stop
from valueharms.errors import InputError

#: LoRA ranks vLLM accepts for ``max_lora_rank``.
VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def import_vllm() -> Any:
    """vLLM's ``LLM``, ``SamplingParams`` and ``LoRARequest`` (a one-line error when the extra is not installed)."""
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise InputError(None, None, "backend", "backend 'vllm' needs vLLM: pip install '.[vllm]' (GPU machines)"
                         ) from None
    return SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams, LoRARequest=LoRARequest)


def adapter_rank(folder: str | Path) -> int:
    """The LoRA rank ``r`` in an adapter's ``adapter_config.json``."""
    path = Path(folder) / "adapter_config.json"
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["r"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(path, None, "r", f"cannot read the LoRA rank ({type(err).__name__})") from None


def request_seed(seed: int, request: str) -> int:
    """A per-request sampling seed: the run seed plus a stable hash of the request key."""
    return (int(seed) + zlib.crc32(request.encode("utf-8"))) % (2 ** 31)


def engine_options(adapters: Mapping[str, str], options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``LLM(...)`` LoRA and caching options sized for the run's adapters; ``options`` (the config's ``vllm``
    mapping: gpu_memory_utilization, max_model_len, tensor_parallel_size, max_loras...) override them."""
    out: dict[str, Any] = {"enable_prefix_caching": True}
    if adapters:
        rank = max(adapter_rank(p) for p in adapters.values())
        out.update(enable_lora=True, max_lora_rank=next((r for r in VLLM_RANKS if r >= rank), rank),
                   max_loras=min(len(adapters), 8), max_cpu_loras=len(adapters))
    out.update(options or {})
    return out


class VLLMGenerator:
    """One vLLM engine with every adapter of the run; ``generate`` turns work items into texts."""

    def __init__(self, model_path: str, tokenizer: Any, adapters: Mapping[str, str], *, dtype: str | None = None,
                 seed: int = 42, options: Mapping[str, Any] | None = None, api: Any = None) -> None:
        """Args:
            model_path: a local folder or hub id (what ``resolve_model`` gives).
            tokenizer: the HF tokenizer that builds model inputs and their token ids.
            adapters: peft adapter name (a condition's ``adapter_name``) -> adapter folder.
            options: extra ``LLM`` keyword arguments. api: the vLLM API (tests pass a fake one).
        """
        self.api = api or import_vllm()
        self.tokenizer = tokenizer
        self.lora = {name: self.api.LoRARequest(name, i, str(path))
                     for i, (name, path) in enumerate(sorted(adapters.items()), start=1)}
        self.llm = self.api.LLM(model=model_path, tokenizer=model_path, dtype=dtype or "auto", seed=seed,
                                **engine_options(adapters, options))

    def sampling(self, decoding: Any, stop: Sequence[str], n: int, seed: int) -> Any:
        """The protocol's decoding as ``SamplingParams`` (temperature 0 for greedy)."""
        temperature = 0.0 if decoding.greedy else decoding.temperature
        top_p = 1.0 if decoding.greedy else decoding.top_p
        return self.api.SamplingParams(n=n, temperature=temperature, top_p=top_p,
                                       max_tokens=decoding.max_new_tokens, stop=list(stop) or None, seed=seed)

    def generate(self, items: Sequence[Any], inputs: Sequence[str], seed: int) -> list[tuple[str, int]]:
        """(text, seed) per item; items are WorkItems, ``inputs`` their exact model inputs."""
        requests: list[tuple[str, list[int]]] = []  # (request key, item indices)
        for i, it in enumerate(items):
            same = requests and requests[-1][0] == it.request and not it.decoding.greedy
            if same:
                requests[-1][1].append(i)
            else:
                requests.append((it.request, [i]))
        ids = encode_ids(self.tokenizer, [inputs[idx[0]] for _, idx in requests])
        prompts = [{"prompt_token_ids": row} for row in ids]
        seeds = [request_seed(seed, key) + items[idx[0]].sample_index for key, idx in requests]
        params = [self.sampling(items[idx[0]].decoding, items[idx[0]].stop, len(idx), s)
                  for (_, idx), s in zip(requests, seeds)]
        loras = [self._lora(items[idx[0]].condition.adapter_name) for _, idx in requests]
        outputs = self.llm.generate(prompts, params, lora_request=loras, use_tqdm=True)
        result: list[tuple[str, int] | None] = [None] * len(items)
        for (key, idx), out, s in zip(requests, outputs, seeds):
            texts = [o.text for o in out.outputs]
            if len(texts) != len(idx):
                raise RuntimeError(f"vLLM returned {len(texts)} samples for {key}, expected {len(idx)}")
            for i, text in zip(idx, texts):
                result[i] = (truncate_at_stop(text, items[i].stop), s)
        return result  # type: ignore[return-value]

    def _lora(self, adapter_name: str | None) -> Any:
        if adapter_name is None:
            return None
        if adapter_name not in self.lora:
            raise InputError(None, None, "adapter", f"no LoRA request for adapter {adapter_name!r}")
        return self.lora[adapter_name]
