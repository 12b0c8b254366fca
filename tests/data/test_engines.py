"""Each synthesis engine's timing source on a generated clip, stop closures, reserved voices, multi-engine corpora."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lipsync.data.corpus import engines, festival, flite, jtalk, mbrola
from lipsync.data.corpus.build import MBROLA_NOTICE, _parse_counts, main, make_corpus
from lipsync.data.corpus.closures import closure_span, start_stops_at_closure
from lipsync.data.corpus.espeak import Voice, _engine, espeak_available, phones_from_events
from lipsync.data.corpus.espeak import synthesise as espeak_synthesise
from lipsync.data.validate import CorpusError, load_clips, validate_corpus
from lipsync.training.evaluate import main as evaluate_main
from lipsync.rigs import load_rig
from lipsync.rigs.coarticulation import Phone, phones_to_curves
from lipsync.rigs.phonemes import UnknownPhoneError, _festival_tables, festival_to_ipa, visemes_for

needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="libespeak-ng is not installed (apt-get install espeak-ng libespeak-ng1)"
)
needs_mbrola = pytest.mark.skipif(
    not all(mbrola.mbrola_available(v) for v in mbrola.VOICES),
    reason="MBROLA and its voices are not installed (contrib/non-free; CI does not install them): "
    "run scripts/install_engines.sh",
)
needs_mbrola_native = pytest.mark.skipif(
    not all(mbrola.mbrola_available(v) for v in mbrola.NATIVE_VOICES),
    reason="MBROLA's Italian and Czech voices are not installed (contrib/non-free): run scripts/install_engines.sh",
)
needs_festival = pytest.mark.skipif(
    not festival.festival_available("ked_diphone"),
    reason="Festival with ked_diphone is not installed (apt-get install festival festvox-kdlpc16k)",
)
needs_festival_voices = pytest.mark.skipif(
    not all(festival.festival_available(v) for v in festival.VOICES),
    reason=f"Festival's voices are not installed: {festival.INSTALL_HINT}",
)
needs_blind_voices = pytest.mark.skipif(
    not all(festival.festival_available(v) for v in festival.BLIND_VOICES),
    reason=f"the blind test's voices are not installed (apt-get install festival {festival.BLIND_PACKAGES})",
)
needs_flite = pytest.mark.skipif(
    not all(flite.flite_available(v) for v in flite.VOICES), reason="Flite is not installed (apt-get install flite)"
)
needs_jtalk = pytest.mark.skipif(not jtalk.jtalk_available(), reason=f"Open JTalk with its voice is not installed: {jtalk.INSTALL_HINT}")
TEXT = "A happy puppy kept the paper up."  # /p/ between sounding phones, plain and aspirated
TOLERANCE = 0.010  # s: boundaries against the engine's own report


def _check_p_closures(audio: np.ndarray, sample_rate: int, phones, p_labels: set[str], phoneset: str) -> int:
    """Every /p/ after a sounding phone: its acoustic closure lies inside the phone, and PP is closed there."""
    rig = load_rig("oculus15")
    fps = 200
    curves = phones_to_curves(phones, rig, fps, phoneset=phoneset)
    pp = rig.index("PP")
    checked = 0
    for k, phone in enumerate(phones):
        if phone.label not in p_labels or not 0 < k < len(phones) - 1:
            continue
        if {phones[k - 1].label, phones[k + 1].label.lower()} & {"_", "sil", "p", "b", "t", "d", "k", "g"}:
            continue  # no closing movement after a pause; no audible release before a pause or another stop (or
            # inside a geminate, Italian "cappotto": one closure over two /p/ segments)
        span = closure_span(audio, sample_rate, phone)
        assert span is not None, f"no closure found for /p/ at {phone.start:.3f} s"
        onset, release = span
        assert phone.start - 0.015 <= onset, f"closure at {onset:.3f} s starts before /p/ ({phone.start:.3f} s)"
        assert release <= phone.end + 0.015, f"burst at {release:.3f} s after /p/ ends ({phone.end:.3f} s)"
        assert curves[round((onset + release) / 2 * fps), pp] > 0.9  # lips closed in mid-closure
        checked += 1
    return checked


def _boundaries(phones) -> np.ndarray:
    return np.array([p.start for p in phones] + [phones[-1].end])


# --- espeak-ng ---------------------------------------------------------------------


@needs_espeak
def test_espeak_phones_follow_its_events_and_cover_the_p_closures():
    synth = espeak_synthesise(TEXT, Voice("en-us+m3", rate=170))
    raw, events = _engine().synthesise(TEXT, Voice("en-us+m3", rate=170))
    reported = phones_from_events(events, len(raw), synth.sample_rate)
    assert len(reported) == len(synth.phones)
    moved = 0
    for ours, theirs in zip(synth.phones, reported):
        assert ours.label == theirs.label and ours.end == pytest.approx(theirs.end, abs=0.071)
        if abs(ours.start - theirs.start) > TOLERANCE:
            # Only stops move (back over their closure, at most 70 ms); everything else is as reported.
            assert ours.label.rstrip("0123456789#[") in {"p", "b", "t", "d", "k", "g", "tS", "dZ"}
            assert 0 < theirs.start - ours.start <= 0.0701
            moved += 1
    assert moved >= 5
    assert synth.phones[-1].end == pytest.approx(len(synth.audio) / synth.sample_rate, abs=TOLERANCE)
    assert _check_p_closures(synth.audio, synth.sample_rate, synth.phones, {"p"}, "espeak") >= 3


# --- MBROLA ------------------------------------------------------------------------


def test_pho_files_parse_into_cumulative_durations_and_symbols_translate():
    pho = "; comment\nb\t65\nA\t64\t 0 232 80 215\n\np_h\t94\n_\t301\n_\t1\n"
    phones = mbrola.parse_pho(pho)
    assert [p.label for p in phones] == ["b", "A", "p_h", "_", "_"]
    assert phones[2].start == pytest.approx(0.129) and phones[-1].end == pytest.approx(0.525)
    tiled = mbrola.tile_phones(phones, 0.530)
    assert [p.label for p in tiled] == ["b", "A:", "p", "_"]
    assert tiled[-1].end == 0.530  # the last phone reaches the audio's end
    with pytest.raises(mbrola.MbrolaError, match="mbrola_sampa.yaml"):
        mbrola.to_espeak_mnemonic("Qx")


@needs_mbrola
@pytest.mark.parametrize("voice", mbrola.ENGLISH_VOICES)
def test_mbrola_timing_is_the_pho_durations_and_p_closures_fall_inside_p(voice):
    raw, audio, sample_rate, _ = mbrola.synthesise_raw(TEXT, mbrola.MbrolaVoice(voice, rate=170))
    duration = len(audio) / sample_rate
    assert raw[-1].end == pytest.approx(duration, abs=TOLERANCE)  # the .pho total is the audio's length
    synth = mbrola.synthesise(TEXT, mbrola.MbrolaVoice(voice, rate=170))
    reported = [p for p in raw if p.label != "_"]
    sounding = [p for p in synth.phones if p.label != "_"]
    assert len(sounding) == len(reported)
    for ours, theirs in zip(sounding, reported):
        assert ours.start == pytest.approx(theirs.start, abs=TOLERANCE) or raw_is_after_stop(theirs, reported)
        if abs(ours.end - theirs.end) > TOLERANCE:  # only a stop extended to its late burst, by at most 30 ms
            assert ours.label in {"p", "b", "t", "d", "k", "g", "tS", "dZ"} and 0 < ours.end - theirs.end <= 0.0301
    assert _check_p_closures(synth.audio, sample_rate, synth.phones, {"p"}, "espeak") >= 3


@needs_mbrola
@pytest.mark.parametrize("voice", mbrola.ACCENTED_VOICES)
def test_accented_mbrola_voices_close_their_lips_inside_the_labelled_stops(voice):
    from lipsync.data.corpus.sentences import WORDS

    # Over a few hundred words: most /p b/ closures between sounding phones start inside the stop's label.
    text = " ".join(w for words in WORDS.values() for w in words)
    raw, audio, sample_rate, _ = mbrola.synthesise_raw(text, mbrola.MbrolaVoice(voice, rate=170))
    assert raw[-1].end == pytest.approx(len(audio) / sample_rate, abs=TOLERANCE)
    synth = mbrola.synthesise(text, mbrola.MbrolaVoice(voice, rate=170))
    assert_p_closures_start_inside_their_label(synth, {"_", "t", "d", "k", "g"})


def assert_p_closures_start_inside_their_label(synth, not_beside: set[str]) -> None:
    """At least 20 /p b/ between phones outside ``not_beside`` show a closure; 90% start no more than 15 ms early."""
    phones, offsets = synth.phones, []
    for k in range(1, len(phones) - 1):
        if phones[k].label in {"p", "b"} and not {phones[k - 1].label, phones[k + 1].label} & not_beside:
            span = closure_span(synth.audio, synth.sample_rate, phones[k])
            if span is not None:
                offsets.append(span[0] - phones[k].start)
    offsets = np.array(offsets)
    assert len(offsets) >= 20
    assert np.mean(offsets >= -0.015) >= 0.9 and 0 <= np.median(offsets) <= 0.04


def raw_is_after_stop(phone, reported) -> bool:
    k = reported.index(phone)
    return k > 0 and mbrola.to_espeak_mnemonic(reported[k - 1].label) in {"p", "b", "t", "d", "k", "g", "tS", "dZ"}


@needs_mbrola
def test_every_symbol_the_mbrola_voices_use_is_mapped():
    from lipsync.data.corpus.sentences import WORDS

    text = " ".join(w for words in WORDS.values() for w in words)
    for voice in mbrola.VOICES:
        raw, _, _, _ = mbrola.synthesise_raw(text, mbrola.MbrolaVoice(voice))
        for p in raw:
            mbrola.to_espeak_mnemonic(p.label, voice)
    assert mbrola.to_espeak_mnemonic("T", "ro1-en") == "t" and mbrola.to_espeak_mnemonic("T", "de4-en") == "T"


@needs_mbrola_native
@pytest.mark.parametrize("voice", sorted(mbrola.NATIVE_VOICES))
def test_native_language_mbrola_voices_close_their_lips_inside_the_labelled_stops(voice):
    # Every sentence of the voice's language: the .pho is the timing, every symbol is known, and most /p b/
    # closures start inside the stop's label (geminates "pp", "bb" are two stops: the first closes for both).
    text = " ".join(festival.sentences(mbrola.language_of(voice)))
    raw, audio, sample_rate, _ = mbrola.synthesise_raw(text, mbrola.MbrolaVoice(voice, rate=170))
    assert raw[-1].end == pytest.approx(len(audio) / sample_rate, abs=TOLERANCE)
    for p in raw:
        visemes_for(mbrola.to_espeak_mnemonic(p.label, voice), "espeak")  # a mnemonic or IPA the viseme table knows
    synth = mbrola.synthesise(text, mbrola.MbrolaVoice(voice, rate=170))
    assert_p_closures_start_inside_their_label(synth, {"_", "t", "d", "k", "g", "p", "b"})


def test_native_language_mbrola_voices_speak_in_train_only_and_unknown_ones_are_refused(tmp_path, capsys):
    plan = engines.plan_engine("mbrola", 60, 1, ("us1", "it3", "cz2"), ())
    assert {c.split for c in plan if c.voice.name != "us1"} == {"train"}  # val/test stay English
    assert {c.voice.name for c in plan if c.split == "train"} == {"us1", "it3", "cz2"}
    czech = next(c for c in plan if c.voice.name == "cz2")
    said = [s for s in festival.sentences("cs") if s in czech.text]  # two of the language's own sentences
    assert len(said) == 2 and len(" ".join(said)) == len(czech.text)
    # An English-only plan keeps the draws of the corpora built before native voices existed.
    english = engines.plan_engine("mbrola", 6, 1, mbrola.VOICES, ())
    assert [(c.split, c.text, c.voice.rate, c.speaker) for c in english[:2]] == [
        ("train", "Is that Hugh's mirror?", 197, "mb-de4-en+f0.80"),
        ("test", "Please put the mushroom past the lantern.", 221, "mb-de4-en+f0.93"),
    ]
    out = tmp_path / "c"
    assert main(["--out", str(out), "--engines", "mbrola", "--clips", "2", "--mbrola-voices", "de1"]) == 1
    assert "MBROLA voice 'de1'" in capsys.readouterr().err and not out.exists()


@needs_mbrola
def test_diphones_a_voice_lacks_are_labelled_as_the_silence_mbrola_renders():
    # de1 has no E-Z or Z-6 diphone: "measure" is rendered with a silent gap from mid-E to mid-6.
    raw, audio, sample_rate, missing = mbrola.synthesise_raw("measure it", mbrola.MbrolaVoice("de1-en"))
    assert ("Z", "6") in missing
    synth = mbrola.synthesise("measure it", mbrola.MbrolaVoice("de1-en"))
    gaps = [p for p in synth.phones[1:-1] if p.label == "_"]
    assert gaps and sum(p.end - p.start for p in gaps) > 0.04
    for p in gaps:
        inner = audio[int((p.start + 0.005) * sample_rate) : int((p.end - 0.005) * sample_rate)]
        assert np.sqrt(np.mean(inner**2)) < 1e-3  # silent where we say pause
    assert "Z" not in [p.label for p in synth.phones]  # both halves of this Z were lost


# --- Festival ----------------------------------------------------------------------


def test_festival_segments_parse_and_tile_the_audio():
    segs = festival.parse_segs("EST_File segment\nDataType ascii\n#\n0.2000 100 pau\n0.2842 100 b\n0.3929 100 aa\n0.40 100 pau\n")
    assert [(p.start, p.end, p.label) for p in segs][:2] == [(0.0, 0.2, "pau"), (0.2, 0.2842, "b")]
    tiled = festival.tile_segments(segs, 0.403)
    assert [p.label for p in tiled] == ["sil", "B", "AA", "sil"] and tiled[-1].end == 0.403


@needs_festival
def test_festival_timing_is_its_segments_and_p_closures_fall_inside_p():
    for stretch in (0.8, 1.3):
        (raw, audio, sample_rate), = festival.synthesise_raw([(TEXT, festival.FestivalVoice(stretch=stretch))])
        # The segments end within 30 ms of the audio (measured: up to 26 ms), and only silence is left after them.
        assert raw[-1].label == "pau" and raw[-1].end == pytest.approx(len(audio) / sample_rate, abs=0.03)
        assert np.abs(audio[round(raw[-1].end * sample_rate) :]).max(initial=0) < 0.01
        synth = festival.synthesise(TEXT, festival.FestivalVoice(stretch=stretch))
        assert len(synth.phones) == len(raw)
        assert np.abs(_boundaries(synth.phones)[:-1] - _boundaries(raw)[:-1]).max() <= TOLERANCE
        assert _check_p_closures(synth.audio, sample_rate, synth.phones, {"P"}, "arpabet") >= 3


@needs_festival_voices
@pytest.mark.parametrize("name", sorted({**festival.OTHER_LANGUAGE_VOICES, **festival.OPT_IN_VOICES}))
def test_festival_other_languages_timing_is_its_segments_and_p_closures_fall_inside_p(name):
    language = festival.language_of(name)
    text = " ".join(s for s in festival.sentences(language) if {"p", "प", "फ"} & set(s.lower()))  # all with a /p/
    voice = festival.FestivalVoice(name, stretch=1.1)
    (raw, audio, sample_rate), = festival.synthesise_raw([(text, voice)])
    gap = len(audio) / sample_rate - raw[-1].end  # Hindi's voice plays up to 41 ms of silence after its last pause
    tail = audio[round(raw[-1].end * sample_rate):]
    assert abs(gap) <= 0.03 or (gap <= 0.05 and 20 * np.log10(np.sqrt(np.mean(tail ** 2)) + 1e-9) < -40)
    synth = festival.synthesise(text, voice)
    assert [p.label for p in synth.phones if p.label != "sil"] == [
        festival.to_label(p.label, language) for p in raw if p.label not in ("#", "##", "pau")
    ]  # stored as IPA, every one of the voice's phones known to festival_ipa.yaml
    sounding = [p for p in synth.phones if p.label != "sil"]
    reported = [p for p in raw if p.label not in ("#", "##", "pau") and p.end > p.start]
    for ours, theirs in zip(sounding, reported):
        assert ours.start == pytest.approx(theirs.start, abs=TOLERANCE) or ours.start - theirs.start <= 0.0301
        if abs(ours.end - theirs.end) > TOLERANCE:  # only a stop extended to its late burst, by at most 30 ms
            assert ours.label in festival.IPA_STOPS and 0 < ours.end - theirs.end <= 0.0301
    p_labels = {"p", "pː", "pʰ"}  # pʰ: Hindi's फ
    assert _check_p_closures(synth.audio, sample_rate, synth.phones, p_labels, "ipa") >= 5


@needs_festival_voices
def test_a_voice_without_its_front_end_fails_naming_the_packages(monkeypatch):
    """What Festival says when a voice's language files are missing (festival-hi moved away, measured)."""
    said = "SIOD ERROR: could not open file hindi_phones.scm\nclosing a file left open: hindi_NSK_diphone.scm"
    monkeypatch.setattr(festival.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 255, "", said))
    expected = r"(?s)hindi_NSK_diphone's .*hindi_phones.scm.*package is missing.*apt-get install .*festival-hi"
    with pytest.raises(festival.FestivalError, match=expected):
        festival.synthesise_raw([(festival.sentences("hi")[0], festival.FestivalVoice("hindi_NSK_diphone"))])


