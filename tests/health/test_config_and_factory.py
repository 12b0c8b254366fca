"""configs/health/*.yaml compose with Hydra and build working pieces through build_health."""
from __future__ import annotations

import os

import pytest
from hydra import compose, initialize_config_dir

from lipsync.health.factory import build_health, build_numerics_guard
from lipsync.health.journal import read_journal
from lipsync.health.monitor import HealthMonitor, HealthStop
from lipsync.health.watchdog import HangWatchdog

REPO_CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


@pytest.fixture
def compose_health(tmp_path):
    """Compose the real health group under a minimal primary config (the lead's train.yaml may not exist yet)."""
    (tmp_path / "primary.yaml").write_text("defaults:\n  - health: default\n  - _self_\n")
    (tmp_path / "health").symlink_to(os.path.abspath(os.path.join(REPO_CONFIGS, "health")))

    def _compose(*overrides):
        with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
            return compose("primary", overrides=list(overrides)).health

    return _compose


def test_default_config_builds_watchdog_and_monitor(compose_health, tmp_path):
    cfg = compose_health()
    backend, preflight, callbacks = build_health(cfg, tmp_path / "run", expect_gpu=False)
    assert backend.name == "nvml"
    assert [type(c) for c in callbacks] == [HangWatchdog, HealthMonitor]
    monitor = callbacks[1]
    assert monitor.poll_seconds == 10 and monitor.poll_thread and monitor.on_unavailable == "warn"
    assert callbacks[0].floor_s == 600 and callbacks[0].multiplier == 5
    guard = build_numerics_guard(cfg, tmp_path / "run")
    assert guard.max_consecutive == 3


def test_off_config_builds_nothing_that_touches_the_gpu(compose_health, tmp_path):
    cfg = compose_health("health=off")
    backend, preflight, callbacks = build_health(cfg, tmp_path, expect_gpu=True)
    assert backend.name == "off" and callbacks == []
    report = preflight()
    assert report.fit and report.rows[0].status == "skipped"
    assert compose_health("health.backend=off").backend == "off"


def test_nvml_unavailable_auto_means_abort_for_a_gpu_run(compose_health, tmp_path, faults):
    cfg = compose_health("health.backend=fake", f"health.timeline={faults / 'nvml_init_failure.json'}")
    _, preflight, callbacks = build_health(cfg, tmp_path, expect_gpu=True)
    report = preflight()
    assert report.exit_code == 76 and report.verdict == "no_gpu"
    assert read_journal(tmp_path)[-1]["kind"] == "preflight"
    assert callbacks[1].on_unavailable == "abort"
    _, preflight, _ = build_health(cfg, tmp_path, expect_gpu=False)
    assert preflight().exit_code == 0


def test_rehearsal_through_build_health_ends_with_76(compose_health, tmp_path, faults, fit_tiny):
    """What `train.py health.backend=fake health.timeline=.../ecc_dbe.json` does, minus train()."""
    cfg = compose_health("health.backend=fake", f"health.timeline={faults / 'ecc_dbe.json'}")
    backend, preflight, callbacks = build_health(cfg, tmp_path, expect_gpu=False)
    assert preflight().fit
    callbacks[1].poll_seconds = 0.002  # the timeline's own pace is 0.5 s; the tiny model is faster than that
    _, error = fit_tiny(callbacks, max_steps=100000)
    assert isinstance(error, HealthStop) and error.exit_code == 76
    last = [r for r in read_journal(tmp_path) if r["kind"] == "decision"][-1]
    assert last["exit_code"] == 76 and "ECC" in last["reason"]


def test_unknown_keys_and_backends_fail_loudly(tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        build_health({"backend": "nvml", "poll_secs": 1}, tmp_path)
    with pytest.raises(ValueError, match="is not one of nvml, fake, off"):
        build_health({"backend": "dcgm"}, tmp_path)
    with pytest.raises(ValueError, match="needs health.timeline"):
        build_health({"backend": "fake"}, tmp_path)
