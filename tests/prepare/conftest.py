"""Fixtures for the prepare tests (the input writers live in prepare_inputs.py)."""
from __future__ import annotations

import pytest
from prepare_inputs import write_livelink_csv, write_tone


@pytest.fixture
def livelink_take(tmp_path):
    """A folder with one 2 s take at 60 fps and its 2 s audio."""
    folder = tmp_path / "capture"
    folder.mkdir()
    write_livelink_csv(folder / "take1_iPhone.csv")
    write_tone(folder / "take1.wav", 2.0)
    return folder