@needs_festival_voices
def test_a_hindi_utterance_after_a_czech_one_speaks_as_it_does_alone():
    """In one Festival process, a Czech voice breaks Hindi's front end; Hindi gets a process of its own."""
    czech, hindi = festival.FestivalVoice("czech_dita"), festival.FestivalVoice("hindi_NSK_diphone", f0_mean=120)
    text = festival.sentences("hi")[0]
    after_czech = festival.synthesise_batch([(festival.sentences("cs")[0], czech), (text, hindi)])[1]
    alone = festival.synthesise(text, hindi)
    assert after_czech.phones == alone.phones and np.array_equal(after_czech.audio, alone.audio)
    assert {"pʰ", "bʱ"} <= {p.label for p in festival.synthesise(" ".join(festival.sentences("hi")), hindi).phones}


@needs_festival_voices
def test_festival_text_in_an_encoding_its_front_end_cannot_read_is_refused():
    with pytest.raises(festival.FestivalError, match="iso-8859-2"):
        festival.synthesise_raw([("Příliš žluťoučký kůň — ü ß", festival.FestivalVoice("czech_dita"))])


def test_festival_phone_labels_translate_to_ipa_or_fail_naming_the_table():
    assert festival_to_ipa("a1", "italian") == "a" and festival_to_ipa("#", "czech") == "sil"
    assert festival.to_label("a1", "it") == "a" and festival.to_label("p", "en") == "P"
    with pytest.raises(UnknownPhoneError, match="festival_ipa.yaml"):
        festival_to_ipa("qq", "italian")
    with pytest.raises(festival.FestivalError, match="'qq'.*festival_ipa.yaml"):  # the corpus builder's own error
        festival.to_label("qq", "it")
    with pytest.raises(ValueError, match="unknown Festival phone set 'klingon'; use one of italian"):
        festival_to_ipa("a", "klingon")


