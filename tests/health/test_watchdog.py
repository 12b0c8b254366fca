"""The hang watchdog: fires on a real hang in a child process (os._exit), and not during a pause."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from lipsync.health.journal import read_journal
from lipsync.health.readings import EXIT_HANG
from lipsync.health.watchdog import HangWatchdog

HANGING_TRAINER = textwrap.dedent("""
    import sys, threading, time
    from lipsync.health.watchdog import HangWatchdog

    def stuck_in_a_collective():
        threading.Event().wait()          # the main thread's "step" never returns

    watchdog = HangWatchdog(sys.argv[1], floor_s=0.5, multiplier=5, check_every_s=0.05)
    watchdog.start()
    for _ in range(5):                    # five quick steps: longest ~0.02 s, so the floor rules
        time.sleep(0.02)
        watchdog.heartbeat()
    stuck_in_a_collective()
""")


def test_hang_dumps_all_stacks_and_exits_with_the_hang_code(tmp_path):
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HANGING_TRAINER, str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == EXIT_HANG, done.stderr
    assert time.monotonic() - start < 30
    (dump,) = tmp_path.glob("hang-*.txt")
    text = dump.read_text()
    assert "no step progress" in text and "after 5 steps" in text
    assert "stuck_in_a_collective" in text  # the main thread's stack names where it hung
    assert "Thread 0x" in text  # faulthandler's all-thread dump
    (line,) = read_journal(tmp_path)
    assert line["kind"] == "hang" and line["exit_code"] == EXIT_HANG and line["stacks"] == str(dump)


def test_limit_follows_the_longest_step_and_pause_suspends_it(tmp_path):
    fired = []
    watchdog = HangWatchdog(tmp_path, floor_s=0.2, multiplier=5, check_every_s=0.02, exit_fn=fired.append)
    watchdog.start()
    watchdog.heartbeat()
    time.sleep(0.1)
    watchdog.heartbeat()  # a 0.1 s step -> limit max(0.5, 0.2) = 0.5 s
    assert 0.45 < watchdog.limit_s < 0.7
    with watchdog.paused():
        time.sleep(0.8)  # a cool-down pause longer than the limit is not a hang
    assert fired == []
    time.sleep(1.0)
    watchdog.stop()
    assert fired == [EXIT_HANG] and watchdog.fired_path is not None
