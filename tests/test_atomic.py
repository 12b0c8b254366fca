"""Atomic writes: all or nothing, usual permissions, no overwrite unless asked."""
from __future__ import annotations

import os
import stat

import pytest

from lipsync.atomic import FILE_MODE, OutputExistsError, atomic_write


def test_writes_whole_file_with_usual_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target) as f:
        f.write("hello")
    assert target.read_text() == "hello"
    assert stat.S_IMODE(os.stat(target).st_mode) == FILE_MODE


def test_error_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_refuses_to_overwrite_unless_asked(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("keep")
    with pytest.raises(OutputExistsError):
        with atomic_write(target, overwrite=False) as f:
            f.write("new")
    assert target.read_text() == "keep"