@pytest.mark.parametrize("name", sorted(festival.RESERVED_VOICES))
def test_reserved_festival_voices_are_refused_everywhere(name, tmp_path, capsys):
    with pytest.raises(festival.ReservedVoiceError, match="reserved for the project's independent evaluation"):
        festival.FestivalVoice(name)
    with pytest.raises(festival.ReservedVoiceError, match=name):
        festival.synthesise_raw([("Hello.", _unchecked_voice(name))])
    out = tmp_path / "corpus"
    with pytest.raises(festival.ReservedVoiceError):
        make_corpus(out, 2, seed=0, engines=["festival"], festival_voices=(name,), progress=False)
    assert not out.exists()  # refused before anything is written
    assert main(["--out", str(out), "--engines", "festival", "--clips", "2", "--festival-voices", name]) == 1
    assert "reserved" in capsys.readouterr().err and not out.exists()


def _unchecked_voice(name: str) -> festival.FestivalVoice:
    """A voice object that skipped the constructor's check, as a caller might build by hand."""
    voice = object.__new__(festival.FestivalVoice)
    object.__setattr__(voice, "name", name)
    for field, value in (("stretch", 1.0), ("f0_mean", 105.0), ("f0_std", 15.0), ("blind", False)):
        object.__setattr__(voice, field, value)
    return voice


