"""Audio + transcript -> PocketSphinx forced alignment -> curves, on espeak-ng speech with known phones."""
from __future__ import annotations

import difflib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prepare_inputs import leftovers

from lipsync.audio import SAMPLE_RATE, resample
from lipsync.curves.csv import read_curves_csv
from lipsync.data.alignment import read_alignment_tsv
from lipsync.data.corpus.espeak import STOPS, Voice, synthesise
from lipsync.prepare.problems import CorpusRejected
from lipsync.prepare.transcripts import ForcedAligner, espeak_arpabet, prepare_transcripts, transcript_words
from lipsync.rigs import VISEMES
from lipsync.rigs.phonemes import visemes_for

FPS = 30
PP = VISEMES.index("PP")
ACCURACY_TEXTS = (
    "my mom made maple jam for the picnic",
    "please bring the blue bottle to the big boat",
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
)


def speak(path, text, voice="en-us"):
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.fixture
def spoken(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    speak(folder / "mom.wav", "my mom made maple jam")
    (folder / "mom.txt").write_text("My mom made maple jam.\n")
    return folder


def test_transcript_words_keep_apostrophes_and_drop_punctuation():
    assert transcript_words("Don\u2019t stop -- it's 'fine'!") == ["don't", "stop", "it's", "fine"]


def test_alignment_has_m_where_the_lips_close(spoken, tmp_path):
    out = tmp_path / "corpus"
    prepare_transcripts(spoken, out, fps=FPS, print_report=False)
    phones = read_alignment_tsv(out / "alignments" / "mom.tsv")
    labels = [p.label for p in phones]
    assert labels[:2] == ["M", "AY"] and labels.count("M") == 6  # my mom made maple jam
    curves = read_curves_csv(out / "curves" / "mom.csv").values
    for p in phones:
        if p.label == "M":
            frames = curves[int(p.start * FPS) : int(np.ceil(p.end * FPS)) + 1, PP]
            assert frames.max() > 0.9, p
    clip = json.loads((out / "prepare_log.json").read_text())["clips"]["mom"]
    assert clip["score_per_frame"] > -120 and clip["speech_in_silence_s"] < 0.3
    assert json.loads((out / "report.json").read_text())["prepare"]["flagged"] == {}


def test_out_of_dictionary_word_skips_the_clip_or_uses_espeak(spoken, tmp_path):
    speak(spoken / "odd.wav", "my zorblax is blue")
    (spoken / "odd.txt").write_text("my zorblax is blue")
    result = prepare_transcripts(spoken, tmp_path / "skip", fps=FPS, print_report=False)
    assert result["clips"] == 1 and "zorblax" in result["skipped"][0] and "--oov espeak" in result["skipped"][0]

    assert espeak_arpabet("zorblax") is not None
    result = prepare_transcripts(spoken, tmp_path / "guess", fps=FPS, oov="espeak", print_report=False)
    assert result["clips"] == 2 and "zorblax" in " ".join(result["flagged"]["odd"])
    guessed = json.loads((tmp_path / "guess" / "prepare_log.json").read_text())["clips"]["odd"]["oov_guessed"]
    assert guessed["zorblax"].startswith("Z ")


def test_wrong_transcript_is_refused_and_nothing_written(spoken, tmp_path):
    (spoken / "mom.txt").write_text("the quick brown fox jumps over the lazy dog")
    out = tmp_path / "corpus"
    with pytest.raises(CorpusRejected) as caught:
        prepare_transcripts(spoken, out, fps=FPS, print_report=False)
    (line,) = [str(p) for p in caught.value.problems]
    assert "mom.wav" in line and "forced alignment failed" in line and "; fix: " in line
    assert not out.exists() and leftovers(tmp_path) == []


def test_missing_words_in_transcript_are_flagged(spoken, tmp_path):
    speak(spoken / "long.wav", "please remember to bring my umbrella tomorrow morning")
    (spoken / "long.txt").write_text("please remember to bring")
    result = prepare_transcripts(spoken, tmp_path / "corpus", fps=FPS, print_report=False)
    assert "loud audio aligned to silence" in " ".join(result["flagged"]["long"])


def boundary_errors(text: str, aligner: ForcedAligner) -> tuple[list[float], list[float]]:
    """|start difference| of each matched phone, against espeak-ng's phoneme events: (all, stops left out).

    The corpus helper starts stops at their silent closure rather than at
    espeak's burst event, so the phones without stops are espeak's raw event
    times and the full list is what the demo corpus trains on. Phones are
    matched through their visemes (ARPAbet and espeak mnemonics differ).
    """
    synthesis = synthesise(text, Voice())
    wave = resample(synthesis.audio, synthesis.sample_rate, SAMPLE_RATE)
    result = aligner.align(wave, transcript_words(text))
    assert result is not None
    ref = [p for p in synthesis.phones if visemes_for(p.label, "espeak") != ("sil",)]
    ref_v = [visemes_for(p.label, "espeak")[0] for p in ref]
    hyp_v = [visemes_for(p.label, "arpabet")[0] for p in result.phones]
    matcher = difflib.SequenceMatcher(a=ref_v, b=hyp_v, autojunk=False)
    pairs = [(ref[i + k], result.phones[j + k]) for i, j, n in matcher.get_matching_blocks() for k in range(n)]
    errors = [abs(r.start - h.start) for r, h in pairs]
    no_stops = [abs(r.start - h.start) for r, h in pairs if r.label.rstrip("0123456789#[") not in STOPS]
    return errors, no_stops


def measure_boundary_errors() -> tuple[list[float], list[float]]:
    aligner = ForcedAligner()
    errors, no_stops = [], []
    for text in ACCURACY_TEXTS:
        every, raw = boundary_errors(text, aligner)
        errors += every
        no_stops += raw
    return errors, no_stops


def test_forced_alignment_boundary_error_against_espeak_events():
    # In a fresh process: libespeak-ng keeps a little state between utterances (a few samples of
    # difference after other voices have spoken), and the measurement should not depend on which
    # tests ran before it.
    code = "import json, test_prepare_transcripts as t; print(json.dumps(t.measure_boundary_errors()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    errors, no_stops = json.loads(out.stdout.strip().splitlines()[-1])
    median, median_raw = float(np.median(errors)), float(np.median(no_stops))
    print(f"forced alignment vs espeak-ng: median boundary error {1000 * median:.1f} ms over {len(errors)} phones "
          f"({1000 * median_raw:.1f} ms over the {len(no_stops)} non-stop phones, espeak's raw events)")
    assert len(errors) > 60 and median < 0.03 and median_raw < 0.03
