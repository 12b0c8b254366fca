"""Deterministic fault injection for tests/checkpointing (environment variables; no effect when unset).

    LIPSYNC_TEST_KILL_AT_STEP=3,9             SIGKILL at the end of step 3 (after any save at that step), ...
    LIPSYNC_TEST_KILL_IN_VALIDATION_AT_STEP=6 SIGKILL in the middle of the validation that follows step 6
    LIPSYNC_TEST_KILL_IN_SAVE_AT_STEP=8[:manifest]  SIGKILL half-way through writing step 8 (lipsync.checkpointing.store)
    LIPSYNC_TEST_STOP_AT_STEP=7               SIGSTOP at the end of step 7: a simulated hang
    LIPSYNC_TEST_SIGNAL_AT_STEP=5:SIGTERM     send this signal to ourselves at the start of step 5
    LIPSYNC_TEST_SIGNAL_AFTER_STEP=5:SIGTERM  ... at the end of step 5, after the checkpoint callback's own check
    LIPSYNC_TEST_SAMPLE_LOG=path              append "step epoch ids audio_sum" for every training batch

Each fault fires once per run dir (a marker under ``<run dir>/.test-hooks/``),
so the same command can simply be run again until it finishes.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

MARKERS = ".test-hooks"


def fire_once(run_dir: Path, name: str) -> bool:
    """True the first time ``name`` is asked for in ``run_dir`` (and records that it fired)."""
    marker = Path(run_dir) / MARKERS / name
    if marker.exists():
        return False
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return True


def _steps(var: str) -> set[int]:
    value = os.environ.get(var, "")
    return {int(s) for s in value.split(",") if s.strip()}


def _signal(run_dir: Path, var: str, step: int) -> None:
    at, _, name = os.environ.get(var, "").partition(":")
    if at and int(at) == step and fire_once(run_dir, f"{var}-{step}"):
        os.kill(os.getpid(), getattr(signal, name or "SIGTERM"))


def at_step_end(run_dir: Path, step: int) -> None:
    _signal(run_dir, "LIPSYNC_TEST_SIGNAL_AFTER_STEP", step)
    if step in _steps("LIPSYNC_TEST_KILL_AT_STEP") and fire_once(run_dir, f"kill-at-{step}"):
        os.kill(os.getpid(), signal.SIGKILL)
    if step in _steps("LIPSYNC_TEST_STOP_AT_STEP") and fire_once(run_dir, f"stop-at-{step}"):
        os.kill(os.getpid(), signal.SIGSTOP)


def in_validation(run_dir: Path, step: int) -> None:
    if step in _steps("LIPSYNC_TEST_KILL_IN_VALIDATION_AT_STEP") and fire_once(run_dir, f"kill-in-val-{step}"):
        os.kill(os.getpid(), signal.SIGKILL)


def at_step_start(run_dir: Path, step: int) -> None:
    _signal(run_dir, "LIPSYNC_TEST_SIGNAL_AT_STEP", step)


def log_sample(step: int, epoch: int, batch: dict) -> None:
    path = os.environ.get("LIPSYNC_TEST_SAMPLE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{step} {epoch} {','.join(batch['ids'])} {float(batch['audio'].double().sum())!r}\n")
