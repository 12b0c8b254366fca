"""Real backend over nvidia-ml-py (``pynvml``), public API only.

Every query goes through ``_query``: NOT_SUPPORTED (and FUNCTION_NOT_FOUND on an
older driver) becomes UNSUPPORTED, GPU_IS_LOST marks the device lost, any other
NVML error becomes a FieldError. Events (Xid, double-bit ECC, GPU unavailable,
retirement, recovery action) come from one NVML event set per device, waited on
for a few milliseconds each poll and then drained.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

import pynvml

from lipsync.health.backends import HealthBackend
from lipsync.health.readings import (
    RECOVERY_ACTION_NAMES,
    UNSUPPORTED,
    BackendUnavailable,
    DeviceInfo,
    FieldError,
    HealthEvent,
    Poll,
    is_value,
)

_CLOCK_EVENT_BITS = {
    "hw_slowdown": pynvml.nvmlClocksEventReasonHwSlowdown,
    "hw_thermal": pynvml.nvmlClocksEventReasonHwThermalSlowdown,
    "power_brake": pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown,
    "sw_power_cap": pynvml.nvmlClocksEventReasonSwPowerCap,
    "sw_thermal": pynvml.nvmlClocksEventReasonSwThermalSlowdown,
    "gpu_idle": pynvml.nvmlClocksEventReasonGpuIdle,
    "sync_boost": pynvml.nvmlClocksEventReasonSyncBoost,
}

_EVENT_KIND_BY_TYPE = {
    pynvml.nvmlEventTypeXidCriticalError: "xid",
    pynvml.nvmlEventTypeDoubleBitEccError: "ecc_dbe",
    pynvml.nvmlEventTypeGpuUnavailableError: "gpu_unavailable",
    pynvml.nvmlEventTypeDramRetirementEvent: "dram_retirement",
    pynvml.nvmlEventTypeDramRetirementFailure: "dram_retirement_failure",
    pynvml.nvmlEventTypeGpuRecoveryAction: "recovery_action",
}

_UNSUPPORTED_CODES = {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND}
_MAX_EVENTS_PER_POLL = 64
_MIB = 1024 * 1024


def decode_clock_event_reasons(mask: int) -> list[str]:
    return [name for name, bit in _CLOCK_EVENT_BITS.items() if mask & bit]


class _GpuLost(Exception):
    pass


def _query(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except pynvml.NVMLError as e:
        if e.value in _UNSUPPORTED_CODES:
            return UNSUPPORTED
        if e.value == pynvml.NVML_ERROR_GPU_IS_LOST:
            raise _GpuLost() from e
        return FieldError(str(e))


def _map(x: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply ``fn`` to a real value; pass UNSUPPORTED and errors through."""
    return x if x is UNSUPPORTED or isinstance(x, FieldError) else fn(x)


