"""Shared fixtures. Tests that need ../shared/data skip with a clear message when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FUSIONREC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when the folder is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (set FUSIONREC_SHARED_DATA to point at them)")
    return SHARED_DATA


@pytest.fixture
def one_torch_thread():
    """Run a test with a single torch thread.

    Small models gain nothing from threads, and on the shared 2-core CI machine
    oversubscribed threads make wall times erratic. Use it per module with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
