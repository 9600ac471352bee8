"""Shared fixtures: where the shared corpus lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def corpus_path() -> Path:
    """$MONITOR_CORPUS, else ../shared/corpus beside the repo."""
    return Path(os.environ.get("MONITOR_CORPUS", REPO.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_path()
    if not path.is_dir():
        pytest.skip(f"shared corpus not found at {path} (set MONITOR_CORPUS to its path)")
    return path
