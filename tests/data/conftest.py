"""Small real corpora on disk: audio files, curves CSVs, alignment TSVs and a manifest.

Test modules reach the writers through the ``corpus_files`` fixture (there
is no package to import them from). ``good_corpus`` is valid throughout; ``broken_corpus`` holds one instance of
every validation error beside two good clips, with the text each problem's
line must carry.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from lipsync.audio import write_audio
from lipsync.curves import Curves
from lipsync.curves.csv import write_curves_csv
from lipsync.data.alignment import write_alignment_tsv
from lipsync.rigs import load_rig
from lipsync.rigs.coarticulation import Phone

RIG = load_rig("oculus15")


def speech_like(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A tone with noise bursts: audible, not silent, different per seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = 0.2 * np.sin(2 * np.pi * (150 + 40 * seed) * t)
    wave += 0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 3 * t) > 0)
    return wave.astype(np.float32)


def ramp_curves(n_frames: int, fps: float, channels=RIG.channels) -> Curves:
    """Channel k holds (k + 1) / (C + 1) * frame / n_frames: every channel distinct, all in [0, 1]."""
    frames = np.arange(n_frames)[:, None] / max(n_frames - 1, 1)
    scale = (np.arange(len(channels))[None, :] + 1) / (len(channels) + 1)
    return Curves((frames * scale).astype(np.float32), tuple(channels), fps)


def write_wave(path: Path, seconds: float, sample_rate: int = 16000, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_audio(path, speech_like(seconds, sample_rate, seed), sample_rate)
    return path


def write_ramp_csv(path: Path, n_frames: int, fps: float, channels=RIG.channels, values=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    curves = ramp_curves(n_frames, fps, channels)
    if values is not None:
        curves = Curves(values.astype(np.float32), tuple(channels), fps)
    write_curves_csv(curves, path)
    return path


def write_manifest(root: Path, lines: list) -> Path:
    """Dicts are written as JSON; strings are written verbatim (for broken lines)."""
    path = root / "manifest.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


# An ARPAbet alignment with a /p/ closure, 1.0 s long.
PHONES = [Phone(0.0, 0.15, "sil"), Phone(0.15, 0.3, "P"), Phone(0.3, 0.55, "AA1"), Phone(0.55, 0.7, "T"), Phone(0.7, 1.0, "sil")]


@pytest.fixture
def corpus_files() -> SimpleNamespace:
    """The writers above, for tests that build their own small corpus."""
    return SimpleNamespace(
        rig=RIG,
        phones=PHONES,
        speech_like=speech_like,
        ramp_curves=ramp_curves,
        write_wave=write_wave,
        write_ramp_csv=write_ramp_csv,
        write_manifest=write_manifest,
    )


@pytest.fixture
def good_corpus(tmp_path: Path) -> Path:
    """Four valid clips exercising reordering, resampling, FLAC at 22.05 kHz and alignments."""
    root = tmp_path / "good"
    write_wave(root / "audio/a.wav", 1.3, seed=1)
    # Channels written in reverse order: loading must put them back in rig order.
    write_ramp_csv(root / "curves/a.csv", round(1.3 * 30), 30, channels=RIG.channels[::-1])
    write_wave(root / "audio/b.flac", 0.9, sample_rate=22050, seed=2)
    write_ramp_csv(root / "curves/b.csv", round(0.9 * 60), 60)  # 60 fps: resampled on load
    write_wave(root / "audio/c.wav", 1.0, seed=3)
    write_alignment_tsv(PHONES, root / "align/c.tsv")
    write_wave(root / "audio/d.wav", 0.75, seed=4)
    write_ramp_csv(root / "curves/d.csv", round(0.75 * 25) + 1, 25)  # one frame long: within tolerance
    write_manifest(
        root,
        [
            {"id": "a", "audio": "audio/a.wav", "curves": "curves/a.csv", "speaker": "s1", "split": "train"},
            {"id": "b", "audio": "audio/b.flac", "curves": "curves/b.csv", "speaker": "s2", "split": "train"},
            "",
            {"id": "c", "audio": "audio/c.wav", "alignment": "align/c.tsv", "speaker": "s3", "split": "val"},
            {"id": "d", "audio": "audio/d.wav", "curves": "curves/d.csv", "split": "test", "notes": "kept"},
        ],
    )
    return root


@pytest.fixture
def broken_corpus(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Two good clips and every kind of bad one; returns (root, {file-or-line: text its problem must contain})."""
    root = tmp_path / "broken"
    fps = 30
    lines: list = []
    expected: dict[str, str] = {}

    def clip(clip_id: str, seconds: float = 0.8, **curves_kwargs) -> dict:
        write_wave(root / f"audio/{clip_id}.wav", seconds, seed=len(lines))
        n_frames = curves_kwargs.pop("n_frames", round(seconds * fps))
        write_ramp_csv(root / f"curves/{clip_id}.csv", n_frames, fps, **curves_kwargs)
        return {"id": clip_id, "audio": f"audio/{clip_id}.wav", "curves": f"curves/{clip_id}.csv", "split": "train"}

    def bad_file(record: dict, file: str, text: str) -> None:
        lines.append(record)
        expected[str(root / file)] = text

    def bad_line(text_line, text: str) -> None:
        lines.append(text_line)
        expected[f"{root / 'manifest.jsonl'}:{len(lines)}"] = text

    lines.append(clip("good1"))
    lines.append(clip("good2", seconds=1.1))

    record = clip("unreadable")
    (root / "audio/unreadable.wav").write_bytes(b"this is not audio at all" * 10)
    bad_file(record, "audio/unreadable.wav", "not readable audio")

    record = clip("empty")
    (root / "audio/empty.wav").write_bytes(b"")
    bad_file(record, "audio/empty.wav", "empty file")

    record = clip("silent")
    sf.write(root / "audio/silent.wav", np.zeros(12000, dtype=np.float32), 16000)
    bad_file(record, "audio/silent.wav", "silent")

    record = clip("noaudio")
    (root / "audio/noaudio.wav").unlink()
    bad_file(record, "audio/noaudio.wav", "audio file not found")

    record = clip("nocurves")
    (root / "curves/nocurves.csv").unlink()
    bad_file(record, "curves/nocurves.csv", "curves file not found")

    renamed = tuple("AA" if c == "aa" else c for c in RIG.channels)
    bad_file(clip("wrongchannel", channels=renamed), "curves/wrongchannel.csv", "missing channel(s) aa; extra channel(s) AA")
    bad_file(clip("missingchannel", channels=RIG.channels[:-1]), "curves/missingchannel.csv", "missing channel(s) ou")
    bad_file(clip("extrachannel", channels=RIG.channels + ("jawOpen",)), "curves/extrachannel.csv", "extra channel(s) jawOpen")
    bad_file(clip("toolong", n_frames=round(0.8 * fps) + 3), "curves/toolong.csv", "more than 2 frames apart")
    bad_file(clip("tooshort", n_frames=round(0.8 * fps) - 3), "curves/tooshort.csv", "more than 2 frames apart")

    values = ramp_curves(round(0.8 * fps), fps).values.copy()
    values[5, 3] = np.nan
    bad_file(clip("nan", values=values), "curves/nan.csv", "NaN or infinite value (first at frame 5, channel TH)")
    values = ramp_curves(round(0.8 * fps), fps).values.copy()
    values[7, 10] = 1.5
    bad_file(clip("range", values=values), "curves/range.csv", "values outside [0, 1]")
    record = clip("garbled")
    (root / "curves/garbled.csv").write_text("frame,sil\n0,0\n1,0\n", encoding="utf-8")
    bad_file(record, "curves/garbled.csv", "first column must be 'time'")

    write_wave(root / "audio/unknownphone.wav", 1.0, seed=7)
    write_alignment_tsv([*PHONES[:2], Phone(0.3, 0.55, "QX"), *PHONES[3:]], root / "align/unknownphone.tsv")
    bad_file(
        {"id": "unknownphone", "audio": "audio/unknownphone.wav", "alignment": "align/unknownphone.tsv"},
        "align/unknownphone.tsv",
        "phone 'QX' is not in the arpabet table",
    )
    write_wave(root / "audio/shortaudio.wav", 0.6, seed=8)
    write_alignment_tsv(PHONES, root / "align/shortaudio.tsv")
    bad_file(
        {"id": "shortaudio", "audio": "audio/shortaudio.wav", "alignment": "align/shortaudio.tsv"},
        "align/shortaudio.tsv",
        "phones run to 1.000 s but the audio is 0.600 s",
    )

    bad_line('{"id": "broken json", "audio": ', "not valid JSON")
    bad_line("[1, 2, 3]", "expected a JSON object")
    bad_line({"audio": "audio/good1.wav", "curves": "curves/good1.csv"}, "missing 'id'")
    bad_line({"id": "noaudiokey", "curves": "curves/good1.csv"}, "missing 'audio'")
    bad_line({"id": 17, "audio": "audio/good1.wav", "curves": "curves/good1.csv"}, "'id' must be a non-empty string")
    bad_line({"id": "notargets", "audio": "audio/good1.wav"}, "has neither 'curves' nor 'alignment'")
    bad_line({"id": "good1", "audio": "audio/good1.wav", "curves": "curves/good1.csv"}, "duplicate id 'good1' (first on line 1)")
    bad_line({"id": "badsplit", "audio": "audio/good1.wav", "curves": "curves/good1.csv", "split": "training"}, "unknown split 'training'")

    write_manifest(root, lines)
    return root, expected
