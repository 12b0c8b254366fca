"""Supervised mode ("leave it for the weekend"): run training in a child process, restart it when it dies.

The child is the same command with ``LIPSYNC_SUPERVISED_CHILD=1`` and a
heartbeat file it rewrites after every step. The supervisor restarts it from
its last good checkpoint (the child's own resume logic picks it) after:

- a crash: any exit code but 0, 1, 75 and 76 (79 from the in-process hang
  watchdog included), or death by a signal;
- a hang: no heartbeat change for ``max(hang_multiplier x longest step seen,
  hang_floor_s)`` seconds once steps have started (``startup_timeout_s``
  before the first one): the child is killed with SIGKILL, which also ends a
  stopped (SIGSTOP) or D-state-free process;
- a health stop (75 that the user did not ask for), once ``preflight()`` says
  the GPU is fit again (retried with the back-off; exit 76 when it never is).

Not restarted: 0 (finished), 1 (the user's input or config: a restart cannot
fix it), 76 (GPU unfit). SIGTERM/SIGINT to the supervisor are forwarded to
the child, which saves and exits 75; the supervisor then exits 75 too.
Restarts wait ``backoff_s x 2^(n-1)`` (at most ``max_backoff_s``), up to
``max_restarts``; each one is a line on stdout and in ``supervisor.jsonl``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from lipsync.checkpointing.heartbeat import HEARTBEAT_ENV, read_heartbeat

CHILD_ENV = "LIPSYNC_SUPERVISED_CHILD"
EXIT_OK, EXIT_USER_ERROR, EXIT_STOP, EXIT_GPU_UNFIT = 0, 1, 75, 76
NOT_RESTARTED = {EXIT_OK: "finished", EXIT_USER_ERROR: "error in the input or config",
                 EXIT_GPU_UNFIT: "GPU unfit"}


@dataclass
class SupervisorLimits:
    max_restarts: int = 10
    backoff_s: float = 10.0
    max_backoff_s: float = 600.0
    hang_floor_s: float = 600.0
    hang_multiplier: float = 5.0
    startup_timeout_s: float = 1800.0
    poll_s: float = 0.5
    stop_grace_s: float = 600.0       # how long a stopping child may take to save before it is killed


class Supervisor:
    def __init__(self, command: Sequence[str], run_dir: str | Path, limits: SupervisorLimits | None = None,
                 preflight: Callable[[], bool] | None = None, env: dict | None = None):
        self.command = list(command)
        self.run_dir = Path(run_dir)
        self.limits = limits or SupervisorLimits()
        self.preflight = preflight
        self.env = dict(os.environ if env is None else env)
        self.heartbeat = self.run_dir / "heartbeat"
        self.stop_requested: str | None = None
        self.child: subprocess.Popen | None = None

    # -- the loop ------------------------------------------------------------------
    def run(self) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            restarts = 0
            while True:
                code, why = self._run_child()
                if self.stop_requested:
                    self._event("stopped", f"{self.stop_requested}: child exited {code}", code)
                    return EXIT_STOP if code in (EXIT_STOP, -signal.SIGTERM, -signal.SIGINT) else code
                if code in NOT_RESTARTED:
                    self._event("exit", f"child exited {code} ({NOT_RESTARTED[code]}): not restarting", code)
                    return code
                if restarts >= self.limits.max_restarts:
                    self._event("give_up", f"child {why}; restart limit {self.limits.max_restarts} reached", code)
                    return code if code > 0 else 1
                restarts += 1
                wait = min(self.limits.backoff_s * 2 ** (restarts - 1), self.limits.max_backoff_s)
                self._event("restart", f"child {why}; restart {restarts}/{self.limits.max_restarts} "
                                       f"from the last good checkpoint in {wait:g} s", code)
                if self._sleep(wait):
                    continue  # a stop arrived while waiting: the loop's next child run returns at once
                if code == EXIT_STOP and self.preflight is not None and not self._wait_for_fit_gpu(restarts):
                    return EXIT_GPU_UNFIT
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _run_child(self) -> tuple[int, str]:
        if self.stop_requested:
            return EXIT_STOP, "not started: stop requested"
        self.heartbeat.unlink(missing_ok=True)
        env = {**self.env, CHILD_ENV: "1", HEARTBEAT_ENV: str(self.heartbeat)}
        self.child = subprocess.Popen(self.command, env=env)
        started = time.monotonic()
        last_beat, last_mtime, longest = None, None, 0.0
        while True:
            code = self.child.poll()
            if code is not None:
                return code, (f"exited {code}" if code >= 0 else f"was killed by {signal.Signals(-code).name}")
            now = time.monotonic()
            mtime = self.heartbeat.stat().st_mtime if self.heartbeat.exists() else None
            if mtime is not None and mtime != last_mtime:
                last_mtime, last_beat = mtime, now
                beat = read_heartbeat(self.heartbeat)
                longest = max(longest, beat[1] if beat else 0.0)
            if self.stop_requested:
                return self._stop_child(), "stopped"
            limit = (self.limits.startup_timeout_s if last_beat is None
                     else max(self.limits.hang_multiplier * longest, self.limits.hang_floor_s))
            idle = now - (last_beat if last_beat is not None else started)
            if idle > limit:
                self.child.kill()
                self.child.wait()
                return -signal.SIGKILL, f"hung (no step for {idle:.1f} s, limit {limit:.1f} s): killed"
            time.sleep(self.limits.poll_s)

    def _stop_child(self) -> int:
        assert self.child is not None
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                return self.child.wait(timeout=self.limits.stop_grace_s)
            except subprocess.TimeoutExpired:
                self.child.kill()
        return self.child.wait()

    def _wait_for_fit_gpu(self, restarts: int) -> bool:
        for attempt in range(1, self.limits.max_restarts + 1):
            if self.preflight():
                return True
            wait = min(self.limits.backoff_s * 2 ** (attempt - 1), self.limits.max_backoff_s)
            self._event("preflight_failed", f"GPU preflight failed after a health stop; retrying in {wait:g} s", None)
            if self._sleep(wait):
                return True  # stopping: the loop exits through the stop path
        self._event("give_up", "the GPU never passed preflight again", EXIT_GPU_UNFIT)
        return False

    # -- helpers -------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self.stop_requested = self.stop_requested or signal.Signals(signum).name
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early for a stop request (returns True then)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.stop_requested:
            time.sleep(min(self.limits.poll_s, max(0.0, end - time.monotonic())))
        return bool(self.stop_requested)

    def _event(self, kind: str, message: str, code: int | None) -> None:
        print(f"[supervisor] {message}", flush=True)
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": kind, "exit_code": code, "message": message}
        with open(self.run_dir / "supervisor.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def is_supervised_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def own_command() -> list[str]:
    """The command line this process was started with, to start the child the same way."""
    return [sys.executable, *sys.argv]
