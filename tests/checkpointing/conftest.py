"""A tiny, fully deterministic training command and one uninterrupted reference run of it.

Every fault test runs the *same command* (scripts/train.py with TINY) against
its own run dir, injects faults through lipsync.checkpointing.testhooks, and
compares the end state with the reference: parameters and optimizer state
with atol=0, and the sequence of samples trained on.

TINY: 16 train clips x 2 windows / batch 4 = 8 steps per epoch, 12 steps,
a checkpoint every 2 steps, validation (1 batch) after steps 3, 6, 9 and 12.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from support import REPO

TINY = ["experiment=scratch", "trainer=cpu", "model.encoder.hidden=16", "model.head.hidden=16", "model.head.layers=2",
        "data.batch_size=4", "data.windows_per_clip=2", "trainer.max_steps=12", "trainer.val_check_interval=3",
        "+trainer.limit_val_batches=1", "trainer.deterministic=true", "checkpoint.every_steps=2",
        "checkpoint.every_minutes=null", "callbacks.progress_bar.refresh_rate=0", "plot_clips=0", "health=off"]
STEPS_PER_EPOCH, MAX_STEPS = 8, 12
HOOK_VARS = ("LIPSYNC_TEST_KILL_AT_STEP", "LIPSYNC_TEST_KILL_IN_VALIDATION_AT_STEP", "LIPSYNC_TEST_KILL_IN_SAVE_AT_STEP",
             "LIPSYNC_TEST_STOP_AT_STEP", "LIPSYNC_TEST_SIGNAL_AT_STEP", "LIPSYNC_TEST_SIGNAL_AFTER_STEP",
             "LIPSYNC_TEST_SAMPLE_LOG")


def train_command(corpus: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / "train.py"), *TINY, f"data.root={corpus}", f"run.dir={run_dir}",
            *extra]


def run_train(command: list[str], timeout: float = 240, **hooks: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in HOOK_VARS}
    env.update({k: str(v) for k, v in hooks.items()}, HF_HUB_OFFLINE="1")
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def read_samples(path: Path) -> dict[int, tuple[str, ...]]:
    """step -> (epoch, clip ids, audio sum) of the batch trained at that step; a replayed step keeps its last line."""
    out: dict[int, tuple[str, ...]] = {}
    for line in path.read_text().splitlines():
        step, *rest = line.split()
        out[int(step)] = tuple(rest)
    return out


def final_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def assert_identical(state: dict, reference: dict) -> None:
    assert state["global_step"] == reference["global_step"]
    assert state["state_dict"].keys() == reference["state_dict"].keys()
    for name, tensor in reference["state_dict"].items():
        torch.testing.assert_close(state["state_dict"][name], tensor, atol=0, rtol=0, msg=name)
    assert _flat(state["optimizer_states"]).keys() == _flat(reference["optimizer_states"]).keys()
    for key, value in _flat(reference["optimizer_states"]).items():
        other = _flat(state["optimizer_states"])[key]
        assert torch.equal(other, value) if torch.is_tensor(value) else other == value, key
    assert state["lr_schedulers"] == reference["lr_schedulers"]


def _flat(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _flat(val, f"{prefix}.{key}").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, val in enumerate(obj) for k, v in _flat(val, f"{prefix}[{i}]").items()}
    return {prefix: obj}


@pytest.fixture(scope="session")
def reference_run(mini_corpus, tmp_path_factory) -> Path:
    """The uninterrupted run, with its sample log beside the run dir (``samples.log``)."""
    root = tmp_path_factory.mktemp("reference")
    proc = run_train(train_command(mini_corpus, root / "run"), LIPSYNC_TEST_SAMPLE_LOG=root / "samples.log")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run"
