"""Scripted GPU faults through the real train(): the exit code, what is saved, and health.jsonl."""
from __future__ import annotations

import json

from support import REPO, compose_train
from lipsync.training.train import train

FAULTS = REPO / "configs" / "health" / "faults"


def _cfg(corpus, run_dir, timeline):
    return compose_train([
        "experiment=scratch", f"data.root={corpus}", f"run.dir={run_dir}", "trainer.max_steps=2000",
        "trainer.val_check_interval=1000", "data.batch_size=2", "data.window_seconds=1.0",
        "model.encoder.hidden=16", "model.head.hidden=16", "model.head.layers=2", "checkpoint.every_minutes=null",
        "callbacks.progress_bar.refresh_rate=0", "health.backend=fake", f"health.timeline={timeline}",
    ])


def _decisions(run_dir):
    lines = [json.loads(line) for line in (run_dir / "health.jsonl").read_text().splitlines()]
    return [entry for entry in lines if entry.get("kind") == "decision"]


def test_uncorrectable_ecc_aborts_with_76_and_saves_nothing(mini_corpus, tmp_path):
    run_dir = tmp_path / "run"
    assert train(_cfg(mini_corpus, run_dir, FAULTS / "ecc_dbe.json")) == 76
    assert not list((run_dir / "checkpoints").glob("*.ckpt")), "nothing may be saved from a suspect GPU"
    assert any(d.get("action") == "abort" for d in _decisions(run_dir))
    assert not (run_dir / "done.json").exists()


def test_pending_retirement_checkpoints_stops_75_and_the_same_command_resumes(mini_corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(_cfg(mini_corpus, run_dir, FAULTS / "pending_retirement.json")) == 75
    saved = sorted((run_dir / "checkpoints").glob("step-*.ckpt"))
    assert saved, "a health stop with exit 75 promises a fresh checkpoint"
    assert any("reset" in json.dumps(d).lower() for d in _decisions(run_dir))
    step = int(saved[-1].stem.split("-")[1])

    cfg = _cfg(mini_corpus, run_dir, FAULTS / "healthy.json")
    cfg.trainer.max_steps = step + 3
    assert train(cfg) == 0
    assert f"at step {step}" in capsys.readouterr().out
    assert json.loads((run_dir / "done.json").read_text())["global_step"] == step + 3
