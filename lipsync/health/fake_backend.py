"""Fake backend: replays a scripted fault timeline (JSON or YAML) for tests and rehearsals.

Timeline format (see configs/health/faults/*.json)::

    {
      "description": "one line shown in health.jsonl",
      "init_error": null,              # a string makes open() fail like a missing NVML
      "poll_seconds": 0.5,             # optional: play the timeline at this speed
      "devices": [{"index": 0, "name": "NVIDIA RTX A6000", "uuid": "GPU-fake-0",
                   "memory_total_mib": 49140, "driver_version": "fake"}],
      "initial": {"temperature_c": 55, ...},   # reading fields, same for every device
      "self_test": {"ok": true, "detail": "..."},   # what preflight's self-test reports
      "polls": [
        {"repeat": 3},                                    # 3 polls of the current state
        {"temperature_c": 84, "clock_event_reasons": ["sw_thermal"], "repeat": 4},
        {"device": 0, "events": [{"kind": "xid", "data": 79}], "gpu_lost": true}
      ]
    }

Each poll entry changes the fields it names (for ``device``, default 0) and keeps
the rest, so a state holds until changed; after the last entry the final state
repeats forever. Fields use the spelling of lipsync.health.readings
(``"unsupported"``, ``{"error": "..."}``); an unknown field name is an error.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from lipsync.health.backends import HealthBackend
from lipsync.health.readings import (
    EVENT_KINDS,
    BackendUnavailable,
    DeviceInfo,
    FieldError,
    HealthEvent,
    Poll,
    decode_field,
)

_ENTRY_KEYS = {"repeat", "device", "events"}


class TimelineError(ValueError):
    pass


def load_timeline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TimelineError(f"{path}: fault timeline not found; see configs/health/faults/ for examples")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise TimelineError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({e}); fix the syntax") from e
    if not isinstance(data, Mapping) or not data.get("devices") and not data.get("init_error"):
        raise TimelineError(f"{path}: a timeline needs a 'devices' list (or an 'init_error'); see lipsync/health/fake_backend.py")
    return dict(data)


class FakeBackend(HealthBackend):
    name = "fake"

    def __init__(self, timeline: Mapping[str, Any], source: str = "<timeline>"):
        self.source = source
        self.description = str(timeline.get("description", ""))
        self.init_error = timeline.get("init_error")
        hint = timeline.get("poll_seconds")
        self.poll_seconds_hint = float(hint) if hint is not None else None
        self._devices = [DeviceInfo(**d) for d in timeline.get("devices", [])]
        self._self_test = timeline.get("self_test")
        try:
            initial = {k: decode_field(k, v) for k, v in (timeline.get("initial") or {}).items()}
            self._frames = self._expand(initial, timeline.get("polls") or [])
        except (ValueError, TypeError) as e:
            raise TimelineError(f"{source}: {e}") from e
        self.polls_taken = 0

    @classmethod
    def from_file(cls, path: str | Path) -> "FakeBackend":
        return cls(load_timeline(path), source=str(path))

    def _expand(self, initial: dict[str, Any], entries: list[Mapping[str, Any]]) -> list[tuple[dict, list]]:
        """Unroll the timeline into one (readings per device, events) frame per poll."""
        state = {d.index: copy.deepcopy(initial) for d in self._devices}
        frames: list[tuple[dict, list]] = []
        for n, entry in enumerate(entries):
            device = int(entry.get("device", 0))
            if device not in state:
                raise ValueError(f"poll entry {n} names device {device}, which is not in 'devices'")
            for key, value in entry.items():
                if key not in _ENTRY_KEYS:
                    state[device][key] = decode_field(key, value)
            events = []
            for ev in entry.get("events", []):
                if ev.get("kind") not in EVENT_KINDS:
                    raise ValueError(f"poll entry {n}: event kind {ev.get('kind')!r} is not one of {', '.join(EVENT_KINDS)}")
                events.append(HealthEvent(device=device, kind=ev["kind"], data=int(ev.get("data", 0))))
            repeat = int(entry.get("repeat", 1))
            # Events happen once, on the first poll of the entry; the state holds for all repeats.
            for r in range(repeat):
                frames.append((copy.deepcopy(state), events if r == 0 else []))
        if not frames:
            frames.append((copy.deepcopy(state), []))
        return frames

    def open(self) -> None:
        if self.init_error:
            raise BackendUnavailable(f"NVML unavailable ({self.init_error}) [scripted by {self.source}]")

    def devices(self) -> list[DeviceInfo]:
        return list(self._devices)

    def poll(self, devices: Sequence[int]) -> Poll:
        readings, events = self._frames[min(self.polls_taken, len(self._frames) - 1)]
        if self.polls_taken >= len(self._frames):
            events = []  # the final state repeats; its events do not
        self.polls_taken += 1
        return Poll(
            time=time.time(),
            readings={
                i: copy.deepcopy(readings[i]) if i in readings else {"gpu_lost": FieldError(f"no device {i}")}
                for i in devices
            },
            events=[e for e in events if e.device in devices],
        )

    def scripted_self_test(self, device: int) -> dict[str, Any] | None:
        return dict(self._self_test) if self._self_test is not None else None