@needs_blind_voices
@pytest.mark.parametrize("name", festival.BLIND_VOICES)
def test_blind_test_voices_timing_is_their_segments_and_p_closures_fall_inside_p(name):
    voice = festival.FestivalVoice(name, stretch=1.1, blind=True)
    (raw, audio, sample_rate), = festival.synthesise_raw([(TEXT, voice)])
    assert raw[-1].end == pytest.approx(len(audio) / sample_rate, abs=0.03)
    synth = festival.synthesise(TEXT, voice)
    assert [p.label for p in synth.phones] == [festival.to_arpabet(p.label) for p in raw if p.end > p.start]
    assert np.abs(_boundaries(synth.phones)[:-1] - _boundaries([p for p in raw if p.end > p.start])[:-1]).max() <= TOLERANCE
    assert _check_p_closures(synth.audio, sample_rate, synth.phones, {"P"}, "arpabet") >= 3


def test_blind_test_voices_only_with_the_blind_flag():
    with pytest.raises(festival.FestivalError, match="not a blind-test voice"):
        festival.FestivalVoice("ked_diphone", blind=True)
    with pytest.raises(festival.FestivalError, match="not a blind-test voice"):
        festival.FestivalVoice("msu_ru_nsh_clunits", blind=True)  # reserved, but as the human test set
    with pytest.raises(engines.EngineError, match="build it alone, --engines blind"):
        engines.check_engines(["festival", engines.BLIND], (), festival.VOICES)


