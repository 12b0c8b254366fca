"""In-process hang watchdog: no step progress for too long -> dump stacks and exit.

A daemon thread checks the heartbeat (every train/validation batch end). When
nothing has happened for ``max(multiplier x longest step seen, floor_s)``
seconds it writes every thread's stack (``faulthandler``) to
``<run_dir>/hang-<YYYYmmdd-HHMMSS>.txt``, appends a ``hang`` line to
health.jsonl, and ends the process with ``os._exit(EXIT_HANG)`` (79): a thread
cannot interrupt a main thread stuck inside a CUDA call or a collective, but it
can end the process, and the supervisor then restarts the run from its last
checkpoint (which was written atomically, so it is intact).

``paused()`` suspends it (the health monitor's cool-down pause is not a hang);
the floor covers the first step, validation and checkpoint saves.
"""
from __future__ import annotations

import contextlib
import faulthandler
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import lightning.pytorch as pl

from lipsync.health.journal import HealthJournal
from lipsync.health.readings import EXIT_HANG


class HangWatchdog(pl.Callback):
    def __init__(self, run_dir: str | Path, floor_s: float = 600.0, multiplier: float = 5.0,
                 check_every_s: float | None = None, exit_code: int = EXIT_HANG,
                 journal: HealthJournal | None = None, exit_fn: Callable[[int], Any] = os._exit):
        self.run_dir = Path(run_dir)
        self.floor_s = float(floor_s)
        self.multiplier = float(multiplier)
        self.check_every_s = check_every_s if check_every_s is not None else max(0.05, min(10.0, self.floor_s / 10))
        self.exit_code = exit_code
        self.journal = journal or HealthJournal(run_dir)
        self.exit_fn = exit_fn
        self.longest_step_s = 0.0
        self.steps = 0
        self._last_beat = time.monotonic()
        self._pauses = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired_path: Path | None = None

    # -- public API (usable without Lightning) -------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="lipsync-hang-watchdog", daemon=True)
        self._thread.start()

    def heartbeat(self) -> None:
        now = time.monotonic()
        if self.steps:  # the gap before the first beat includes startup; the floor covers it
            self.longest_step_s = max(self.longest_step_s, now - self._last_beat)
        self.steps += 1
        self._last_beat = now

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._pauses += 1
        try:
            yield
        finally:
            self._pauses -= 1
            self._last_beat = time.monotonic()

    @property
    def limit_s(self) -> float:
        return max(self.multiplier * self.longest_step_s, self.floor_s)

    # -- Lightning hooks -------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.heartbeat()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._last_beat = time.monotonic()  # progress, but not a training step: no step-time sample

    def on_train_end(self, trainer, pl_module) -> None:
        self.stop()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.stop()

    def teardown(self, trainer, pl_module, stage) -> None:
        self.stop()

    # -- the thread ----------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.check_every_s):
            if self._pauses:
                continue
            idle = time.monotonic() - self._last_beat
            if idle > self.limit_s:
                self._fire(idle)
                return

    def _fire(self, idle: float) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / f"hang-{time.strftime('%Y%m%d-%H%M%S')}.txt"
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"lipsync hang watchdog: no step progress for {idle:.1f} s (limit {self.limit_s:.1f} s = "
                    f"max({self.multiplier:g} x longest step {self.longest_step_s:.2f} s, floor {self.floor_s:g} s)) "
                    f"after {self.steps} steps; exiting with {self.exit_code}\n\n")
            f.flush()
            faulthandler.dump_traceback(file=f, all_threads=True)
            f.flush()
            os.fsync(f.fileno())
        self.fired_path = path
        self.journal.write("hang", durable=True, idle_s=round(idle, 3), limit_s=round(self.limit_s, 3),
                           longest_step_s=round(self.longest_step_s, 3), steps=self.steps, stacks=str(path),
                           exit_code=self.exit_code)
        self.exit_fn(self.exit_code)
