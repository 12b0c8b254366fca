"""SIGTERM, SIGINT and SIGUSR1 ask for a safe stop: finish the current step, save, exit 75.

The handler only records the request; the checkpoint callback acts on it at
the next step boundary and raises ``StopRequested``, which ``train()`` turns
into exit code 75 (DESIGN.md). Lightning's own SIGTERM handling (which exits 0)
is replaced while training runs.
"""
from __future__ import annotations

import signal
import sys

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
EXIT_STOP = 75


class StopRequested(Exception):
    """A stop signal arrived; a checkpoint was saved (``path``, ``step``)."""

    def __init__(self, signal_name: str, step: int, path=None):
        super().__init__(f"{signal_name} received: stopped after step {step}")
        self.signal_name, self.step, self.path = signal_name, step, path
        self.exit_code = EXIT_STOP


class StopSignals:
    """``with StopSignals() as stop:`` ... ``stop.requested`` is the signal's name once one arrived."""

    def __init__(self):
        self.requested: str | None = None
        self._previous: dict = {}

    def install(self) -> None:
        """(Re)install our handlers; safe to call again after a library replaced them."""
        for sig in STOP_SIGNALS:
            previous = signal.signal(sig, self._handle)
            self._previous.setdefault(sig, previous)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested is None:
            print(f"{name} received: finishing the current step, saving a checkpoint, then exiting {EXIT_STOP}",
                  file=sys.stderr, flush=True)
        self.requested = self.requested or name

    def __enter__(self) -> "StopSignals":
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