@needs_blind_voices
def test_the_blind_test_is_test_only_and_training_refuses_it(tmp_path, capsys):
    out = tmp_path / "blind"
    assert main(["--out", str(out), "--engines", "blind", "--clips", "4", "--seed", "3"]) == 0
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["split"] for r in rows] == ["test"] * 4 and all(r["reserved"] is True for r in rows)
    assert {r["speaker"] for r in rows} == {f"{v}+plain" for v in festival.BLIND_VOICES}
    assert validate_corpus(out, "oculus15", 30) == []
    assert len(load_clips(out, "oculus15", 30, splits=("test",), progress=False)) == 4
    with pytest.raises(CorpusError, match="this is the blind test .* never train"):
        load_clips(out, "oculus15", 30, splits=("train", "val"), progress=False)
    capsys.readouterr()
    assert evaluate_main(["--model", "default", "--data", str(out), "--split", "test", "--plots", "0"]) == 0
    assert "blind test (reserved voices): report this score" in capsys.readouterr().out
    # A reserved clip moved into train by hand is a bad manifest line, wherever the corpus is used.
    rows[0]["split"] = "train"
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(CorpusError, match="manifest.jsonl:1: clip 'blind00000' is 'reserved'.*split is 'train'"):
        load_clips(out, "oculus15", 30, splits=("test",), progress=False)


# --- Flite -------------------------------------------------------------------------


def test_flite_segments_parse():
    segs = flite.parse_psdur("pau:0.191 ax:0.220 hh:0.297 \n")
    assert [(p.start, p.end, p.label) for p in segs] == [(0.0, 0.191, "pau"), (0.191, 0.220, "ax"), (0.220, 0.297, "hh")]
    with pytest.raises(flite.FliteError, match="phone:end_time"):
        flite.parse_psdur("pau:0.1 ax")


@needs_flite
@pytest.mark.parametrize("name", flite.VOICES)
def test_flite_timing_is_its_segments_and_p_closures_fall_inside_p(name):
    for stretch in (0.8, 1.3):
        raw, audio, sample_rate = flite.synthesise_raw(TEXT, flite.FliteVoice(name, stretch))
        assert raw[-1].label == "pau" and raw[-1].end == pytest.approx(len(audio) / sample_rate, abs=TOLERANCE)
        synth = flite.synthesise(TEXT, flite.FliteVoice(name, stretch))
        assert [p.label for p in synth.phones] == [festival.to_arpabet(p.label) for p in raw]
        for ours, theirs in zip(synth.phones, raw):
            assert ours.start == pytest.approx(theirs.start, abs=TOLERANCE)
            if abs(ours.end - theirs.end) > TOLERANCE:  # only a stop extended to its late burst, by at most 30 ms
                assert ours.label in flite.STOPS and 0 < ours.end - theirs.end <= 0.0301
        assert _check_p_closures(synth.audio, sample_rate, synth.phones, {"P"}, "arpabet") >= 3


@needs_flite
def test_flite_timbre_changes_the_rate_and_the_phone_times_with_it():
    plain = flite.synthesise(TEXT, flite.FliteVoice("rms"))
    higher = flite.synthesise(TEXT, flite.FliteVoice("rms", timbre=1.1))
    assert np.array_equal(plain.audio, higher.audio) and higher.sample_rate == 17600
    assert higher.phones[-1].end == pytest.approx(len(higher.audio) / 17600)
    assert _boundaries(higher.phones) == pytest.approx(_boundaries(plain.phones) / 1.1)


@pytest.mark.parametrize("name", sorted(flite.RESERVED_VOICES))
def test_flite_voices_of_the_reserved_speakers_are_refused(name, tmp_path, capsys):
    with pytest.raises(festival.ReservedVoiceError, match="reserved for the project's independent evaluation"):
        flite.FliteVoice(name)
    out = tmp_path / "corpus"
    assert main(["--out", str(out), "--engines", "flite", "--clips", "2", "--flite-voices", name]) == 1
    assert "reserved" in capsys.readouterr().err and not out.exists()


# --- Open JTalk ---------------------------------------------------------------------

TRACE = """[Text analysis result]
パン,名詞,一般,*,*,*,*,パン,パン,パン,1/2,C3,-1

[Output label]
0 3100000 xx^xx-sil+p=a/A:xx+xx+xx/B:xx-xx_xx
3100000 3950000 xx^sil-p+a=N/A:0+1+3/B:xx-xx_xx
3950000 4750000 sil^p-a+N=sil/A:0+1+3/B:xx-xx_xx
4750000 5800000 p^a-N+sil=xx/A:1+2+2/B:xx-xx_xx
5800000 9000000 a^N-sil+xx=xx/A:xx+xx+xx/B:xx-xx_xx

[Global parameter]
Sampring frequency                     ->    48000(Hz)
"""


