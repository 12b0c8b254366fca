"""A corpus made by each bring-your-own-data path trains with experiment=scratch for a few steps."""
from __future__ import annotations

import csv
import subprocess

from praatio import textgrid
from prepare_inputs import write_livelink_csv, write_tone

from support import compose_train
from lipsync.prepare.alignments import prepare_alignments
from lipsync.prepare.livelink import prepare_livelink
from lipsync.prepare.transcripts import prepare_transcripts
from lipsync.training.train import train

STEPS = 3


def _train(corpus, run_dir, rig, fps):
    cfg = compose_train([
        "experiment=scratch", f"data.root={corpus}", f"data.rig={rig}", f"data.fps={fps}", f"run.dir={run_dir}",
        f"trainer.max_steps={STEPS}", "trainer.log_every_n_steps=1", "data.batch_size=2", "data.window_seconds=1.0",
        "model.encoder.hidden=16", "model.head.hidden=16", "model.head.layers=2", "health=off",
        "callbacks.progress_bar.refresh_rate=0",
    ])
    assert train(cfg) == 0
    rows = [r for r in csv.DictReader(open(run_dir / "metrics" / "metrics.csv")) if r.get("train/loss")]
    assert len(rows) == STEPS and all(float(r["train/loss"]) > 0 for r in rows)


def test_livelink_corpus_trains(tmp_path):
    src = tmp_path / "capture"
    src.mkdir()
    for i in range(2):
        write_livelink_csv(src / f"take{i}_iPhone.csv")
        write_tone(src / f"take{i}.wav", 2.0)
    prepare_livelink(src, tmp_path / "corpus", print_report=False)
    _train(tmp_path / "corpus", tmp_path / "run", "arkit52", 60)


def test_textgrid_corpus_trains(tmp_path):
    src = tmp_path / "aligned"
    src.mkdir()
    phones = [(0.3, 0.4, "M"), (0.4, 0.6, "AA1"), (0.6, 0.7, "M"), (0.7, 0.9, "AA1")]
    for i in range(2):
        grid = textgrid.Textgrid()
        grid.addTier(textgrid.IntervalTier("phones", phones, 0, 1.2))
        grid.save(str(src / f"clip{i}.TextGrid"), format="long_textgrid", includeBlankSpaces=True)
        write_tone(src / f"clip{i}.wav", 1.2)
    prepare_alignments(src, tmp_path / "corpus", fps=30, print_report=False)
    _train(tmp_path / "corpus", tmp_path / "run", "oculus15", 30)


def test_transcript_corpus_trains(tmp_path):
    src = tmp_path / "lines"
    src.mkdir()
    for i, text in enumerate(("my mom made maple jam", "please bring the blue bottle")):
        subprocess.run(["espeak-ng", "-w", str(src / f"line{i}.wav"), text], check=True, capture_output=True)
        (src / f"line{i}.txt").write_text(text + "\n")
    prepare_transcripts(src, tmp_path / "corpus", fps=30, print_report=False)
    _train(tmp_path / "corpus", tmp_path / "run", "oculus15", 30)
