"""Preflight checks on fake timelines, the CPU self-test, and check_gpu.py on this machine."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lipsync.health.backends import OffBackend
from lipsync.health.cli import main
from lipsync.health.fake_backend import FakeBackend
from lipsync.health.preflight import PreflightOptions, estimate_training_memory_mib, run_preflight
from lipsync.health.selftest import gemm_relative_error, run_self_test

REPO = Path(__file__).resolve().parents[2]

NO_DCGM = PreflightOptions(dcgm_diag=False)


def status(report, check):
    return next(r.status for r in report.rows if r.check == check)


def timeline(tmp_path, initial=None, self_test=None, **extra):
    data = {"devices": [{"index": 0, "name": "NVIDIA RTX A6000", "uuid": "GPU-x", "driver_version": "fake"}],
            "initial": {"temperature_c": 50, "slowdown_temp_c": 88, "clock_event_reasons": [],
                        "memory_used_mib": 1000, "memory_total_mib": 49140, "ecc_volatile_uncorrected": 0,
                        "retired_pages_pending": False, "remapped_rows_pending": False,
                        "remapped_rows_failure": False, "recovery_action": "none", "gpu_lost": False, **(initial or {})},
            "self_test": self_test if self_test is not None else {"ok": True, "detail": "scripted ok"}, **extra}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    return FakeBackend.from_file(path)


def test_healthy_gpu_is_fit(faults):
    report = run_preflight(FakeBackend.from_file(faults / "healthy.json"), required_memory_mib=4000, options=NO_DCGM)
    assert report.verdict == "fit" and report.exit_code == 0, report.table()
    for check in ("device", "recovery_action", "retired_pages_pending", "remapped_rows", "ecc_volatile_uncorrected",
                  "temperature", "clock_events", "free_memory", "xid_events", "self_test"):
        assert status(report, check) == "ok", check
    assert status(report, "dcgm_diag") == "skipped"
    assert "FIT: GPU 0 (NVIDIA RTX A6000)" in report.table()


@pytest.mark.parametrize("initial, check", [
    ({"remapped_rows_pending": True}, "remapped_rows"),
    ({"remapped_rows_failure": True}, "remapped_rows"),
    ({"retired_pages_pending": True}, "retired_pages_pending"),
    ({"recovery_action": "gpu_reset"}, "recovery_action"),
    ({"ecc_volatile_uncorrected": 2}, "ecc_volatile_uncorrected"),
    ({"temperature_c": 90}, "temperature"),
    ({"memory_used_mib": 48000}, "free_memory"),
])
def test_each_sick_state_fails_its_row(tmp_path, initial, check):
    report = run_preflight(timeline(tmp_path, initial), required_memory_mib=4000, options=NO_DCGM)
    assert status(report, check) == "fail", report.table()
    assert report.verdict == "unfit" and report.exit_code == 76


def test_scripted_silent_corruption_fails_the_self_test(tmp_path):
    report = run_preflight(timeline(tmp_path, self_test={"ok": False, "detail": "GEMM differs by 3e-1"}), options=NO_DCGM)
    assert status(report, "self_test") == "fail" and "GEMM differs" in report.table()
    assert report.exit_code == 76


def test_fatal_xid_pending_at_start_fails(tmp_path):
    backend = timeline(tmp_path, polls=[{"events": [{"kind": "xid", "data": 79}]}])
    assert status(run_preflight(backend, options=NO_DCGM), "xid_events") == "fail"


def test_device_must_match_the_config(tmp_path):
    assert status(run_preflight(timeline(tmp_path), device=3, options=NO_DCGM), "device") == "fail"
    report = run_preflight(timeline(tmp_path), options=PreflightOptions(expect_name="RTX 4090", dcgm_diag=False))
    assert status(report, "device") == "fail" and "expects 'RTX 4090'" in report.table()


def test_all_unsupported_is_fit_but_says_unsupported(faults):
    report = run_preflight(FakeBackend.from_file(faults / "all_unsupported.json"), required_memory_mib=1, options=NO_DCGM)
    assert report.verdict == "fit"
    for check in ("recovery_action", "retired_pages_pending", "remapped_rows", "ecc_volatile_uncorrected",
                  "temperature", "free_memory"):
        assert status(report, check) == "unsupported", check
    strict = run_preflight(FakeBackend.from_file(faults / "all_unsupported.json"),
                           options=PreflightOptions(fail_on_unsupported=True, dcgm_diag=False))
    assert strict.verdict == "unfit"


def test_nvml_init_failure_by_policy(faults):
    gpu_run = run_preflight(FakeBackend.from_file(faults / "nvml_init_failure.json"), expect_gpu=True)
    assert gpu_run.verdict == "no_gpu" and gpu_run.exit_code == 76
    assert "NVML Shared Library Not Found" in gpu_run.table()
    cpu_run = run_preflight(FakeBackend.from_file(faults / "nvml_init_failure.json"), expect_gpu=False)
    assert cpu_run.verdict == "not_checked" and cpu_run.exit_code == 0 and status(cpu_run, "nvml") == "warn"
    off = run_preflight(OffBackend())
    assert off.verdict == "not_checked" and status(off, "backend") == "skipped"


def test_self_test_runs_and_catches_a_wrong_product():
    result = run_self_test("cpu", gemm_size=64, memory_mib=1)
    assert result.ok and result.gemm_max_rel_err < 1e-6 and result.memory_bad_words == 0, result.detail
    a = torch.randn(32, 32)
    corrupted = a.clone()
    corrupted[3, 7] += 1.0
    assert gemm_relative_error(corrupted, a) > 1e-2
    corrupted[0, 0] = float("nan")
    assert gemm_relative_error(corrupted, a) == float("inf")


def test_memory_estimate_counts_weights_grads_and_adam():
    assert estimate_training_memory_mib(1024 * 1024, context_mib=0) == pytest.approx(16.0)


def run_check_gpu(*args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "check_gpu.py"), *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_check_gpu_on_this_machine_says_there_is_no_gpu(capsys):
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has NVML/a GPU; the no-GPU message is checked on machines without one")
    done = run_check_gpu()
    assert done.returncode == 76, done.stdout + done.stderr
    assert "NO USABLE GPU" in done.stdout and "NVML Shared Library Not Found" in done.stdout
    assert "sees no CUDA device" in done.stdout
    assert main(["--json"]) == 76
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["verdict"] == "no_gpu" and as_json["exit_code"] == 76


def test_check_gpu_with_fake_timelines(faults, tmp_path, capsys):
    assert main(["--backend", "fake", "--timeline", str(faults / "healthy.json")]) == 0
    sick = timeline(tmp_path, {"remapped_rows_pending": True}).source
    assert main(["--backend", "fake", "--timeline", sick]) == 76
    out = capsys.readouterr().out
    assert "UNFIT" in out and "nvidia-smi -r" in out
    assert main(["--backend", "fake", "--timeline", str(tmp_path / "missing.json")]) == 1
    assert "fault timeline not found" in capsys.readouterr().err