class NvmlBackend(HealthBackend):
    name = "nvml"

    def __init__(self, event_wait_ms: int = 10):
        self.event_wait_ms = event_wait_ms
        self._handles: dict[int, Any] = {}
        self._event_sets: dict[int, Any] = {}
        self._open = False

    def open(self) -> None:
        if self._open:
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as e:
            raise BackendUnavailable(f"NVML unavailable ({e}): no NVIDIA driver/GPU visible on this machine") from e
        self._handles = {i: pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)}
        self._open = True
        for index, handle in self._handles.items():
            self._event_sets[index] = self._register_events(handle)

    def _register_events(self, handle: Any) -> Any:
        supported = _query(pynvml.nvmlDeviceGetSupportedEventTypes, handle)
        if not isinstance(supported, int):
            return UNSUPPORTED
        wanted = 0
        for event_type in _EVENT_KIND_BY_TYPE:
            wanted |= event_type & supported
        if not wanted:
            return UNSUPPORTED
        try:
            event_set = pynvml.nvmlEventSetCreate()
            pynvml.nvmlDeviceRegisterEvents(handle, wanted, event_set)
        except pynvml.NVMLError:
            return UNSUPPORTED  # e.g. no permission; reported through the 'events' row of preflight
        return event_set

    def events_supported(self, index: int) -> bool:
        return self._event_sets.get(index, UNSUPPORTED) is not UNSUPPORTED

    def devices(self) -> list[DeviceInfo]:
        driver = _query(pynvml.nvmlSystemGetDriverVersion)
        out = []
        for index, handle in self._handles.items():
            memory = _query(pynvml.nvmlDeviceGetMemoryInfo, handle)
            out.append(
                DeviceInfo(
                    index=index,
                    name=str(_query(pynvml.nvmlDeviceGetName, handle)),
                    uuid=str(_query(pynvml.nvmlDeviceGetUUID, handle)),
                    memory_total_mib=memory.total / _MIB if is_value(memory) else None,
                    driver_version=str(driver),
                )
            )
        return out

    def nvml_index_for_cuda(self, cuda_index: int) -> int:
        # Match by UUID: CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER renumber CUDA devices.
        try:
            import torch

            cuda_uuid = str(torch.cuda.get_device_properties(cuda_index).uuid).lower()
        except Exception:  # no CUDA in this torch build, or no device: fall back to the same number
            return cuda_index
        for index, handle in self._handles.items():
            nvml_uuid = str(_query(pynvml.nvmlDeviceGetUUID, handle)).lower()
            if nvml_uuid.removeprefix("gpu-") == cuda_uuid.removeprefix("gpu-"):
                return index
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        parts = [p.strip() for p in visible.split(",") if p.strip()]
        if cuda_index < len(parts) and parts[cuda_index].isdigit():
            return int(parts[cuda_index])
        return cuda_index

    def poll(self, devices: Sequence[int]) -> Poll:
        poll = Poll(time=time.time())
        for index in devices:
            handle = self._handles.get(index)
            if handle is None:
                poll.readings[index] = {"gpu_lost": FieldError(f"NVML has no device {index}")}
                continue
            try:
                poll.readings[index] = self._read(handle)
                poll.events.extend(self._drain_events(index))
            except _GpuLost:
                poll.readings[index] = {"gpu_lost": True}
        return poll

    def _read(self, handle: Any) -> dict[str, Any]:
        t = pynvml
        memory = _query(t.nvmlDeviceGetMemoryInfo, handle)
        remapped = _query(t.nvmlDeviceGetRemappedRows, handle)  # (corrected, uncorrected, pending, failure)
        reading = {
            "temperature_c": _query(t.nvmlDeviceGetTemperature, handle, t.NVML_TEMPERATURE_GPU),
            "slowdown_temp_c": _query(t.nvmlDeviceGetTemperatureThreshold, handle, t.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN),
            "shutdown_temp_c": _query(t.nvmlDeviceGetTemperatureThreshold, handle, t.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN),
            "clock_event_reasons": _map(
                _query(t.nvmlDeviceGetCurrentClocksEventReasons, handle), decode_clock_event_reasons
            ),
            "power_w": _map(_query(t.nvmlDeviceGetPowerUsage, handle), lambda mw: mw / 1000.0),
            "power_limit_w": _map(_query(t.nvmlDeviceGetEnforcedPowerLimit, handle), lambda mw: mw / 1000.0),
            "utilization_pct": _map(_query(t.nvmlDeviceGetUtilizationRates, handle), lambda u: u.gpu),
            "memory_used_mib": _map(memory, lambda m: m.used / _MIB),
            "memory_total_mib": _map(memory, lambda m: m.total / _MIB),
            "retired_pages_pending": _map(_query(t.nvmlDeviceGetRetiredPagesPendingStatus, handle), bool),
            "remapped_rows_pending": _map(remapped, lambda r: bool(r[2])),
            "remapped_rows_failure": _map(remapped, lambda r: bool(r[3])),
            "pcie_replay_count": _query(t.nvmlDeviceGetPcieReplayCounter, handle),
            "recovery_action": self._recovery_action(handle),
            "gpu_lost": False,
        }
        for counter, counter_name in ((t.NVML_VOLATILE_ECC, "volatile"), (t.NVML_AGGREGATE_ECC, "aggregate")):
            for kind, kind_name in ((t.NVML_MEMORY_ERROR_TYPE_CORRECTED, "corrected"),
                                    (t.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, "uncorrected")):
                reading[f"ecc_{counter_name}_{kind_name}"] = _query(t.nvmlDeviceGetTotalEccErrors, handle, kind, counter)
        return reading

    def _recovery_action(self, handle: Any) -> Any:
        values = _query(pynvml.nvmlDeviceGetFieldValues, handle, [pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])
        if values is UNSUPPORTED or isinstance(values, FieldError):
            return values
        value = values[0]
        if value.nvmlReturn in _UNSUPPORTED_CODES:
            return UNSUPPORTED  # the driver predates this field
        if value.nvmlReturn != pynvml.NVML_SUCCESS:
            return FieldError(f"recovery action field returned NVML error {value.nvmlReturn}")
        code = int(value.value.uiVal)
        return RECOVERY_ACTION_NAMES.get(code, f"unknown_{code}")

    def _drain_events(self, index: int) -> list[HealthEvent]:
        event_set = self._event_sets.get(index, UNSUPPORTED)
        if event_set is UNSUPPORTED:
            return []
        events, timeout_ms = [], self.event_wait_ms
        for _ in range(_MAX_EVENTS_PER_POLL):
            try:
                data = pynvml.nvmlEventSetWait(event_set, timeout_ms)
            except pynvml.NVMLError as e:
                if e.value == pynvml.NVML_ERROR_GPU_IS_LOST:
                    raise _GpuLost() from e
                break  # TIMEOUT: nothing more waiting
            kind = _EVENT_KIND_BY_TYPE.get(int(data.eventType))
            if kind is not None:
                events.append(HealthEvent(device=index, kind=kind, data=int(data.eventData)))
            timeout_ms = 0  # drain what is already queued without waiting again
        return events

    def close(self) -> None:
        if not self._open:
            return
        for event_set in self._event_sets.values():
            if event_set is not UNSUPPORTED:
                try:
                    pynvml.nvmlEventSetFree(event_set)
                except pynvml.NVMLError:
                    pass
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
        self._open = False
