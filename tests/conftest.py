"""Shared test setup: offline environment, thread count, and the path to ../shared/data.

Tests that read real media take the ``shared_data`` fixture; it skips with a reason when the
folder is absent (a user's fresh clone has no ``../shared``). Override the location with the
environment variable ``DIFFTTED_SHARED_DATA``.
"""

from __future__ import annotations

import os
from pathlib import Path

# Nothing in the test suite may reach a model hub or send telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DIFFTTED_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (see its README); skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-data test: {SHARED_DATA} is absent (only present beside the project checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def astronaut_path(tmp_path_factory) -> Path:
    """scikit-image's astronaut (a real upper-body photo, 512x512) as a png."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    """One intra-op thread for the whole suite. The tests run tiny models, which gain nothing
    from threads, and on a shared 2-core machine two OpenMP threads spin-wait for each other:
    tiny training steps and renders measured 7-20x slower with two. Benchmarks, not tests,
    measure speed (benchmarks/)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard requirement
        return
    torch.set_num_threads(1)
