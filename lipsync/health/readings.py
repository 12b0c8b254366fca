"""What a health backend reports: per-device readings, events and exit codes.

A field of a reading is a plain value, ``UNSUPPORTED`` (NVML said NOT_SUPPORTED:
the card or driver cannot tell us, which is *not* the same as healthy), or a
``FieldError`` (the query failed). JSON spells them ``"unsupported"`` and
``{"error": "..."}``; that spelling is shared by health.jsonl and fault timelines.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

# Exit codes of training (the DESIGN.md table) plus the watchdog's own.
EXIT_STOP = 75  # stopped safely with a fresh checkpoint: run the same command to continue
EXIT_GPU_UNFIT = 76  # GPU unfit (or no usable GPU for check_gpu): nothing saved from the suspect GPU
EXIT_HANG = 79  # hang watchdog fired: stacks in <run_dir>/hang-*.txt; last checkpoint intact, rerun continues


class _Unsupported:
    """Singleton for NVML NOT_SUPPORTED. It has no truth value, so `if reading[...]` cannot read it as "fine"."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSUPPORTED"

    def __bool__(self) -> bool:
        raise TypeError("UNSUPPORTED has no truth value: check `is UNSUPPORTED` explicitly")


UNSUPPORTED = _Unsupported()


@dataclass(frozen=True)
class FieldError:
    """A query that failed for a reason other than NOT_SUPPORTED."""

    message: str


# Every field a reading may carry, with its unit in the name. Readers use .get(): a
# backend leaves out what it never queries.
READING_FIELDS = (
    "temperature_c",
    "slowdown_temp_c",
    "shutdown_temp_c",
    "clock_event_reasons",  # list of names from CLOCK_EVENT_NAMES
    "power_w",
    "power_limit_w",
    "utilization_pct",
    "memory_used_mib",
    "memory_total_mib",
    "ecc_volatile_corrected",
    "ecc_volatile_uncorrected",
    "ecc_aggregate_corrected",
    "ecc_aggregate_uncorrected",
    "retired_pages_pending",
    "remapped_rows_pending",
    "remapped_rows_failure",
    "pcie_replay_count",
    "recovery_action",  # name from RECOVERY_ACTION_NAMES
    "gpu_lost",
)

# Clock event ("throttle") reasons we name; the rest are normal (idle, app clocks).
CLOCK_EVENT_NAMES = ("hw_slowdown", "hw_thermal", "power_brake", "sw_power_cap", "sw_thermal", "gpu_idle", "sync_boost")

RECOVERY_ACTION_NAMES = {
    0: "none",
    1: "gpu_reset",
    2: "node_reboot",
    3: "drain_p2p",
    4: "drain_and_reset",
    5: "recover_imex_domain",
    6: "bus_reset",
    7: "system_reboot",
}

EVENT_KINDS = ("xid", "ecc_dbe", "gpu_unavailable", "dram_retirement", "dram_retirement_failure", "recovery_action")


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    uuid: str = ""
    memory_total_mib: float | None = None
    driver_version: str = ""


@dataclass(frozen=True)
class HealthEvent:
    """An asynchronous event (NVML event set): ``kind`` from EVENT_KINDS, ``data`` e.g. the Xid number."""

    device: int
    kind: str
    data: int = 0


@dataclass
class Poll:
    """One poll of the backend: readings per NVML device index, and events since the last poll."""

    time: float
    readings: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[HealthEvent] = field(default_factory=list)


class BackendUnavailable(RuntimeError):
    """The backend cannot start (NVML library missing, driver not loaded, init failed)."""


def is_value(x: Any) -> bool:
    """True for a real reading (not UNSUPPORTED, not an error, not missing)."""
    return x is not None and x is not UNSUPPORTED and not isinstance(x, FieldError)


def encode_field(x: Any) -> Any:
    if x is UNSUPPORTED:
        return "unsupported"
    if isinstance(x, FieldError):
        return {"error": x.message}
    return x


def decode_field(name: str, x: Any) -> Any:
    """JSON -> field value; rejects fields we do not know so a typo in a timeline fails loudly."""
    if name not in READING_FIELDS:
        raise ValueError(f"unknown reading field {name!r}; known: {', '.join(READING_FIELDS)}")
    if x == "unsupported":
        return UNSUPPORTED
    if isinstance(x, Mapping) and set(x) == {"error"}:
        return FieldError(str(x["error"]))
    if name == "clock_event_reasons":
        unknown = set(x) - set(CLOCK_EVENT_NAMES)
        if unknown:
            raise ValueError(f"unknown clock event reason(s) {sorted(unknown)}; known: {', '.join(CLOCK_EVENT_NAMES)}")
        return list(x)
    return x


def encode_reading(reading: Mapping[str, Any]) -> dict[str, Any]:
    return {k: encode_field(v) for k, v in reading.items()}


def encode_info(info: DeviceInfo) -> dict[str, Any]:
    return dataclasses.asdict(info)
