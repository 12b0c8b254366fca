"""The corpus report on small corpora with known faults, and the command line around it."""
from __future__ import annotations

import json

import numpy as np
from prepare_inputs import write_tone

from lipsync.audio import write_audio
from lipsync.curves import Curves
from lipsync.curves.csv import write_curves_csv
from lipsync.prepare.cli import main
from lipsync.prepare.report import corpus_report, format_report
from lipsync.rigs import VISEMES


def make_corpus(root):
    """Three oculus15 clips: one fine, one with curves longer than its audio, one clipped 8 kHz file."""
    root.mkdir()
    lines = []
    for name, audio_s, curves_s, rate in (("good", 1.0, 1.0, 16_000), ("long", 1.0, 1.5, 16_000), ("loud", 1.0, 1.0, 8_000)):
        if name == "loud":
            t = np.arange(rate) / rate
            write_audio(root / f"{name}.wav", np.clip(2 * np.sin(2 * np.pi * 220 * t), -1, 1).astype(np.float32), rate)
        else:
            write_tone(root / f"{name}.wav", audio_s, rate)
        values = np.zeros((round(curves_s * 30), len(VISEMES)), np.float32)
        values[:, VISEMES.index("aa")] = np.linspace(0, 0.9, len(values))
        values[:, VISEMES.index("PP")] = 0.1  # never above 0.2: flagged
        write_curves_csv(Curves(values, VISEMES, 30), root / f"{name}.csv")
        lines.append(json.dumps({"id": name, "audio": f"{name}.wav", "curves": f"{name}.csv", "speaker": "ann"}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_report_finds_flat_channels_mismatch_clipping_and_low_rate(tmp_path):
    report = corpus_report(make_corpus(tmp_path / "c"))
    assert report["rig"] == "oculus15" and report["fps"] == 30 and report["clips"] == 3
    assert report["minutes"] == round(3 / 60, 3) and report["speakers"] == {"ann": {"clips": 3, "minutes": 0.05}}
    assert report["channels"]["PP"]["flagged"] and not report["channels"]["aa"]["flagged"]
    assert report["channels"]["aa"]["coverage"] > 0.7
    assert [m["id"] for m in report["length_mismatches"]] == ["long"]
    assert [c["id"] for c in report["audio"]["clipped"]] == ["loud"]
    assert report["audio"]["below_16k"] == [{"id": "loud", "sample_rate": 8000}]
    assert any("long.csv" in p for p in report["problems"])  # training would refuse it too
    table = format_report(report)
    assert "PP" in table and "FLAG never above 0.2" in table


def test_report_command_writes_json_and_png_and_fails_on_problems(tmp_path, capsys):
    root = make_corpus(tmp_path / "c")
    assert main(["report", str(root), "--out", str(tmp_path / "r")]) == 1
    assert json.loads((tmp_path / "r" / "report.json").read_text())["clips"] == 3
    assert (tmp_path / "r" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "length mismatches  1" in capsys.readouterr().out


def test_prepare_command_on_bad_input_exits_1_with_one_line(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_tone(folder / "clip.wav", 1.0)
    (folder / "clip.tsv").write_text("0.3\t0.5\tM\n0.4\t0.6\tAA\n")
    assert main(["alignments", str(folder), "--out", str(tmp_path / "corpus")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "clip.tsv" in err[1] and "overlap" in err[1]
    assert not (tmp_path / "corpus").exists()
    (folder / "clip.tsv").write_text("0.3\t0.5\tM\n0.5\t0.7\tAA\n")
    assert main(["alignments", str(folder), "--out", str(tmp_path / "corpus")]) == 0
    assert main(["alignments", str(folder), "--out", str(tmp_path / "corpus")]) == 1  # exists: needs --overwrite
    assert main(["alignments", str(folder), "--out", str(tmp_path / "corpus"), "--overwrite"]) == 0
