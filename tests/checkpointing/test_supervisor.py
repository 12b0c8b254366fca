"""The supervisor's decisions, with a stand-in child (a few lines of Python that beat and exit as told)."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from lipsync.checkpointing.supervisor import Supervisor, SupervisorLimits

# argv: exit codes for successive starts (a file counts the starts); "hang" stops beating; SIGTERM -> exit 75.
CHILD = r"""
import os, signal, sys, time
count_file = sys.argv[1]
n = int(open(count_file).read()) if os.path.exists(count_file) else 0
open(count_file, "w").write(str(n + 1))
plan = sys.argv[2].split(",")
what = plan[min(n, len(plan) - 1)]
signal.signal(signal.SIGTERM, lambda *a: sys.exit(75))
beat = os.environ["LIPSYNC_HEARTBEAT_FILE"]
for step in range(1, 6 if what != "forever" else 10**6):
    open(beat, "w").write(f"{step} 0.01\n")
    time.sleep(0.02)
if what == "hang":
    time.sleep(60)
sys.exit(int(what) if what not in ("hang", "forever") else 0)
"""

FAST = SupervisorLimits(max_restarts=3, backoff_s=0.01, hang_floor_s=0.5, poll_s=0.02, startup_timeout_s=20)


def _supervise(tmp_path, plan: str, limits=FAST) -> tuple[int, list[dict]]:
    command = [sys.executable, "-c", CHILD, str(tmp_path / "starts"), plan]
    code = Supervisor(command, tmp_path, limits).run()
    events = [json.loads(line) for line in (tmp_path / "supervisor.jsonl").read_text().splitlines()]
    return code, events


def test_crashes_and_hangs_are_restarted_until_it_finishes(tmp_path):
    code, events = _supervise(tmp_path, "137,hang,79,0")
    assert code == 0
    assert [e["event"] for e in events] == ["restart", "restart", "restart", "exit"]
    assert "hung (no step" in events[1]["message"]


def test_user_error_and_unfit_gpu_are_not_restarted(tmp_path):
    for plan, expected in (("1", 1), ("76", 76)):
        (tmp_path / "starts").unlink(missing_ok=True)
        (tmp_path / "supervisor.jsonl").unlink(missing_ok=True)
        code, events = _supervise(tmp_path, plan)
        assert code == expected and [e["event"] for e in events] == ["exit"]


def test_restart_limit(tmp_path):
    code, events = _supervise(tmp_path, "3")
    assert code == 3 and [e["event"] for e in events] == ["restart"] * 3 + ["give_up"]


def test_sigterm_to_the_supervisor_stops_the_child_cleanly(tmp_path):
    heartbeat = tmp_path / "heartbeat"

    def stop_when_training():
        deadline = time.monotonic() + 20
        while not heartbeat.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_training, daemon=True).start()
    code, events = _supervise(tmp_path, "forever")
    assert code == 75
    assert events[-1]["event"] == "stopped" and "SIGTERM" in events[-1]["message"]
    assert int((tmp_path / "starts").read_text()) == 1  # not restarted
