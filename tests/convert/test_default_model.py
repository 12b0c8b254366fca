"""The shipped model: scripts/convert.py works right after install, with no --model, no training, no download."""
from __future__ import annotations

import json
import shutil

import numpy as np

from lipsync.audio import load_audio, num_frames
from lipsync.convert.cli import DEFAULT_MODEL, main
from lipsync.curves.csv import read_curves_csv
from support import DEMO


def test_default_model_is_shipped_with_its_card():
    card = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert DEFAULT_MODEL.stat().st_size < 12_000_000  # a few MB, in the package
    assert card["rig"] == "oculus15" and len(card["channels"]) == 15 and card["fps"] == 30
    assert card["metrics"] and card["training_run"]["command"]


def test_convert_without_model_uses_the_shipped_one(tmp_path, capsys):
    entry = json.loads((DEMO / "manifest.jsonl").read_text().splitlines()[0])
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(DEMO / entry["audio"], src / "line.flac")
    assert main([str(src), "--out", str(tmp_path / "out"), "--format", "csv,rhubarb-tsv", "--no-progress"]) == 0
    assert "shipped model" in capsys.readouterr().err
    curves = read_curves_csv(tmp_path / "out" / "line.csv")
    assert curves.n_frames == num_frames(len(load_audio(src / "line.flac")), 30)
    truth = read_curves_csv(DEMO / entry["curves"])
    n = min(truth.n_frames, curves.n_frames)
    agree = np.mean(curves.values[:n].argmax(1) == truth.values[:n].argmax(1))
    assert agree > 0.6, agree  # a trained model, not a stand-in: it follows the clip's own visemes
    assert (tmp_path / "out" / "line.rhubarb.tsv").read_text().strip()
