"""Each shipped fault timeline, replayed through the monitor in a real (tiny, CPU) Lightning run."""
from __future__ import annotations

import json
import time

import lightning.pytorch as pl
import pytest

from lipsync.health.fake_backend import FakeBackend
from lipsync.health.journal import read_journal
from lipsync.health.monitor import HealthMonitor, HealthStop
from lipsync.health.readings import EXIT_GPU_UNFIT, EXIT_STOP

# fault -> (condition that must be decided, its action, exit code of the run (None: it finishes))
FAULT_TABLE = {
    "healthy": (None, None, None),
    "thermal_ramp": ("thermal", "pause", None),
    "hw_slowdown": ("hw_slowdown", "pause", None),
    "power_brake": ("power_brake", "pause", None),
    "ecc_dbe": ("ecc_uncorrectable", "abort", EXIT_GPU_UNFIT),
    "xid_48": ("xid_fatal", "abort", EXIT_GPU_UNFIT),
    "xid_79": ("xid_fatal", "abort", EXIT_GPU_UNFIT),
    "xid_95": ("xid_fatal", "abort", EXIT_GPU_UNFIT),
    "gpu_lost": ("gpu_lost", "abort", EXIT_GPU_UNFIT),
    "pending_retirement": ("pending_retirement", "stop", EXIT_STOP),
    "all_unsupported": ("unsupported", "report", None),
    "nvml_init_failure": ("nvml_unavailable", "warn", None),
}


def _monitor(path, run_dir, **kwargs) -> HealthMonitor:
    kwargs.setdefault("poll_seconds", 0.0)  # one poll per step: the timeline advances with training
    kwargs.setdefault("poll_thread", False)
    return HealthMonitor(FakeBackend.from_file(path), run_dir, pause_timeout_s=5.0, **kwargs)


def test_every_shipped_fault_is_in_the_table(faults):
    assert {p.stem for p in faults.glob("*.json")} == set(FAULT_TABLE)


@pytest.mark.parametrize("fault", sorted(FAULT_TABLE))
def test_fault_gives_documented_action_exit_code_and_journal_line(fault, faults, tmp_path, fit_tiny):
    condition, action, exit_code = FAULT_TABLE[fault]
    trainer, error = fit_tiny([_monitor(faults / f"{fault}.json", tmp_path)], max_steps=30)
    lines = read_journal(tmp_path)
    decisions = [r for r in lines if r["kind"] == "decision"]
    if exit_code is None:
        assert error is None, error
        assert trainer.global_step == 30
    else:
        assert isinstance(error, HealthStop), error
        assert error.exit_code == exit_code
        assert error.save_checkpoint is (exit_code == EXIT_STOP)
        assert error.condition == condition
        assert trainer.global_step < 30
        # the line that ends the run says why, with the same exit code
        assert decisions[-1]["exit_code"] == exit_code and decisions[-1]["condition"] == condition
    if condition is None:
        assert decisions == []
        assert sum(r["kind"] == "reading" for r in lines) == 30
    else:
        assert any(d["condition"] == condition and d["action"] == action for d in decisions), decisions
    if action == "pause":
        kinds = [r["kind"] for r in lines]
        assert "pause" in kinds and "resume" in kinds and kinds.index("pause") < kinds.index("resume")
        assert [d["action"] for d in decisions if d["condition"] == condition][:2] == ["warn", "pause"]


def test_unsupported_fields_are_reported_never_healthy(faults, tmp_path, fit_tiny):
    fit_tiny([_monitor(faults / "all_unsupported.json", tmp_path)], max_steps=5)
    lines = read_journal(tmp_path)
    reading = next(r for r in lines if r["kind"] == "reading")
    assert reading["temperature_c"] == "unsupported" and reading["ecc_volatile_uncorrected"] == "unsupported"
    report = [r for r in lines if r["kind"] == "decision" and r["condition"] == "unsupported"]
    assert len(report) == 1  # said once, not every poll
    assert "temperature_c" in report[0]["reason"] and "not assumed healthy" in report[0]["reason"]


def test_progress_bar_shows_temperature_and_throttling(faults, tmp_path, fit_tiny):
    trainer, _ = fit_tiny([_monitor(faults / "healthy.json", tmp_path)], max_steps=5)
    assert trainer.progress_bar_metrics["gpu_temp_c"] == 60.0  # 5th poll of healthy.json: 55, 55, 55, 58, 60
    assert trainer.progress_bar_metrics["gpu_throttle"] == 0.0


def test_nvml_failure_aborts_when_the_run_expects_a_gpu(faults, tmp_path, fit_tiny):
    trainer, error = fit_tiny([_monitor(faults / "nvml_init_failure.json", tmp_path, on_unavailable="abort")])
    assert isinstance(error, HealthStop) and error.exit_code == EXIT_GPU_UNFIT and not error.save_checkpoint
    assert trainer.global_step == 0
    line = read_journal(tmp_path)[-1]
    assert line["condition"] == "nvml_unavailable" and "NVML Shared Library Not Found" in line["reason"]


def _timeline(tmp_path, polls) -> str:
    path = tmp_path / "timeline.json"
    path.write_text(json.dumps({"devices": [{"index": 0, "name": "NVIDIA Fake"}],
                                "initial": {"temperature_c": 60, "slowdown_temp_c": 88, "clock_event_reasons": []},
                                "polls": polls}))
    return str(path)


def test_pause_that_never_cools_stops_with_a_checkpoint(tmp_path, fit_tiny):
    path = _timeline(tmp_path, [{"temperature_c": 86, "clock_event_reasons": ["hw_thermal"]}])
    monitor = HealthMonitor(FakeBackend.from_file(path), tmp_path, poll_seconds=0.0, poll_thread=False,
                            pause_timeout_s=0.05)
    _, error = fit_tiny([monitor], max_steps=30)
    assert isinstance(error, HealthStop) and error.exit_code == EXIT_STOP and error.save_checkpoint
    assert error.condition == "pause_timeout" and "did not cool below 73" in error.reason


class _SlowSteps(pl.Callback):
    def on_train_batch_end(self, *args):
        time.sleep(0.002)


def test_background_thread_polls_and_the_stop_lands_on_a_step_boundary(faults, tmp_path, fit_tiny):
    monitor = _monitor(faults / "xid_79.json", tmp_path, poll_seconds=0.01, poll_thread=True)
    trainer, error = fit_tiny([monitor, _SlowSteps()], max_steps=5000)
    assert isinstance(error, HealthStop) and error.exit_code == EXIT_GPU_UNFIT and "Xid 79" in error.reason
    assert 0 < trainer.global_step < 5000
    assert monitor._thread is None  # stopped on the exception
