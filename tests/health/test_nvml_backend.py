"""NvmlBackend: its error mapping with pynvml stubbed (runs anywhere), and the real thing on a GPU."""
from __future__ import annotations

import pynvml
import pytest

from lipsync.health import nvml_backend
from lipsync.health.nvml_backend import NvmlBackend, decode_clock_event_reasons
from lipsync.health.readings import UNSUPPORTED, BackendUnavailable, FieldError


def nvml_works() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def raiser(code):
    def fn(*args, **kwargs):
        raise pynvml.NVMLError(code)
    return fn


def test_init_failure_is_a_clear_backend_unavailable(monkeypatch):
    monkeypatch.setattr(pynvml, "nvmlInit", raiser(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    with pytest.raises(BackendUnavailable, match="NVML Shared Library Not Found"):
        NvmlBackend().open()


@pytest.fixture
def stub_device(monkeypatch):
    """One device whose every query raises ``code``; returns a setter for that code."""
    state = {"code": pynvml.NVML_ERROR_NOT_SUPPORTED}
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 1)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: object())
    for name in dir(pynvml):
        if name.startswith("nvmlDeviceGet") and name not in ("nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex"):
            monkeypatch.setattr(pynvml, name, lambda *a, **k: (_ for _ in ()).throw(pynvml.NVMLError(state["code"])))
    return state


def test_everything_not_supported_reads_as_unsupported(stub_device):
    backend = NvmlBackend()
    backend.open()
    assert not backend.events_supported(0)
    reading = backend.poll([0]).readings[0]
    fields = {k: v for k, v in reading.items() if k != "gpu_lost"}
    assert fields and all(v is UNSUPPORTED for v in fields.values()), reading
    assert reading["gpu_lost"] is False


def test_gpu_is_lost_marks_the_device_lost_and_other_errors_are_field_errors(stub_device):
    backend = NvmlBackend()
    backend.open()
    stub_device["code"] = pynvml.NVML_ERROR_GPU_IS_LOST
    assert backend.poll([0]).readings[0] == {"gpu_lost": True}
    stub_device["code"] = pynvml.NVML_ERROR_UNKNOWN
    assert isinstance(backend.poll([0]).readings[0]["temperature_c"], FieldError)


def test_clock_event_bits_decode_to_names():
    mask = pynvml.nvmlClocksEventReasonHwSlowdown | pynvml.nvmlClocksEventReasonSwPowerCap
    assert decode_clock_event_reasons(mask) == ["hw_slowdown", "sw_power_cap"]
    assert set(nvml_backend._CLOCK_EVENT_BITS) >= {"hw_slowdown", "hw_thermal", "power_brake", "sw_power_cap", "sw_thermal"}


needs_gpu = pytest.mark.skipif(not nvml_works(), reason="no NVIDIA GPU/NVML on this machine")


@pytest.mark.gpu
@needs_gpu
def test_real_gpu_reading_and_preflight():
    from lipsync.health.preflight import run_preflight

    backend = NvmlBackend()
    backend.open()
    assert backend.devices()
    reading = backend.poll([0]).readings[0]
    assert isinstance(reading["temperature_c"], int) and reading["gpu_lost"] is False
    report = run_preflight(backend, required_memory_mib=1000)
    print(report.table())
    assert report.gpu_present and report.verdict in ("fit", "unfit")
    backend.close()


@pytest.mark.gpu
@needs_gpu
def test_real_gpu_self_test_passes():
    import torch

    from lipsync.health.selftest import run_self_test

    if not torch.cuda.is_available():
        pytest.skip("NVML works but torch sees no CUDA device")
    result = run_self_test("cuda:0")
    assert result.ok, result.detail
