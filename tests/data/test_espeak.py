"""espeak-ng through ctypes: event timing against the audio, and the stop-closure correction."""
from __future__ import annotations

import numpy as np
import pytest

from lipsync.data.corpus.espeak import (
    PAUSE,
    Voice,
    _engine,
    espeak_available,
    move_stops_over_closures,
    phones_from_events,
    silent_run_before,
    synthesise,
)
from lipsync.rigs import load_rig
from lipsync.rigs.coarticulation import Phone, phones_to_curves
from lipsync.rigs.phonemes import visemes_for

needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="libespeak-ng is not installed (apt-get install espeak-ng libespeak-ng1)"
)
SR = 22050


# --- the correction alone, on hand-made audio ---------------------------------


def _vowel_closure_burst(closure_ms: float) -> tuple[np.ndarray, list[Phone]]:
    """0.1 s of tone, ``closure_ms`` of silence, then a burst+vowel; the event is at the burst."""
    t = np.arange(SR) / SR
    audio = 0.3 * np.sin(2 * np.pi * 200 * t).astype(np.float32)
    burst = round(0.1 * SR + closure_ms / 1000 * SR)
    audio[round(0.1 * SR) : burst] = 0.0
    phones = [Phone(0.0, burst / SR, "a"), Phone(burst / SR, 0.5, "p"), Phone(0.5, 1.0, "i:")]
    return audio, phones


def test_silent_run_counts_quiet_samples_right_before_a_position():
    audio = np.ones(100, np.float32)
    audio[40:60] = 0.0
    assert silent_run_before(audio, 60) == 20
    assert silent_run_before(audio, 50) == 10
    assert silent_run_before(audio, 70) == 0


def test_stop_start_moves_back_over_its_closure_and_the_previous_phone_shrinks():
    audio, phones = _vowel_closure_burst(closure_ms=40)
    fixed = move_stops_over_closures(phones, audio, SR)
    assert fixed[1].start == pytest.approx(0.1, abs=1e-4)
    assert fixed[0].end == fixed[1].start
    assert fixed[1].end == phones[1].end and fixed[2] == phones[2]


def test_a_long_pause_before_a_stop_gives_it_only_max_closure():
    audio, phones = _vowel_closure_burst(closure_ms=300)
    fixed = move_stops_over_closures(phones, audio, SR, max_closure=0.07)
    assert phones[1].start - fixed[1].start == pytest.approx(0.07, abs=1e-4)


def test_non_stops_and_stops_without_silence_are_left_alone():
    audio, phones = _vowel_closure_burst(closure_ms=40)
    as_fricative = [phones[0], Phone(phones[1].start, phones[1].end, "f"), phones[2]]
    assert move_stops_over_closures(as_fricative, audio, SR) == as_fricative
    voiced = np.full_like(audio, 0.2)  # a voice bar through the closure: nothing silent to take
    assert move_stops_over_closures(phones, voiced, SR) == phones


def test_events_become_phones_that_tile_the_audio():
    # Of two events at one sample the later wins; pause marks merge into one pause.
    events = [(0, "h"), (100, ""), (100, "@"), (300, "_:"), (350, "_"), (500, "b")]
    phones = phones_from_events(events, 800, 100)
    assert [p.label for p in phones] == ["h", "@", PAUSE, "b"]
    assert phones[-1].end == 8.0
    assert all(a.end == b.start for a, b in zip(phones, phones[1:]))


# --- real espeak-ng ----------------------------------------------------------


@needs_espeak
def test_event_positions_match_the_audio():
    text = "Bob keeps a happy puppy. Judge the church!"
    raw, events = _engine().synthesise(text, Voice("en-us+m3"))
    audio = raw.astype(np.float32) / 32768
    samples = [s for s, _ in events]
    assert samples == sorted(samples) and samples[0] >= 0
    # The last event marks the end of the speech: within 5 ms of the audio's end.
    assert abs(samples[-1] - len(audio)) <= 0.005 * SR
    synth = synthesise(text, Voice("en-us+m3"))
    assert synth.sample_rate == SR
    assert abs(synth.phones[-1].end - len(synth.audio) / SR) < 0.005
    labels = [p.label for p in synth.phones]
    assert labels[:2] == ["b", "0"] and "dZ" in labels and "tS" in labels
    # The sentence break is a pause and is digital silence; vowels are loud.
    pause = next(p for p in synth.phones[1:-1] if p.label == PAUSE)
    assert np.abs(synth.audio[round(pause.start * SR) : round(pause.end * SR)]).max() < 1e-3
    for vowel in (p for p in synth.phones if p.label in ("0", "i:", "V", "3:")):
        segment = synth.audio[round(vowel.start * SR) : round(vowel.end * SR)]
        assert np.sqrt(np.mean(segment**2)) > 0.02, vowel
    for p in synth.phones:
        visemes_for(p.label, "espeak")


@needs_espeak
def test_p_starts_inside_its_silent_closure_with_lips_closed_there():
    # One synthesis, seen raw and corrected (espeak carries state between calls,
    # so a second call differs by a few samples).
    raw, events = _engine().synthesise("a happy puppy", Voice("en-us+m1"))
    audio = raw.astype(np.float32) / 32768
    bursts = [s / SR for s, label in events if label == "p"]
    phones = move_stops_over_closures(phones_from_events(events, len(audio), SR), audio, SR)
    p_phones = [p for p in phones if p.label == "p"]
    assert len(p_phones) == len(bursts) == 3
    fps = 200
    curves = phones_to_curves(phones, load_rig("oculus15"), fps, phoneset="espeak")
    pp = load_rig("oculus15").index("PP")
    for phone, burst in zip(p_phones, bursts):
        closure = burst - phone.start
        assert 0.015 < closure <= 0.07  # espeak's closures are 20-50 ms
        # From the corrected start up to the burst the audio is silent: the lips are closed.
        assert np.abs(audio[round(phone.start * SR) : round(burst * SR)]).max() < 1e-3
        inside = round((phone.start + closure / 2) * fps)
        assert curves[inside, pp] > 0.98
    # Before the first closure the vowel of "ha-" is still open.
    assert curves[round((p_phones[0].start - 0.07) * fps), pp] < 0.5
