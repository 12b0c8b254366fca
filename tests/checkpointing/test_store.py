"""The durable store, RNG capture and the sampler's resume position, without training."""
from __future__ import annotations

import errno
import json
import os
import random

import numpy as np
import pytest
import torch

from lipsync.checkpointing import store as store_module
from lipsync.checkpointing.rng import capture_rng, restore_rng
from lipsync.checkpointing.store import CheckpointStore, sha256_of
from lipsync.data.sampler import EpochSampler


def _ckpt(step: int) -> dict:
    return {"global_step": step, "state_dict": {"w": torch.full((4,), float(step))}}


def test_save_writes_payload_then_manifest_then_last_link(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    path = store.save(_ckpt(5), 5, {"config_hash": "abc"})
    assert path.name == "step-000000005.ckpt"
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["sha256"] == sha256_of(path) and manifest["bytes"] == path.stat().st_size
    assert manifest["step"] == 5 and manifest["config_hash"] == "abc"
    assert os.readlink(tmp_path / "checkpoints" / "last.ckpt") == path.name  # relative: the run dir can move
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5
    assert not store.partial_files()


def test_keeps_the_last_k_plus_the_best(tmp_path):
    store = CheckpointStore(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        store.save(_ckpt(step), step, {})
    store.mark_best(2)
    for step in (4, 5):
        store.save(_ckpt(step), step, {})
    assert sorted(p.name for p in tmp_path.glob("step-*.ckpt")) == [
        "step-000000002.ckpt", "step-000000004.ckpt", "step-000000005.ckpt"]
    assert sorted(p.name for p in tmp_path.glob("step-*.json")) == [
        "step-000000002.json", "step-000000004.json", "step-000000005.json"]


def test_disk_full_during_a_save_leaves_older_checkpoints_intact(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    first = store.save(_ckpt(1), 1, {})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    def full_disk(f, checkpoint):
        f.write(b"\0" * 1000)  # part of the payload made it to disk, then the disk filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "write_payload", full_disk)
    with pytest.raises(OSError, match="No space left"):
        store.save(_ckpt(2), 2, {})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert os.readlink(tmp_path / "last.ckpt") == first.name
    assert not store.partial_files() and not (tmp_path / "step-000000002.ckpt").exists()


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.save({"rng": capture_rng()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


def test_sampler_resumes_inside_an_epoch_and_forgets_it_in_the_next():
    sampler = EpochSampler(list(range(10)), seed=4)
    sampler.set_epoch(2)
    full = list(sampler)
    state = sampler.state_dict(samples_done=6)
    fresh = EpochSampler(list(range(10)), seed=4)
    fresh.load_state_dict(state)
    fresh.set_epoch(2)  # Lightning sets the same epoch again before iterating: the position stays
    assert list(fresh) == full[6:]
    fresh.set_epoch(3)
    assert len(list(fresh)) == 10 and len(fresh) == 10
    with pytest.raises(ValueError, match="corpus or data config changed"):
        EpochSampler(list(range(11)), seed=4).load_state_dict(state)


def test_stop_signals_record_the_request_and_restore_the_handlers():
    import signal

    from lipsync.checkpointing.signals import StopSignals

    before = signal.getsignal(signal.SIGUSR1)
    with StopSignals() as stop:
        stop.install()  # installing again (after a library replaced them) keeps the true originals
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) is before
