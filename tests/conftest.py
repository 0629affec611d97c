"""Shared fixtures: a tiny random Llama model and tokenizer, the repo's paths, and the study's real data.

Real data is optional: tests that use it take a fixture below and skip (with the reason) when it is absent, so a
fresh clone passes ``make test`` on the small fixtures the tests build themselves.

* ``shared_data``: the research copy (``$VALUEHARMS_TEST_DATA``, else a ``shared/data`` folder beside the checkout):
  the study's files under ``original/`` plus upstream samples (RTP rows, HolisticBiasR sample, Touché23 rows).
* ``study_data``: only the study's files as ``valueharms data`` lays them out (``original/``, ``holistic_bias/``):
  the research copy when present, else the checkout's own ``data/``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESEARCH_COPY = Path(os.environ.get("VALUEHARMS_TEST_DATA") or REPO.parent / "shared" / "data")
SHARED_DATA = RESEARCH_COPY if (RESEARCH_COPY / "original").is_dir() else None
STUDY_DATA = SHARED_DATA or (REPO / "data" if (REPO / "data" / "original").is_dir() else None)
sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_ATTACHED: list[tuple[str, str]] = []  # (what, path) of files tests made for a person to look at


@pytest.fixture()
def attach():
    """``attach(path, what)``: list a file a test produced (a screenshot, a report) at the end of the run's output."""
    def _attach(path: Path, what: str) -> None:
        _ATTACHED.append((what, str(path)))
    return _attach


def pytest_terminal_summary(terminalreporter) -> None:
    if _ATTACHED:
        terminalreporter.section("attached files")
        for what, path in _ATTACHED:
            terminalreporter.write_line(f"{what}: {path}")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The research copy of the real data; the test is skipped when there is none (a fresh clone)."""
    if SHARED_DATA is None:
        pytest.skip(f"real-data samples absent ({RESEARCH_COPY}); set VALUEHARMS_TEST_DATA to a copy to run this")
    return SHARED_DATA


@pytest.fixture(scope="session")
def study_data() -> Path:
    """The study's files (``original/``, ``holistic_bias/``); skipped when neither copy is present."""
    if STUDY_DATA is None:
        pytest.skip("the study's data is absent: run `valueharms data` (or set VALUEHARMS_TEST_DATA) to run this")
    return STUDY_DATA


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
