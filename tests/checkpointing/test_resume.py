"""Verified resume on copies of the reference run: corruption falls back and says why; config changes are refused."""
from __future__ import annotations

import os
import shutil

import pytest
import torch

from conftest import TINY, assert_identical, final_state
from support import compose_train
from lipsync.checkpointing.resume import ResumeRefused, find_resume_point
from lipsync.checkpointing.store import CheckpointStore
from lipsync.training.train import train, watched_config


@pytest.fixture
def unfinished_copy(reference_run, tmp_path):
    """The reference run dir as if it had been killed after its last checkpoint (no done.json)."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir, symlinks=True)
    (run_dir / "done.json").unlink()
    return run_dir


def _cfg(corpus, run_dir, *extra):
    return compose_train([*TINY, f"data.root={corpus}", f"run.dir={run_dir}", *extra])


def _corrupt(path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "flipped_byte":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "zero_length":
        path.write_bytes(b"")
    elif how == "missing_manifest":
        path.with_suffix(".json").unlink()
    elif how == "dangling_last":
        path.unlink()  # last.ckpt still points at it


@pytest.mark.parametrize("how, reason", [
    ("truncated", "truncated"), ("flipped_byte", "sha256 does not match"), ("zero_length", "empty file"),
    ("missing_manifest", "no manifest"), ("dangling_last", "checkpoint file is missing"),
])
def test_a_bad_newest_checkpoint_falls_back_to_the_previous_and_says_why(mini_corpus, unfinished_copy, how, reason):
    store = CheckpointStore(unfinished_copy / "checkpoints")
    newest, previous = store.candidates()[:2]
    _corrupt(newest.path, how)
    point = find_resume_point(store, watched_config(_cfg(mini_corpus, unfinished_copy)))
    assert point.step == previous.step
    assert [(p.name, reason in why) for p, why in point.rejected] == [(newest.path.name, True)]
    if how == "dangling_last":
        assert any("dangling" in note for note in point.notes)
    assert os.readlink(store.folder / "last.ckpt") == previous.path.name
    assert list((store.folder / "rejected").glob(f"{newest.path.name}.*.why.txt"))


def test_resume_after_corruption_finishes_bit_identical(mini_corpus, reference_run, unfinished_copy, capsys):
    store = CheckpointStore(unfinished_copy / "checkpoints")
    newest, previous = store.candidates()[:2]
    _corrupt(newest.path, "flipped_byte")
    try:
        assert train(_cfg(mini_corpus, unfinished_copy)) == 0
    finally:
        torch.use_deterministic_algorithms(False)
    out = capsys.readouterr().out
    assert f"Not resuming from {newest.path}: sha256 does not match the manifest" in out
    assert f"Resuming from {previous.path} at step {previous.step}" in out
    assert_identical(final_state(unfinished_copy), final_state(reference_run))


def test_no_usable_checkpoint_refuses_to_start_fresh(mini_corpus, unfinished_copy):
    store = CheckpointStore(unfinished_copy / "checkpoints")
    for candidate in store.candidates():
        _corrupt(candidate.path, "zero_length")
    with pytest.raises(ResumeRefused, match="no usable checkpoint.*run.restart=true"):
        train(_cfg(mini_corpus, unfinished_copy))


def test_model_change_is_refused_unless_allowed(mini_corpus, unfinished_copy):
    with pytest.raises(ResumeRefused, match=r"model.head.hidden: 16 -> 32.*run.allow_config_change=true"):
        train(_cfg(mini_corpus, unfinished_copy, "model.head.hidden=32"))
    store = CheckpointStore(unfinished_copy / "checkpoints")
    point = find_resume_point(store, watched_config(_cfg(mini_corpus, unfinished_copy, "data.window_seconds=1.0")),
                              allow_config_change=True)
    assert any("data.window_seconds: 2.0 -> 1.0" in note for note in point.notes)


def test_learning_rate_change_is_applied_on_resume(mini_corpus, unfinished_copy, capsys):
    try:
        assert train(_cfg(mini_corpus, unfinished_copy, "optim.optimizer.lr=0.0005", "trainer.max_steps=13")) == 0
    finally:
        torch.use_deterministic_algorithms(False)
    assert "Learning rate changed from 0.002 (checkpoint) to 0.0005 (config)" in capsys.readouterr().out
    state = final_state(unfinished_copy)
    assert state["global_step"] == 13
    assert state["optimizer_states"][0]["param_groups"][0]["initial_lr"] == 0.0005
    assert state["lr_schedulers"][0]["base_lrs"] == [0.0005]


def test_finished_run_says_so_and_restart_archives_it(mini_corpus, reference_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir, symlinks=True)
    assert train(_cfg(mini_corpus, run_dir)) == 0
    assert "is finished (step 12); nothing to do" in capsys.readouterr().out
    try:
        assert train(_cfg(mini_corpus, run_dir, "run.restart=true", "trainer.max_steps=2")) == 0
    finally:
        torch.use_deterministic_algorithms(False)
    out = capsys.readouterr().out
    assert "run.restart=true: moved the previous run's files to" in out and "Resuming from" not in out
    (archived,) = (run_dir / "archive").iterdir()
    assert (archived / "done.json").is_file() and (archived / "checkpoints" / "last.ckpt").is_file()
    assert final_state(run_dir)["global_step"] == 2


def test_run_dir_still_loads_as_a_plain_model(reference_run):
    from lipsync.model.checkpoint import load_model

    model, info = load_model(reference_run)  # checkpoints/last.ckpt, a symlink to the newest complete one
    assert info["global_step"] == 12 and info["checkpoint"].endswith("step-000000012.ckpt")
    assert model.channels and not model.training
