"""The espeak-ng corpus generator on a tiny corpus, and the shipped demo corpus itself."""
from __future__ import annotations

import json
import re
import random
from pathlib import Path

import pytest

from lipsync.audio import SAMPLE_RATE, audio_duration, load_audio
from lipsync.curves.csv import read_curves_csv
from lipsync.data.alignment import read_alignment_tsv
from lipsync.data.corpus.build import VARIANTS, main, make_corpus, plan_corpus
from lipsync.data.corpus.espeak import espeak_available
from lipsync.data.corpus.sentences import TEMPLATES, WORDS, compose_sentence
from lipsync.rigs import load_rig
from lipsync.rigs.phonemes import visemes_for

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="libespeak-ng is not installed (apt-get install espeak-ng libespeak-ng1)"
)


def _manifest(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def _speakers(rows: list[dict], split: str) -> set[str]:
    return {r["speaker"] for r in rows if r["split"] == split}


def test_sentences_are_drawn_from_the_seed_and_fill_every_slot():
    first = [compose_sentence(random.Random(5)) for _ in range(3)]
    assert first == [compose_sentence(random.Random(5)) for _ in range(3)]
    rng = random.Random(1)
    texts = [compose_sentence(rng) for _ in range(200)]
    assert not any("{" in t or "}" in t for t in texts)
    assert len(set(texts)) > 190
    assert all(kind in WORDS for t in TEMPLATES for kind in re.findall(r"\{(\w+)\}", t))


def test_plan_holds_out_whole_variants_for_val_and_test():
    plans = plan_corpus(400, seed=11)
    assert plans == plan_corpus(400, seed=11)
    variants = {s: {p.voice.name.split("+")[1] for p in plans if p.split == s} for s in ("train", "val", "test")}
    assert variants["val"] and variants["test"]
    assert not variants["train"] & variants["val"] and not variants["train"] & variants["test"]
    assert not variants["val"] & variants["test"]
    assert set().union(*variants.values()) <= set(VARIANTS)
    assert sum(p.split == "val" for p in plans) == sum(p.split == "test" for p in plans) == 40


@needs_espeak
def test_tiny_corpus_is_complete_consistent_and_speaker_disjoint(tmp_path):
    out = tmp_path / "corpus"
    stats = make_corpus(out, n_clips=6, seed=3, fps=30, progress=False)
    rows = _manifest(out)
    assert len(rows) == 6 == stats["clips"]
    assert [r["split"] for r in rows].count("train") == 4
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert not _speakers(rows, "train") & (_speakers(rows, "val") | _speakers(rows, "test"))
    rig = load_rig("oculus15")
    for r in rows:
        assert set(r) >= {"id", "audio", "alignment", "curves", "speaker", "split"}
        assert all(not Path(r[k]).is_absolute() for k in ("audio", "alignment", "curves"))
        wave = load_audio(out / r["audio"])
        duration = len(wave) / SAMPLE_RATE
        curves = read_curves_csv(out / r["curves"])
        assert curves.channels == rig.channels and curves.fps == 30
        assert abs(curves.n_frames - duration * 30) <= 1
        assert curves.values.min() >= 0 and curves.values.max() <= 1
        phones = read_alignment_tsv(out / r["alignment"])
        assert phones[0].start == 0 and abs(phones[-1].end - duration) < 0.005
        assert phones[0].label == phones[-1].label == "_"  # padded silence
        for phone in phones:
            visemes_for(phone.label, "espeak")
    on_disk = json.loads((out / "stats.json").read_text())
    assert on_disk["clips"] == 6 and on_disk["speech_minutes"] < on_disk["minutes"]
    assert on_disk["viseme_counts"]["PP"] > 0


@needs_espeak
def test_cli_refuses_a_non_empty_folder_unless_told_to_overwrite(tmp_path, capsys):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["--out", str(out), "--clips", "3", "--seed", "1"]) == 1
    assert "not empty" in capsys.readouterr().err
    assert not (out / "manifest.jsonl").exists()
    assert main(["--out", str(out), "--clips", "3", "--seed", "1", "--overwrite"]) == 0
    assert len(_manifest(out)) == 3
    assert main(["--out", str(out), "--clips", "2", "--seed", "1", "--overwrite"]) == 0
    assert len(list((out / "audio").iterdir())) == 2  # the earlier run's clips are gone
    assert (out / "notes.txt").read_text() == "mine"  # what the generator did not write stays


def test_demo_corpus_is_shipped_big_enough_and_small_enough():
    rows = _manifest(DEMO)
    assert len(rows) >= 300
    assert len({r["id"] for r in rows}) == len(rows)
    seconds = 0.0
    for r in rows:
        wave = load_audio(DEMO / r["audio"])  # readable, not silent
        seconds += len(wave) / SAMPLE_RATE
        assert (DEMO / r["curves"]).is_file() and (DEMO / r["alignment"]).is_file()
    assert seconds >= 10 * 60
    stats = json.loads((DEMO / "stats.json").read_text())
    assert stats["speech_minutes"] >= 10 and stats["clips"] == len(rows)
    splits = {s: _speakers(rows, s) for s in ("train", "val", "test")}
    assert splits["val"] and splits["test"] and not splits["train"] & (splits["val"] | splits["test"])
    # What `du` counts: allocated blocks, not apparent sizes.
    on_disk = sum(p.stat().st_blocks * 512 for p in DEMO.rglob("*") if p.is_file())
    assert on_disk <= 15 * 1024 * 1024, f"data/demo takes {on_disk / 2**20:.1f} MiB"


def test_demo_curves_match_their_audio():
    rows = _manifest(DEMO)
    for r in rows[:: max(1, len(rows) // 25)]:
        curves = read_curves_csv(DEMO / r["curves"])
        assert abs(curves.n_frames - audio_duration(DEMO / r["audio"]) * curves.fps) <= 1
