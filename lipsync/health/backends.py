"""The health backend interface and the choice between real, fake and off.

A backend answers three questions: which devices are there (``devices``), what do
they read now (``poll``), and, for the fake backend only, what a self-test would
find (``scripted_self_test``). ``open`` raises ``BackendUnavailable`` with a
one-line reason instead of crashing when NVML is missing.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

from lipsync.health.readings import BackendUnavailable, DeviceInfo, Poll

BACKEND_NAMES = ("nvml", "fake", "off")


class HealthBackend(ABC):
    name: str = "?"
    # A fake timeline may ask to be played at its own speed (seconds per poll).
    poll_seconds_hint: float | None = None

    @abstractmethod
    def open(self) -> None:
        """Start the backend; raise BackendUnavailable (one clear line) if it cannot."""

    @abstractmethod
    def devices(self) -> list[DeviceInfo]:
        """Devices the backend can see, by NVML index."""

    @abstractmethod
    def poll(self, devices: Sequence[int]) -> Poll:
        """Read every field of ``devices`` and collect events since the last poll."""

    def nvml_index_for_cuda(self, cuda_index: int) -> int:
        """NVML index of a CUDA device (they differ under CUDA_VISIBLE_DEVICES)."""
        return cuda_index

    def scripted_self_test(self, device: int) -> dict[str, Any] | None:
        """A self-test result scripted by a fake timeline; None means run the real one."""
        return None

    def close(self) -> None:
        pass


class OffBackend(HealthBackend):
    """Health checks switched off: no devices, empty polls."""

    name = "off"

    def open(self) -> None:
        pass

    def devices(self) -> list[DeviceInfo]:
        return []

    def poll(self, devices: Sequence[int]) -> Poll:
        return Poll(time=time.time())


def make_backend(name: Any, timeline: str | Path | None = None) -> HealthBackend:
    """Build the backend named by ``health.backend`` (not opened yet)."""
    if name is False or name is None:  # YAML reads a bare `off` as false
        name = "off"
    if name == "off":
        return OffBackend()
    if name == "nvml":
        from lipsync.health.nvml_backend import NvmlBackend

        return NvmlBackend()
    if name == "fake":
        if not timeline:
            raise ValueError("health.backend=fake needs health.timeline=PATH (e.g. configs/health/faults/healthy.json)")
        from lipsync.health.fake_backend import FakeBackend

        return FakeBackend.from_file(timeline)
    raise ValueError(f"health.backend={name!r} is not one of {', '.join(BACKEND_NAMES)}")


def open_backend(backend: HealthBackend) -> str | None:
    """Open ``backend``; return None on success or the reason it is unavailable."""
    try:
        backend.open()
    except BackendUnavailable as e:
        return str(e)
    return None


