"""Shared fixtures for the safety tests."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from safety.lexicon import DATA_FILES


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A private copy of ``safety/data`` for a test that edits it and loads it."""
    src = resources.files("safety").joinpath("data")
    for name in DATA_FILES:
        (tmp_path / name).write_bytes(src.joinpath(name).read_bytes())
    return tmp_path
