"""Fault injection with real processes: kill -9 anywhere, SIGTERM, a hang; the same command resumes bit-identically.

Rerun: python -m pytest tests/checkpointing -q
"""
from __future__ import annotations

import json

import torch

from conftest import MAX_STEPS, assert_identical, final_state, read_samples, run_train, train_command


def _ckpt(run_dir, step: int) -> str:
    return str(run_dir / "checkpoints" / f"step-{step:09d}.ckpt")


def test_killed_anywhere_then_same_command_resumes_bit_identical(mini_corpus, reference_run, tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "samples.log"
    command = train_command(mini_corpus, run_dir)
    faults = {"LIPSYNC_TEST_KILL_AT_STEP": "3,9", "LIPSYNC_TEST_KILL_IN_VALIDATION_AT_STEP": "6",
              "LIPSYNC_TEST_KILL_IN_SAVE_AT_STEP": "8", "LIPSYNC_TEST_SIGNAL_AT_STEP": "11:SIGTERM",
              "LIPSYNC_TEST_SAMPLE_LOG": log}
    # (exit code, checkpoint it resumed from, steps it trained). Checkpoints every 2 steps; epoch 0 = steps 1-8.
    plan = [
        (-9, None, range(1, 4)),   # kill -9 after step 3: mid-epoch, last checkpoint step 2
        (-9, 2, range(3, 7)),      # resumes mid-epoch; kill -9 inside the validation after step 6 (2nd kill in epoch 0)
        (-9, 6, range(7, 9)),      # resumes from the checkpoint written just before that validation; kill -9 half-way
                                   # through writing step 8
        (-9, 6, range(7, 10)),     # the half-written step 8 is ignored; kill -9 after step 9 (last checkpoint:
                                   # step 8, the end of epoch 0)
        (75, 8, range(9, 12)),     # resumes at the epoch boundary; SIGTERM during step 11 -> saves step 11, exit 75
        (0, 11, range(12, 13)),    # resumes after the signal and finishes
    ]
    for i, (code, resumed_from, _) in enumerate(plan):
        proc = run_train(command, **faults)
        assert proc.returncode == code, f"run {i + 1}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        if resumed_from is None:
            assert "Resuming from" not in proc.stdout
        else:
            assert f"Resuming from {_ckpt(run_dir, resumed_from)} at step {resumed_from}" in proc.stdout, proc.stdout
        if i == 3:
            assert "left by a save that was interrupted" in proc.stdout
        if code == 75:
            assert "Stopped by SIGTERM after step 11" in proc.stdout and "Run the same command" in proc.stdout

    assert_identical(final_state(run_dir), final_state(reference_run))
    # Every resumed run starts right after its checkpoint: nothing skipped, nothing but lost work replayed.
    steps_trained = [int(line.split()[0]) for line in log.read_text().splitlines()]
    assert steps_trained == [s for _, _, steps in plan for s in steps]
    assert read_samples(log) == read_samples(reference_run.parent / "samples.log")
    assert sorted(read_samples(log)) == list(range(1, MAX_STEPS + 1))
    assert (run_dir / "done.json").is_file()
    assert json.loads((run_dir / "done.json").read_text())["global_step"] == MAX_STEPS


def test_sigterm_between_steps_still_saves_and_exits_75(mini_corpus, reference_run, tmp_path):
    """A signal after the checkpoint callback's check at the end of a step, and before Lightning's own check in
    the same step: Lightning must not see it first (it would end the run with exit 0 and nothing saved)."""
    run_dir, log = tmp_path / "run", tmp_path / "samples.log"
    command = train_command(mini_corpus, run_dir)
    stopped = run_train(command, LIPSYNC_TEST_SIGNAL_AFTER_STEP="5:SIGTERM", LIPSYNC_TEST_SAMPLE_LOG=log)
    assert stopped.returncode == 75, stopped.stdout[-2000:] + stopped.stderr[-3000:]
    assert "Stopped by SIGTERM after step 6" in stopped.stdout and not (run_dir / "done.json").exists()
    resumed = run_train(command, LIPSYNC_TEST_SAMPLE_LOG=log)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert f"Resuming from {_ckpt(run_dir, 6)} at step 6" in resumed.stdout
    assert [int(line.split()[0]) for line in log.read_text().splitlines()] == list(range(1, MAX_STEPS + 1))
    assert_identical(final_state(run_dir), final_state(reference_run))


def test_supervised_run_survives_kill_and_hang(mini_corpus, reference_run, tmp_path):
    run_dir = tmp_path / "run"
    command = train_command(mini_corpus, run_dir, "run.supervise=true", "run.supervisor.backoff_s=0.1",
                            "run.supervisor.hang_floor_s=5", "run.supervisor.poll_s=0.1")
    proc = run_train(command, timeout=400, LIPSYNC_TEST_KILL_AT_STEP="3", LIPSYNC_TEST_STOP_AT_STEP="7")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [json.loads(line) for line in (run_dir / "supervisor.jsonl").read_text().splitlines()]
    restarts = [e["message"] for e in events if e["event"] == "restart"]
    assert any("killed by SIGKILL" in m for m in restarts), restarts
    assert any("hung (no step" in m for m in restarts), restarts   # the SIGSTOPped child
    assert events[-1]["event"] == "exit" and events[-1]["exit_code"] == 0
    assert "[supervisor] child was killed by SIGKILL; restart 1/10" in proc.stdout
    assert_identical(final_state(run_dir), final_state(reference_run))


def test_fine_tune_killed_then_same_command_resumes_bit_identical(mini_corpus, reference_run, tmp_path):
    """init_from applies once, at the start: the rerun resumes its own checkpoint, not the source's weights."""
    init = f"init_from={reference_run}"
    straight = run_train(train_command(mini_corpus, tmp_path / "straight", init))
    assert straight.returncode == 0, straight.stdout[-3000:] + straight.stderr[-3000:]
    assert f"init_from: starting from the weights of {reference_run}" in straight.stdout

    run_dir = tmp_path / "killed"
    killed = run_train(train_command(mini_corpus, run_dir, init), LIPSYNC_TEST_KILL_AT_STEP="7")
    assert killed.returncode == -9
    resumed = run_train(train_command(mini_corpus, run_dir, init))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout and "init_from:" not in resumed.stdout
    assert_identical(final_state(run_dir), final_state(tmp_path / "straight"))
    # Without init_from this command is the reference run itself; ending elsewhere shows the source was the start.
    fresh = final_state(reference_run)["state_dict"]
    assert any(not torch.equal(fresh[k], v) for k, v in final_state(run_dir)["state_dict"].items())