def test_jtalk_traces_parse_and_phones_become_ipa_by_what_follows():
    phones = jtalk.parse_trace(TRACE)
    assert [(p.start, p.end, p.label) for p in phones[:2]] == [(0.0, 0.31, "sil"), (0.31, 0.395, "p")]  # 100 ns units
    assert phones[-1].end == pytest.approx(0.9)
    # The moraic nasal takes the place of the next consonant; a geminate's first half is the next consonant's closure.
    assert jtalk.to_ipa(["a", "N", "p", "a", "N", "t", "o", "N", "k", "a", "N", "sil"]) == [
        "a", "m", "p", "a", "n", "t", "o", "ŋ", "k", "a", "ɴ", "sil"]  # fmt: skip
    assert jtalk.to_ipa(["i", "cl", "p", "a", "i", "cl", "sh", "o", "cl", "pau"]) == ["i", "p", "p", "a", "i", "ɕ", "ɕ", "o", "ʔ", "sil"]
    assert jtalk.to_ipa(["ch", "U", "f", "u", "r", "y"]) == ["tɕ", "ɯ", "ɸ", "ɯ", "ɾ", "j"]
    with pytest.raises(jtalk.JTalkError, match="IPA table"):
        jtalk.to_ipa(["a", "qq"])
    with pytest.raises(jtalk.JTalkError, match="Output label"):
        jtalk.parse_trace("[Text analysis result]\n")


def test_stops_start_at_a_closure_that_comes_before_their_label():
    rate = 16000
    t = np.arange(int(0.6 * rate)) / rate
    audio = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    audio[int(0.30 * rate) : int(0.38 * rate)] = 0.0  # the lips close at 0.30 s ...
    audio[int(0.38 * rate) : int(0.39 * rate)] = np.random.default_rng(0).uniform(-0.3, 0.3, int(0.01 * rate))  # burst
    phones = [Phone(0.0, 0.33, "a"), Phone(0.33, 0.40, "p"), Phone(0.40, 0.6, "a")]  # ... but /p/ is labelled at 0.33
    moved = start_stops_at_closure(phones, audio, rate, frozenset({"p"}))
    assert moved[1].start == pytest.approx(0.30, abs=0.005) and moved[0].end == moved[1].start
    assert moved[1].end == 0.40 and moved[2] == phones[2]
    assert start_stops_at_closure(phones, audio, rate, frozenset({"p"}), max_shift=0.02) == phones  # too far: left
    inside = [Phone(0.0, 0.29, "a"), Phone(0.29, 0.40, "p"), Phone(0.40, 0.6, "a")]  # closure inside the label
    assert start_stops_at_closure(inside, audio, rate, frozenset({"p"})) == inside


@needs_jtalk
def test_jtalk_timing_is_its_trace_and_p_closures_fall_inside_p():
    text = "あのペンはピンクのパイプです。"  # four /p/ between vowels
    moved = 0
    for voice in (jtalk.JTalkVoice(0.8, 0.60, -3.0), jtalk.JTalkVoice(1.25, 0.47, 8.0)):
        raw, audio, sample_rate = jtalk.synthesise_raw(text, voice)
        assert raw[-1].end == pytest.approx(len(audio) / sample_rate, abs=TOLERANCE)  # the trace ends with the wave
        synth = jtalk.synthesise(text, voice)
        assert [p.label for p in synth.phones] == jtalk.to_ipa([p.label for p in raw])
        for k, (ours, theirs) in enumerate(zip(synth.phones, raw)):
            if abs(ours.start - theirs.start) > TOLERANCE:  # only a stop started earlier at its closure, by <= 60 ms
                assert ours.label in jtalk.STOPS and 0 < theirs.start - ours.start <= 0.0601
                moved += ours.label == "p"
            if abs(ours.end - theirs.end) > TOLERANCE:  # else only a stop's end: extended to a late burst, by <= 30 ms,
                nxt = synth.phones[k + 1]  # or the phone before a stop that now starts earlier
                assert (ours.label in jtalk.STOPS and 0 < ours.end - theirs.end <= 0.0301) or (
                    nxt.label in jtalk.STOPS and ours.end == nxt.start)
        assert _check_p_closures(synth.audio, sample_rate, synth.phones, {"p"}, "ipa") >= 3
    assert moved >= 1  # "no paipu" in the slow, low voice: the lips close 40 ms before the label


