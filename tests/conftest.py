"""Shared fixtures: a tiny random Llama model and tokenizer, the repo's paths, and ../shared/data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
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
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: tests read the real data samples there (see README)")
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
