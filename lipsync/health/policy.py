"""Which conditions a poll shows, and which action each one gets (pure logic, no I/O).

Defaults follow DCGM's health watches: throttling is judged over a window of
polls and answered with a ladder (warn, then pause); memory errors, fatal Xids
and a lost GPU end the run at once without saving (exit 76); a pending page
retirement or row remap ends it with a checkpoint (exit 75) and asks for a reset.

Xid classes (NVIDIA's Xid catalogue):
- FATAL_XIDS -> ``xid_fatal`` (abort, 76): 48 double-bit ECC, 61/62 internal
  micro-controller fault, 64 ECC page retirement or row-remap recording failure,
  74 NVLink error, 79 GPU fallen off the bus, 94 contained ECC error (the data of
  the running context is corrupt), 95 uncontained ECC error, 119/120 GSP error,
  140 unrecovered ECC error.
- RESET_XIDS -> ``xid_reset`` (stop, 75): 63 page retirement / row remap recorded
  (takes effect after a reset), 92 high single-bit ECC rate (corrected, so the
  checkpoint is good, but the card needs a reset and a look).
- any other Xid -> ``xid_other`` (warn): most (13, 31, 43, 45) are raised by
  application faults, not by the hardware.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from lipsync.health.readings import (
    EXIT_GPU_UNFIT,
    EXIT_STOP,
    UNSUPPORTED,
    FieldError,
    HealthEvent,
    Poll,
    is_value,
)

FATAL_XIDS = frozenset({48, 61, 62, 64, 74, 79, 94, 95, 119, 120, 140})
RESET_XIDS = frozenset({63, 92})
XID_NAMES = {
    48: "double-bit ECC error",
    61: "internal micro-controller breakpoint",
    62: "internal micro-controller halt",
    63: "ECC page retirement / row remapping recorded",
    64: "ECC page retirement / row remapping failure",
    74: "NVLink error",
    79: "GPU has fallen off the bus",
    92: "high single-bit ECC error rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
    140: "unrecovered ECC error",
}

ACTIONS = ("ignore", "warn", "pause", "stop", "abort")
SEVERITY = {"report": 0, "resume": 0, "ignore": 0, "warn": 1, "pause": 2, "stop": 3, "abort": 4}
EXIT_CODES = {"stop": EXIT_STOP, "abort": EXIT_GPU_UNFIT}

# condition -> default action (a list is a ladder: each further window of the
# condition held climbs one rung).
DEFAULT_ACTIONS: dict[str, Any] = {
    "thermal": ["warn", "pause"],
    "hw_slowdown": ["warn", "pause"],
    "power_brake": ["warn", "pause"],
    "sw_power_cap": "warn",
    "ecc_uncorrectable": "abort",
    "ecc_correctable": "warn",
    "xid_fatal": "abort",
    "xid_reset": "stop",
    "xid_other": "warn",
    "gpu_lost": "abort",
    "pending_retirement": "stop",
    "remap_failure": "abort",
    "recovery_action": "stop",
    "pcie_replay": "warn",
    "field_error": "warn",
    "pause_timeout": "stop",
    "nvml_unavailable": "auto",  # auto = abort when the run expects a GPU, else warn
}
WINDOWED = ("thermal", "hw_slowdown", "power_brake", "sw_power_cap")
# Clock event reasons that a pause waits out.
THROTTLE_REASONS = frozenset({"hw_slowdown", "hw_thermal", "sw_thermal", "power_brake"})

RESET_ADVICE = (
    "reset the GPU (`nvidia-smi -r -i {index}` with nothing running on it, or reboot), "
    "then run the same command to continue"
)


@dataclass(frozen=True)
class Decision:
    condition: str
    action: str
    reason: str
    device: int | None = None
    exit_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PolicyConfig:
    actions: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    throttle_window_polls: int = 3
    thermal_margin_c: float = 5.0
    pcie_replays_per_poll: int = 8

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> "PolicyConfig":
        actions = dict(DEFAULT_ACTIONS)
        for condition, action in (cfg.get("actions") or {}).items():
            if condition not in DEFAULT_ACTIONS:
                raise ValueError(f"health.actions.{condition}: unknown condition; known: {', '.join(DEFAULT_ACTIONS)}")
            ladder = [action] if isinstance(action, str) else list(action)
            allowed = ACTIONS + (("auto",) if condition == "nvml_unavailable" else ())
            bad = [a for a in ladder if a not in allowed]
            if bad or not ladder:
                raise ValueError(f"health.actions.{condition}={action!r}: use one of {', '.join(allowed)} or a list of them")
            actions[condition] = action if isinstance(action, str) else list(action)
        thresholds, windows = cfg.get("thresholds") or {}, cfg.get("windows") or {}
        return cls(
            actions=actions,
            throttle_window_polls=max(1, int(windows.get("throttle_polls", 3))),
            thermal_margin_c=float(thresholds.get("thermal_margin_c", 5.0)),
            pcie_replays_per_poll=int(thresholds.get("pcie_replays_per_poll", 8)),
        )

    def ladder(self, condition: str) -> list[str]:
        action = self.actions[condition]
        return [action] if isinstance(action, str) else list(action)


def decision(condition: str, action: str, reason: str, device: int | None = None) -> Decision:
    return Decision(condition, action, reason, device, EXIT_CODES.get(action))


@dataclass
class _DeviceState:
    baseline: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)  # one-shot conditions firing this episode
    reported_unsupported: set[str] = field(default_factory=set)
    reported_errors: set[str] = field(default_factory=set)


def _reasons(reading: Mapping[str, Any]) -> set[str]:
    reasons = reading.get("clock_event_reasons")
    return set(reasons) if is_value(reasons) else set()


def _true(reading: Mapping[str, Any], name: str) -> bool:
    value = reading.get(name)
    return is_value(value) and bool(value)


class HealthPolicy:
    """Turns polls into decisions; remembers baselines, windows and what it already said."""

    def __init__(self, config: PolicyConfig | None = None):
        self.config = config or PolicyConfig()
        self._state: dict[int, _DeviceState] = {}

    def evaluate(self, poll: Poll) -> list[Decision]:
        out: list[Decision] = []
        for index, reading in poll.readings.items():
            out.extend(self._evaluate_reading(index, reading))
        for event in poll.events:
            out.extend(self._evaluate_event(event))
        return [d for d in out if d.action != "ignore"]

    def reset_throttle(self, device: int) -> None:
        """After a pause: the cool-down ends the episode, the ladder starts again."""
        for condition in WINDOWED:
            self._state.setdefault(device, _DeviceState()).held.pop(condition, None)

    # -- readings ---------------------------------------------------------
    def _evaluate_reading(self, index: int, reading: Mapping[str, Any]) -> list[Decision]:
        state = self._state.setdefault(index, _DeviceState())
        out = self._report_unsupported_and_errors(index, reading, state)
        if _true(reading, "gpu_lost"):
            return out + self._once(state, "gpu_lost", True, index, f"GPU {index} is lost (NVML: GPU_IS_LOST)")
        reasons = _reasons(reading)
        temp, slowdown = reading.get("temperature_c"), reading.get("slowdown_temp_c")
        near_slowdown = is_value(temp) and is_value(slowdown) and temp >= slowdown - self.config.thermal_margin_c
        windowed = {
            "thermal": (near_slowdown or bool(reasons & {"hw_thermal", "sw_thermal"}),
                        f"GPU {index} thermal: {temp} °C (slowdown at {slowdown} °C), clock events {sorted(reasons)}"),
            "hw_slowdown": ("hw_slowdown" in reasons, f"GPU {index} HW slowdown active (clocks cut by half or more)"),
            "power_brake": ("power_brake" in reasons, f"GPU {index} HW power brake active (external power signal)"),
            "sw_power_cap": ("sw_power_cap" in reasons,
                             f"GPU {index} at its power cap ({reading.get('power_w')} W of {reading.get('power_limit_w')} W)"),
        }
        for condition, (active, reason) in windowed.items():
            out.extend(self._windowed(state, condition, active, index, reason))
        out.extend(self._counters(index, reading, state))
        pending = _true(reading, "retired_pages_pending") or _true(reading, "remapped_rows_pending")
        out.extend(self._once(state, "pending_retirement", pending, index,
                              f"GPU {index} has pending page retirement / row remapping: {RESET_ADVICE.format(index=index)}"))
        out.extend(self._once(state, "remap_failure", _true(reading, "remapped_rows_failure"), index,
                              f"GPU {index} row remapping failed: its memory is bad; do not train on it"))
        action = reading.get("recovery_action")
        needs_recovery = is_value(action) and action != "none"
        out.extend(self._once(state, "recovery_action", needs_recovery, index,
                              f"GPU {index} driver asks for recovery action '{action}': {RESET_ADVICE.format(index=index)}"))
        return out

    def _counters(self, index: int, reading: Mapping[str, Any], state: _DeviceState) -> list[Decision]:
        out = []
        for name in ("ecc_volatile_uncorrected", "ecc_aggregate_uncorrected"):
            value = reading.get(name)
            if not is_value(value):
                continue
            base = state.baseline.setdefault(name, value)
            if value > state.last.get(name, base):
                out.append(decision("ecc_uncorrectable", self._first(("ecc_uncorrectable")),
                                    f"GPU {index} uncorrectable ECC errors rose to {value} ({name}; {base} at start)", index))
            state.last[name] = value
        value = reading.get("ecc_volatile_corrected")
        if is_value(value):
            if value > state.last.get("ecc_volatile_corrected", value):
                out.append(decision("ecc_correctable", self._first("ecc_correctable"),
                                    f"GPU {index} corrected ECC errors rose to {value}", index))
            state.last["ecc_volatile_corrected"] = value
        value = reading.get("pcie_replay_count")
        if is_value(value):
            previous = state.last.get("pcie_replay_count", value)
            if value - previous > self.config.pcie_replays_per_poll:
                out.append(decision("pcie_replay", self._first("pcie_replay"),
                                    f"GPU {index} PCIe replays +{value - previous} in one poll (link errors; check seating/riser)", index))
            state.last["pcie_replay_count"] = value
        return out

    def _report_unsupported_and_errors(self, index: int, reading: Mapping[str, Any], state: _DeviceState) -> list[Decision]:
        out = []
        unsupported = sorted(k for k, v in reading.items() if v is UNSUPPORTED and k not in state.reported_unsupported)
        if unsupported:
            state.reported_unsupported.update(unsupported)
            out.append(decision("unsupported", "report",
                                f"GPU {index} cannot report {', '.join(unsupported)} (NVML NOT_SUPPORTED): not checked, not assumed healthy", index))
        for name, value in reading.items():
            if isinstance(value, FieldError) and name not in state.reported_errors:
                state.reported_errors.add(name)
                out.append(decision("field_error", self._first("field_error"), f"GPU {index} {name}: {value.message}", index))
        return out

    # -- events -----------------------------------------------------------
    def _evaluate_event(self, event: HealthEvent) -> list[Decision]:
        i = event.device
        if event.kind == "xid":
            xid = event.data
            what = XID_NAMES.get(xid, "see NVIDIA's Xid catalogue")
            condition = "xid_fatal" if xid in FATAL_XIDS else "xid_reset" if xid in RESET_XIDS else "xid_other"
            reason = f"GPU {i} Xid {xid} ({what})"
            if condition == "xid_reset":
                reason += f": {RESET_ADVICE.format(index=i)}"
            return [decision(condition, self._first(condition), reason, i)]
        mapping = {
            "ecc_dbe": ("ecc_uncorrectable", f"GPU {i} double-bit ECC error event"),
            "gpu_unavailable": ("gpu_lost", f"GPU {i} unavailable event"),
            "dram_retirement": ("pending_retirement", f"GPU {i} DRAM retirement event: {RESET_ADVICE.format(index=i)}"),
            "dram_retirement_failure": ("remap_failure", f"GPU {i} DRAM retirement failure event"),
            "recovery_action": ("recovery_action", f"GPU {i} recovery action event ({event.data}): {RESET_ADVICE.format(index=i)}"),
        }
        condition, reason = mapping[event.kind]
        return [decision(condition, self._first(condition), reason, i)]

    # -- helpers ----------------------------------------------------------
    def _first(self, condition: str) -> str:
        return self.config.ladder(condition)[0]

    def _once(self, state: _DeviceState, condition: str, active: bool, index: int, reason: str) -> list[Decision]:
        """Fire when a condition appears; stay quiet while it holds; re-arm when it clears."""
        if not active:
            state.active.discard(condition)
            return []
        if condition in state.active:
            return []
        state.active.add(condition)
        return [decision(condition, self._first(condition), reason, index)]

    def _windowed(self, state: _DeviceState, condition: str, active: bool, index: int, reason: str) -> list[Decision]:
        """Climb one rung of the ladder per full window the condition is held."""
        if not active:
            state.held.pop(condition, None)
            return []
        held = state.held[condition] = state.held.get(condition, 0) + 1
        window, ladder = self.config.throttle_window_polls, self.config.ladder(condition)
        rung, boundary = divmod(held, window)
        if boundary != 0 or rung < 1 or rung > len(ladder):
            return []
        return [decision(condition, ladder[rung - 1], f"{reason}, held {held} polls", index)]


def most_severe(decisions: Iterable[Decision]) -> Decision | None:
    best = None
    for d in decisions:
        if SEVERITY.get(d.action, 0) >= 2 and (best is None or SEVERITY[d.action] > SEVERITY[best.action]):
            best = d
    return best
