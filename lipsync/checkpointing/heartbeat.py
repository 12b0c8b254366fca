"""The heartbeat file a supervised child touches after every step, and how the supervisor reads it.

One line, ``<step> <longest step seconds>``, replaced by rename (no fsync: it
only has to survive while the supervisor watches; a power cut restarts both).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import lightning.pytorch as pl

HEARTBEAT_ENV = "LIPSYNC_HEARTBEAT_FILE"


def write_heartbeat(path: Path, step: int, longest_step_s: float) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{step} {longest_step_s:.6f}\n")
    os.replace(tmp, path)


def read_heartbeat(path: Path) -> tuple[int, float] | None:
    try:
        step, longest = path.read_text().split()
        return int(step), float(longest)
    except (OSError, ValueError):
        return None


class Heartbeat(pl.Callback):
    """Writes the heartbeat at every training and validation batch end."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.longest_step_s = 0.0
        self._last = None

    def _beat(self, trainer, step_done: bool) -> None:
        now = time.monotonic()
        if step_done and self._last is not None:
            self.longest_step_s = max(self.longest_step_s, now - self._last)
        self._last = now
        write_heartbeat(self.path, trainer.global_step, self.longest_step_s)

    def on_train_start(self, trainer, pl_module) -> None:
        self._beat(trainer, step_done=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._beat(trainer, step_done=True)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._beat(trainer, step_done=False)
        self._last = None  # the next step's time starts after validation
