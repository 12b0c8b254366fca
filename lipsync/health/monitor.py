"""Live GPU health monitor: a Lightning callback that polls, records, and acts.

Polling runs on a background thread every ``poll_seconds`` (NVML calls release
the GIL), so the training step only reads two attributes per batch. With
``poll_thread=False`` the poll runs at the first batch end after the interval
instead (deterministic; used by tests with ``poll_seconds=0``: one poll per step).

Every reading, event and decision is one line of ``<run_dir>/health.jsonl``.
The progress bar shows ``gpu_temp_c`` and ``gpu_throttle`` (1 while any of
hw_slowdown / hw_thermal / sw_thermal / power_brake is active).

Actions (``lipsync.health.policy``): ``warn`` logs; ``pause`` holds training at
the step boundary until the GPU is below the resume temperature with no
throttling (or ``pause_timeout_s`` passes -> the ``pause_timeout`` action);
``stop`` and ``abort`` raise ``HealthStop``.

Contract with training (the lead wires it)
------------------------------------------
``HealthStop`` is raised from ``on_train_batch_end``, i.e. at a step boundary,
after the optimizer step. Lightning then calls every callback's
``on_exception(trainer, pl_module, exc)`` and re-raises it from ``trainer.fit``.
The checkpointing callback saves in ``on_exception`` when
``isinstance(exc, HealthStop) and exc.save_checkpoint``; ``train()`` catches it
and exits with ``exc.exit_code``:

- ``stop``: exit_code 75, save_checkpoint True (GPU state is trustworthy);
- ``abort``: exit_code 76, save_checkpoint False: nothing computed on the
  suspect GPU is written (do not add Lightning's OnExceptionCheckpoint).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from lipsync.health.backends import HealthBackend, open_backend
from lipsync.health.journal import HealthJournal
from lipsync.health.policy import SEVERITY, THROTTLE_REASONS, Decision, HealthPolicy, decision, most_severe
from lipsync.health.readings import EXIT_GPU_UNFIT, Poll, encode_info, encode_reading, is_value

log = logging.getLogger("lipsync.health")
DEFAULT_RESUME_TEMP_C = 75.0  # used when the card does not report its slowdown threshold


class HealthStop(Exception):
    """Raised at a step boundary to end the run: exit_code 75 (stop, save) or 76 (abort, save nothing)."""

    def __init__(self, exit_code: int, reason: str, save_checkpoint: bool, condition: str = ""):
        super().__init__(f"health {'stop' if save_checkpoint else 'abort'} (exit {exit_code}): {reason}")
        self.exit_code = exit_code
        self.reason = reason
        self.save_checkpoint = save_checkpoint
        self.condition = condition

    @classmethod
    def from_decision(cls, d: Decision) -> "HealthStop":
        return cls(d.exit_code, d.reason, save_checkpoint=d.action == "stop", condition=d.condition)


class HealthMonitor(pl.Callback):
    def __init__(self, backend: HealthBackend, run_dir: str | Path | None, policy: HealthPolicy | None = None, *,
                 poll_seconds: float = 10.0, poll_thread: bool = True, device: int | None = None,
                 pause_timeout_s: float = 900.0, resume_temp_c: float | None = None, resume_margin_c: float = 15.0,
                 on_unavailable: str = "warn", watchdog: Any = None, journal: HealthJournal | None = None):
        if on_unavailable not in ("warn", "abort"):
            raise ValueError(f"on_unavailable={on_unavailable!r}: use warn or abort")
        self.backend = backend
        self.policy = policy or HealthPolicy()
        self.journal = journal or HealthJournal(run_dir)
        self.poll_seconds = float(poll_seconds)
        self.poll_thread = poll_thread
        self.device = device
        self.pause_timeout_s = pause_timeout_s
        self.resume_temp_c = resume_temp_c
        self.resume_margin_c = resume_margin_c
        self.on_unavailable = on_unavailable
        self.watchdog = watchdog
        self.available = False
        self.polls = 0
        self.decisions: list[Decision] = []
        self._step = 0
        self._pending: Decision | None = None
        self._latest: dict[str, Any] = {}
        self._latest_seq = self._logged_seq = 0
        self._last_poll = float("-inf")
        self._poll_lock = threading.Lock()
        self._stop_thread = threading.Event()
        self._pausing = threading.Event()
        self._thread: threading.Thread | None = None

    # -- Lightning hooks ----------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.device is None:
            root = trainer.strategy.root_device
            cuda_index = root.index if root.type == "cuda" and root.index is not None else 0
            problem = open_backend(self.backend)
            self.device = self.backend.nvml_index_for_cuda(cuda_index) if problem is None else cuda_index

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        problem = open_backend(self.backend)
        if problem is not None:
            self._unavailable(problem)
            return
        self.available = True
        infos = {d.index: d for d in self.backend.devices()}
        self.journal.write("monitor_start", backend=self.backend.name, device=self.device,
                           info=encode_info(infos[self.device]) if self.device in infos else None,
                           poll_seconds=self.poll_seconds, poll_thread=self.poll_thread,
                           description=getattr(self.backend, "description", ""))
        if self.poll_thread:
            self._stop_thread.clear()  # a second fit with the same callback polls again
            self._thread = threading.Thread(target=self._run_thread, name="lipsync-health-monitor", daemon=True)
            self._thread.start()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self.available:
            return
        self._step = trainer.global_step
        if not self.poll_thread and time.monotonic() - self._last_poll >= self.poll_seconds:
            self._poll_once()
        if self._latest_seq != self._logged_seq:
            self._logged_seq = self._latest_seq
            for key, value in self._latest.items():
                pl_module.log(key, value, prog_bar=True, on_step=True, on_epoch=False)
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if pending.action == "pause":
            pending = self._pause(pending)
        if pending is not None and pending.action in ("stop", "abort"):
            self._stop_polling()
            raise HealthStop.from_decision(pending)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_polling()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._stop_polling()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._stop_polling()

    # -- polling ------------------------------------------------------------
    def _run_thread(self) -> None:
        interval = max(self.poll_seconds, 0.001)  # poll_seconds=0 means "every step" only without the thread
        while not self._stop_thread.wait(interval if self.polls else 0.0):
            if not self._pausing.is_set():
                self._poll_once()

    def _poll_once(self) -> Poll | None:
        """Poll, record, decide. Never raises: a monitoring bug must not end a healthy run."""
        with self._poll_lock:
            self._last_poll = time.monotonic()
            try:
                poll = self.backend.poll([self.device])
                self.polls += 1
                decisions = self.policy.evaluate(poll)
            except Exception as e:
                self.journal.write("monitor_error", step=self._step, error=repr(e), traceback=traceback.format_exc())
                log.warning("health monitor: poll failed (%r); training continues", e)
                return None
            for index, reading in poll.readings.items():
                self.journal.write("reading", step=self._step, device=index, **encode_reading(reading))
            for event in poll.events:
                self.journal.write("event", step=self._step, device=event.device, event=event.kind, data=event.data)
            self._record(decisions)
            self._update_bar(poll.readings.get(self.device, {}))
            return poll

    def _record(self, decisions: list[Decision]) -> None:
        for d in decisions:
            self.decisions.append(d)
            self.journal.write("decision", durable=d.action in ("stop", "abort"), step=self._step, **d.to_json())
            if d.action == "warn":
                log.warning("GPU health: %s", d.reason)
        worst = most_severe(decisions)
        if worst is None or (worst.action == "pause" and self._pausing.is_set()):
            return
        current = self._pending
        if current is None or SEVERITY[worst.action] > SEVERITY[current.action]:
            self._pending = worst

    def _update_bar(self, reading: dict[str, Any]) -> None:
        bar = {}
        if is_value(reading.get("temperature_c")):
            bar["gpu_temp_c"] = float(reading["temperature_c"])
        reasons = reading.get("clock_event_reasons")
        if is_value(reasons):
            bar["gpu_throttle"] = float(bool(set(reasons) & THROTTLE_REASONS))
        if bar:
            self._latest = bar
            self._latest_seq += 1

    def _stop_polling(self) -> None:
        self._stop_thread.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(5.0, 2 * self.poll_seconds))

    # -- actions ------------------------------------------------------------
    def _unavailable(self, problem: str) -> None:
        action = "abort" if self.on_unavailable == "abort" else "warn"
        d = decision("nvml_unavailable", action,
                     f"{problem}; GPU health is NOT being monitored" + ("" if action == "warn" else " and this run expects a GPU"))
        self.decisions.append(d)
        self.journal.write("decision", durable=action == "abort", step=self._step, **d.to_json())
        if action == "abort":
            raise HealthStop(EXIT_GPU_UNFIT, d.reason, save_checkpoint=False, condition=d.condition)
        log.warning("GPU health: %s", d.reason)

    def _resume_temp(self, reading: dict[str, Any]) -> float:
        if self.resume_temp_c is not None:
            return float(self.resume_temp_c)
        slowdown = reading.get("slowdown_temp_c")
        return float(slowdown) - self.resume_margin_c if is_value(slowdown) else DEFAULT_RESUME_TEMP_C

    def _cooled(self, reading: dict[str, Any]) -> tuple[bool, float]:
        resume_at = self._resume_temp(reading)
        temp, reasons = reading.get("temperature_c"), reading.get("clock_event_reasons")
        cool = not is_value(temp) or temp <= resume_at
        calm = not is_value(reasons) or not (set(reasons) & THROTTLE_REASONS)
        return cool and calm, resume_at

    def _pause(self, cause: Decision) -> Decision | None:
        """Hold the step boundary until cool; return a stop/abort decision if one comes up."""
        self._pausing.set()
        start = time.monotonic()
        self.journal.write("pause", durable=True, step=self._step, condition=cause.condition,
                           timeout_s=self.pause_timeout_s, reason=cause.reason)
        log.warning("GPU health: pausing training (%s)", cause.reason)
        paused = self.watchdog.paused() if self.watchdog is not None else contextlib.nullcontext()
        try:
            with paused:
                while True:
                    time.sleep(self.poll_seconds)
                    poll = self._poll_once()
                    pending, self._pending = self._pending, None
                    if pending is not None and pending.action in ("stop", "abort"):
                        return pending
                    reading = poll.readings.get(self.device, {}) if poll is not None else {}
                    cooled, resume_at = self._cooled(reading) if poll is not None else (False, float("nan"))
                    waited = time.monotonic() - start
                    if cooled:
                        self.policy.reset_throttle(self.device)
                        self.journal.write("resume", durable=True, step=self._step, waited_s=round(waited, 3),
                                           temperature_c=reading.get("temperature_c"), resume_temp_c=resume_at)
                        log.warning("GPU health: resuming after %.0f s (%s °C)", waited, reading.get("temperature_c"))
                        return None
                    if waited >= self.pause_timeout_s:
                        timeout = decision("pause_timeout", self.policy.config.ladder("pause_timeout")[0],
                                           f"paused {waited:.0f} s for '{cause.condition}' and the GPU did not cool "
                                           f"below {resume_at:g} °C / stop throttling", cause.device)
                        self._record([timeout])
                        self._pending = None
                        return timeout if timeout.action in ("stop", "abort") else None
        finally:
            self._pausing.clear()
