"""Policy decisions from readings, and the fault-timeline format."""
from __future__ import annotations

import json

import pytest

from lipsync.health.fake_backend import FakeBackend, TimelineError
from lipsync.health.policy import HealthPolicy, PolicyConfig, most_severe
from lipsync.health.readings import UNSUPPORTED, FieldError, HealthEvent, Poll

BASE = {"temperature_c": 60, "slowdown_temp_c": 88, "clock_event_reasons": [], "ecc_volatile_uncorrected": 0,
        "pcie_replay_count": 0, "recovery_action": "none", "gpu_lost": False}


def poll(events=(), **fields) -> Poll:
    return Poll(time=0.0, readings={0: {**BASE, **fields}}, events=list(events))


def test_throttle_ladder_climbs_one_rung_per_window_and_resets_when_it_clears():
    policy = HealthPolicy(PolicyConfig(throttle_window_polls=2))
    actions = [[d.action for d in policy.evaluate(poll(clock_event_reasons=["hw_slowdown"]))] for _ in range(6)]
    assert actions == [[], ["warn"], [], ["pause"], [], []]  # ladder [warn, pause] exhausted after rung 2
    assert policy.evaluate(poll()) == []
    assert [d.action for d in policy.evaluate(poll(clock_event_reasons=["hw_slowdown"]))] == []
    assert [d.action for d in policy.evaluate(poll(clock_event_reasons=["hw_slowdown"]))] == ["warn"]


def test_near_slowdown_temperature_counts_as_thermal_without_a_clock_event():
    policy = HealthPolicy(PolicyConfig(throttle_window_polls=1, thermal_margin_c=5))
    assert policy.evaluate(poll(temperature_c=82)) == []
    (d,) = policy.evaluate(poll(temperature_c=83))
    assert (d.condition, d.action) == ("thermal", "warn")


@pytest.mark.parametrize("xid, condition, action, code", [
    (48, "xid_fatal", "abort", 76), (79, "xid_fatal", "abort", 76), (95, "xid_fatal", "abort", 76),
    (63, "xid_reset", "stop", 75), (92, "xid_reset", "stop", 75), (13, "xid_other", "warn", None),
])
def test_xid_classes(xid, condition, action, code):
    (d,) = HealthPolicy().evaluate(poll(events=[HealthEvent(0, "xid", xid)]))
    assert (d.condition, d.action, d.exit_code) == (condition, action, code)
    assert f"Xid {xid}" in d.reason


def test_one_shot_conditions_fire_once_per_episode():
    policy = HealthPolicy()
    assert [d.condition for d in policy.evaluate(poll(retired_pages_pending=True))] == ["pending_retirement"]
    assert policy.evaluate(poll(retired_pages_pending=True)) == []
    assert "nvidia-smi -r -i 0" in HealthPolicy().evaluate(poll(remapped_rows_pending=True))[0].reason


def test_counters_compare_with_the_first_value_seen():
    policy = HealthPolicy()
    assert policy.evaluate(poll(ecc_volatile_uncorrected=2)) == []  # errors from before the run: preflight's job
    (d,) = policy.evaluate(poll(ecc_volatile_uncorrected=3))
    assert (d.condition, d.exit_code) == ("ecc_uncorrectable", 76)
    policy.evaluate(poll(pcie_replay_count=0))
    assert [d.condition for d in policy.evaluate(poll(pcie_replay_count=100))] == ["pcie_replay"]


def test_unsupported_and_errors_are_reported_once_and_never_trip_a_check():
    policy = HealthPolicy()
    fields = {k: UNSUPPORTED for k in BASE if k != "gpu_lost"}
    first = policy.evaluate(poll(**fields, power_w=FieldError("Unknown Error")))
    assert [d.condition for d in first] == ["unsupported", "field_error"]
    assert policy.evaluate(poll(**fields, power_w=FieldError("Unknown Error"))) == []
    with pytest.raises(TypeError):
        bool(UNSUPPORTED)  # no code path may read it as "fine"


def test_configured_actions_and_validation():
    policy = HealthPolicy(PolicyConfig.from_cfg({"actions": {"xid_other": "abort", "thermal": "stop"},
                                                  "windows": {"throttle_polls": 1}}))
    assert most_severe(policy.evaluate(poll(events=[HealthEvent(0, "xid", 13)]))).exit_code == 76
    assert policy.evaluate(poll(temperature_c=87))[0].action == "stop"
    with pytest.raises(ValueError, match="health.actions.thermals: unknown condition"):
        PolicyConfig.from_cfg({"actions": {"thermals": "warn"}})
    with pytest.raises(ValueError, match="use one of"):
        PolicyConfig.from_cfg({"actions": {"thermal": "explode"}})


def _write(tmp_path, data) -> str:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_timeline_state_holds_events_fire_once_and_the_last_state_repeats(tmp_path):
    backend = FakeBackend.from_file(_write(tmp_path, {
        "devices": [{"index": 0, "name": "X"}], "initial": {"temperature_c": 50},
        "polls": [{"repeat": 2}, {"temperature_c": 70, "events": [{"kind": "xid", "data": 79}], "repeat": 2}]}))
    polls = [backend.poll([0]) for _ in range(6)]
    assert [p.readings[0]["temperature_c"] for p in polls] == [50, 50, 70, 70, 70, 70]
    assert [len(p.events) for p in polls] == [0, 0, 1, 0, 0, 0]
    assert "gpu_lost" in backend.poll([3]).readings[3]  # a device that is not there reads as an error


@pytest.mark.parametrize("data, message", [
    ({"devices": [{"index": 0, "name": "X"}], "polls": [{"temprature_c": 1}]}, "unknown reading field 'temprature_c'"),
    ({"devices": [{"index": 0, "name": "X"}], "polls": [{"events": [{"kind": "xdi"}]}]}, "event kind 'xdi'"),
    ({"devices": [{"index": 0, "name": "X"}], "polls": [{"clock_event_reasons": ["hot"]}]}, "unknown clock event"),
    ({"polls": []}, "needs a 'devices' list"),
])
def test_bad_timelines_fail_with_one_clear_line(tmp_path, data, message):
    with pytest.raises(TimelineError, match=message):
        FakeBackend.from_file(_write(tmp_path, data))


def test_yaml_timelines_work_too(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("devices: [{index: 0, name: X}]\ninitial: {temperature_c: unsupported}\n")
    assert FakeBackend.from_file(path).poll([0]).readings[0]["temperature_c"] is UNSUPPORTED


def test_every_shipped_timeline_loads(faults):
    for path in faults.glob("*.json"):
        backend = FakeBackend.from_file(path)
        assert backend.description, path