@needs_jtalk
def test_jtalk_profiles_warp_the_voice_and_the_corpus_holds_profiles_out(tmp_path):
    sentence = "パンダが森でバナナを食べています。"
    plain = jtalk.synthesise(sentence, jtalk.JTalkVoice())
    higher = jtalk.synthesise(sentence, jtalk.JTalkVoice(all_pass=0.47, half_tones=8.0))  # formants and pitch up

    def centroid(audio, rate):
        spectrum = np.abs(np.fft.rfft(audio)) ** 2
        return float((spectrum * np.fft.rfftfreq(len(audio), 1 / rate)).sum() / spectrum.sum())

    assert centroid(higher.audio, higher.sample_rate) > 1.2 * centroid(plain.audio, plain.sample_rate)
    assert _boundaries(higher.phones) == pytest.approx(_boundaries(plain.phones), abs=0.031)  # same rate, same timing
    out = tmp_path / "jtalk"
    stats = make_corpus(out, 12, seed=3, engines=["jtalk"], progress=False)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    speakers = {s: {r["speaker"] for r in rows if r["split"] == s} for s in ("train", "val", "test")}
    assert speakers["val"] and speakers["test"] and not speakers["train"] & (speakers["val"] | speakers["test"])
    assert {"speed", "all_pass", "half_tones"} <= set(rows[0]) and stats["engines"]["jtalk"]["phoneset"] == "ipa"
    assert all(sum(s in r["text"] for s in festival.sentences("ja")) == 2 for r in rows)  # two of the project's sentences
    assert validate_corpus(out, "oculus15", 30) == []


# --- the multi-engine corpus -------------------------------------------------------


def test_clip_counts_parse_per_engine():
    assert _parse_counts("5", None) == 5
    assert _parse_counts("5", ["espeak", "mbrola"]) == {"espeak": 5, "mbrola": 5}
    assert _parse_counts("5,3", ["espeak", "mbrola"]) == {"espeak": 5, "mbrola": 3}
    with pytest.raises(ValueError, match="one per engine"):
        _parse_counts("5,3,1", ["espeak", "mbrola"])


def test_unknown_engines_are_refused_before_writing(tmp_path):
    with pytest.raises(engines.EngineError, match="unknown engine 'sapi'"):
        make_corpus(tmp_path / "c", 2, seed=0, engines=["sapi"], progress=False)
    assert not (tmp_path / "c").exists()


@needs_espeak
def test_multi_engine_corpus_has_engine_fields_stats_and_disjoint_speakers(tmp_path):
    chosen = ["espeak"] + [e for e, ok in (("mbrola", mbrola.mbrola_available("us1")),
                                          ("festival", festival.festival_available()),
                                          ("flite", flite.flite_available()),
                                          ("jtalk", jtalk.jtalk_available())) if ok]  # fmt: skip
    out = tmp_path / "multi"
    stats = make_corpus(out, 4, seed=2, engines=chosen, mbrola_voices=("us1",), progress=False)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["engine"] for r in rows] == [e for e in chosen for _ in range(4)]
    assert all(r["id"].startswith(r["engine"]) for r in rows)
    assert set(stats["engines"]) == set(chosen) and stats["clips"] == 4 * len(chosen)
    for engine in chosen:
        mine = [r for r in rows if r["engine"] == engine]
        speakers = {s: {r["speaker"] for r in mine if r["split"] == s} for s in ("train", "val", "test")}
        assert speakers["val"] and speakers["test"]
        assert not speakers["train"] & (speakers["val"] | speakers["test"])
        assert stats["engines"][engine]["clips"] == 4
    assert validate_corpus(out, "oculus15", 30) == []
    assert (out / MBROLA_NOTICE).is_file() == ("mbrola" in chosen)
    on_disk = json.loads((out / "stats.json").read_text())
    assert on_disk["engines"]["espeak"]["phoneset"] == "espeak"
    # A rerun with --overwrite replaces the engine-named files too.
    make_corpus(out, 2, seed=2, engines=["espeak"], overwrite=True, progress=False)
    assert len(list((out / "audio").iterdir())) == 2 and not (out / MBROLA_NOTICE).exists()


