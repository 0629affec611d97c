"""Shared fixtures: a tiny random Llama model and tokenizer, the repo's paths, and the study's real data.

Real data is optional: tests that use it take the ``shared_data`` fixture and skip (with the reason) when it is
absent, so a fresh clone passes ``make test`` on the small fixtures the tests build themselves. The data folder is
``$VALUEHARMS_TEST_DATA`` when set, else a ``shared/data`` folder beside the checkout (laid out like ``data/``:
``original/...``, ``holistic_bias/v1.1/...``), else the checkout's own ``data/`` from ``valueharms data``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

def _real_data_dir() -> Path | None:
    env = os.environ.get("VALUEHARMS_TEST_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    for candidate in (REPO.parent / "shared" / "data", REPO / "data"):
        if (candidate / "original").is_dir():
            return candidate
    return None


SHARED_DATA = _real_data_dir()
sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The study's real data folder; the test is skipped when there is none (a fresh clone)."""
    if SHARED_DATA is None:
        pytest.skip("the study's real data is absent (run `valueharms data`, or set VALUEHARMS_TEST_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tiny import make_tiny_tokenizer

    return make_tiny_tokenizer()


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    from tiny import make_tiny_model

    return make_tiny_model(tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny model + tokenizer saved as a transformers folder (what users pass as a local model path)."""
    from tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-llama"))