@needs_festival_voices
def test_a_train_only_corpus_is_the_full_builds_train_split_under_other_ids(tmp_path):
    # Festival's Czech voices sound a little different after other Czech texts, so the
    # train-only build must speak every clip in the full build's order, not the train clips alone.
    voices = ("czech_dita", "czech_krb")  # no English voice: val and test are Czech too
    full, extra = tmp_path / "full", tmp_path / "extra"
    make_corpus(full, 12, seed=5, engines=["festival"], festival_voices=voices, progress=False)
    stats = make_corpus(extra, 12, seed=5, engines=["festival"], festival_voices=voices, progress=False,
                        train_only=True, id_prefix="extra_")  # fmt: skip
    rows = [json.loads(line) for line in (full / "manifest.jsonl").read_text().splitlines()]
    kept = [json.loads(line) for line in (extra / "manifest.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert len(train) < len(rows) and stats["clips"] == len(kept) == len(train)
    for r, k in zip(train, kept):
        assert k["id"] == "extra_" + r["id"] and k["audio"] == f"audio/extra_{r['id']}.flac"
        assert {**k, "id": r["id"], "audio": r["audio"], "alignment": r["alignment"], "curves": r["curves"]} == r
        for field in ("audio", "alignment", "curves"):
            assert (extra / k[field]).read_bytes() == (full / r[field]).read_bytes(), (k["id"], field)
    # Its purpose: more training data beside another corpus, ids apart.
    both = load_clips([full, extra], "oculus15", 30, splits=("train",))
    assert len(both) == 2 * len(train)
    # Overwriting it with a plain build removes the prefixed files too.
    make_corpus(extra, 2, seed=5, engines=["festival"], festival_voices=("ked_diphone",), overwrite=True, progress=False)
    assert sorted(p.name for p in (extra / "audio").iterdir()) == ["festival00000.flac", "festival00001.flac"]


@needs_flite
def test_a_test_only_corpus_is_the_full_builds_test_split_and_more_clips_hold_out_the_same_speakers(tmp_path):
    full, same, bigger = tmp_path / "full", tmp_path / "same", tmp_path / "bigger"
    make_corpus(full, 12, seed=5, engines=["flite"], progress=False)
    make_corpus(same, 12, seed=5, engines=["flite"], progress=False, test_only=True, id_prefix="big_")
    rows = [json.loads(line) for line in (full / "manifest.jsonl").read_text().splitlines()]
    kept = [json.loads(line) for line in (same / "manifest.jsonl").read_text().splitlines()]
    test = [r for r in rows if r["split"] == "test"]
    assert test and [k["id"] for k in kept] == ["big_" + r["id"] for r in test]
    for r, k in zip(test, kept):
        assert (same / k["audio"]).read_bytes() == (full / r["audio"]).read_bytes()
    # Its purpose: a larger test of the speakers the full build holds out, none of whom its train split hears.
    stats = make_corpus(bigger, 60, seed=5, engines=["flite"], progress=False, test_only=True, id_prefix="big_")
    more = [json.loads(line) for line in (bigger / "manifest.jsonl").read_text().splitlines()]
    assert stats["clips"] == len(more) == 6 and {m["split"] for m in more} == {"test"}
    timbres = {m["timbre"] for m in more}
    assert timbres == {r["timbre"] for r in test}
    assert not timbres & {r["timbre"] for r in rows if r["split"] == "train"}
    assert len(load_clips([full, bigger], "oculus15", 30, splits=("test",))) == len(test) + 6  # ids apart


@pytest.mark.parametrize("argv, message", [
    (["--engines", "espeak", "--id-prefix", "my corpus"], "--id-prefix 'my corpus': use letters, digits"),
    (["--engines", "blind", "--train-only"], "the blind test (blind) is test-only"),
    (["--train-only"], "--train-only, --test-only and --id-prefix are for multi-engine corpora: add --engines"),
    (["--test-only"], "--train-only, --test-only and --id-prefix are for multi-engine corpora: add --engines"),
    (["--id-prefix", "x"], "--train-only, --test-only and --id-prefix are for multi-engine corpora: add --engines"),
    (["--engines", "espeak", "--train-only", "--test-only"], "--train-only and --test-only keep different splits"),
    (["--engines", "espeak", "--test-only", "--clips", "2"], "--test-only: 2 espeak clips put none in test"),
])  # fmt: skip
def test_train_only_test_only_and_id_prefix_refuse_what_they_cannot_build(tmp_path, capsys, argv, message):
    out = tmp_path / "c"
    assert main(["--out", str(out), "--clips", "4", *argv]) == 1
    assert message in capsys.readouterr().err and not out.exists()


@needs_mbrola
def test_mbrola_corpus_carries_its_licence_note(tmp_path, capsys):
    out = tmp_path / "mb"
    assert main(["--out", str(out), "--engines", "mbrola", "--clips", "3", "--mbrola-voices", "us2"]) == 0
    assert "non-commercial" in capsys.readouterr().out
    assert "non-commercial" in (out / MBROLA_NOTICE).read_text()
    assert Path(out / "stats.json").is_file()


@needs_festival_voices
def test_festival_corpus_trains_on_every_language_and_holds_out_english_speakers(tmp_path):
    out = tmp_path / "festival"
    stats = make_corpus(out, 30, seed=4, engines=["festival"], progress=False)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    voice = {r["id"]: r["speaker"].split("+")[0] for r in rows}
    held_out = {festival.language_of(voice[r["id"]]) for r in rows if r["split"] != "train"}
    trained = {festival.language_of(voice[r["id"]]) for r in rows if r["split"] == "train"}
    assert held_out == {"en"} and trained == {festival.language_of(v) for v in festival.DEFAULT_VOICES}
    assert trained == {"en", "it", "cs", "ca"}  # Hindi only when named
    assert stats["engines"]["festival"]["phoneset"] == "arpabet+ipa"
    assert validate_corpus(out, "oculus15", 30) == []
    italian = next(r for r in rows if festival.language_of(voice[r["id"]]) == "it")
    said = [s for s in festival.sentences("it") if s in italian["text"]]  # two of the language's own sentences
    assert len(said) == 2 and len(" ".join(said)) == len(italian["text"])
    labels = [line.split("\t")[-1] for line in (out / italian["alignment"]).read_text().splitlines()[1:]]
    assert set(labels) - {"sil"} <= {festival_to_ipa(p, "italian") for p in _festival_tables()[1]["italian"]}  # stored as IPA


def test_unknown_festival_voices_are_refused_before_writing(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["--out", str(out), "--engines", "festival", "--clips", "2", "--festival-voices", "nope_diphone"]) == 1
    assert "unknown Festival voice 'nope_diphone'" in capsys.readouterr().err and not out.exists()


def test_english_only_festival_plans_keep_the_draws_of_earlier_corpora():
    # Recorded from the builder before other languages existed (a 215-clip corpus of it rebuilt byte-identically).
    plan = engines.plan_engine("festival", 6, 1, (), ("ked_diphone",))
    assert [(c.split, c.text, c.voice.stretch, c.speaker) for c in plan[:2]] == [
        ("train", "Both boys enjoyed the usual pleasure of humming at noon.", 0.85, "ked_diphone+high"),
        ("val", "Hmm, maybe Ruth left the feather behind the pool.", 1.017, "ked_diphone+deep"),
    ]
