"""Several synthesis engines in one corpus: what each clip is, and how each engine speaks it.

Every engine has its own timing source and stop-closure handling, measured
on generated clips (``closures.closure_span``; onset of the acoustic /p/
closure minus the labelled start, median over /p/ after speech):

- ``espeak``: libespeak-ng phoneme events. The event is at the burst, 42 ms
  after the closure's onset; ``espeak.move_stops_over_closures`` moves the
  stop back over the (digitally silent) closure, leaving +7 ms.
- ``mbrola``: cumulative ``.pho`` durations. The stop's segment starts before
  the closure (+22 ms) and mostly holds the burst; about 1 in 10 bursts came
  after the segment's end, so ``closures.extend_stops_to_release`` extends
  those stops (at most 30 ms). The Italian and Czech voices reading their own
  sentences: +13 to +20 ms (medians per voice).
- ``festival``: ``utt.save.segs`` segment times. English (ked): the segment
  starts at the closure (+14 ms) and holds the burst; unchanged. The other
  languages' voices start their /p/ 15-21 ms before the closure (medians per
  voice) and hold the burst but for 1 in 11 Catalan ones (<= 10 ms late),
  which are extended to it as for MBROLA.
- ``flite``: ``flite -psdur`` segment end times of the clustergen voices.
  The segment starts before the closure (+20 ms); late bursts (< 5%) are
  covered as for MBROLA.
- ``jtalk``: ``open_jtalk -ot`` phone times of the generated frames (Japanese,
  HTS voice). Stops often close before their label (up to 45 ms for /p/), so
  ``closures.start_stops_at_closure`` starts them at the closure (then +6 ms);
  late bursts are covered as for MBROLA.

- ``blind``: not a training engine but the project's blind test, built
  alone: the reserved Festival voices (``festival.BLIND_VOICES``: the diphones
  of kal, the HTS voice of slt), test split only, each clip marked
  ``"reserved": true`` so training refuses it. Timing as for ked: the segment
  starts at the closure (kal +19 to +46 ms, slt +15 to +23 ms on 14 /p/ each)
  and holds the burst (the latest 10 ms after it, within the tolerance).

Splits are speaker-disjoint within each engine, as in the espeak-only
corpus: a speaker is ``voice+variant`` and val/test hear only variants that
train never does (espeak variants; pitch profiles for MBROLA and Festival;
timbre profiles for Flite; warp and pitch profiles for Open JTalk).
Festival's other languages' voices speak in train only: their pitch models
ignore the profiles, so a held-out profile would not be an unheard speaker;
val/test stay English (ked_diphone). MBROLA's native-language voices too, so
that val/test stay the English texts whose scores the recipes were chosen on.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from lipsync.audio import SAMPLE_RATE, resample
from lipsync.data.corpus import festival, flite, jtalk, mbrola
from lipsync.data.corpus.espeak import PAUSE, Synthesis, Voice, espeak_available
from lipsync.data.corpus.espeak import synthesise as espeak_synthesise
from lipsync.data.corpus.sentences import compose_text
from lipsync.rigs.coarticulation import Phone

ENGINES = ("espeak", "mbrola", "festival", "flite", "jtalk")
BLIND = "blind"  # the reserved voices' test-only corpus; never beside another engine
# Phone set of each engine's alignments (lipsync.rigs.phonemes tables); Festival's depends on the voice.
PHONESETS = {"espeak": "espeak", "mbrola": "espeak", "festival": "arpabet", "flite": "arpabet", "jtalk": "ipa", BLIND: "arpabet"}
DESCRIPTIONS = {
    "espeak": "espeak-ng (libespeak-ng phoneme events, stops moved over their closures)",
    "mbrola": "MBROLA diphone voices driven by espeak-ng --pho (timing: cumulative .pho durations)",
    "festival": "Festival voices, English and other languages (timing: utt.save.segs segment ends)",
    "flite": "CMU Flite clustergen voices (timing: flite -psdur segment ends)",
    "jtalk": "Open JTalk's Japanese HTS voice (timing: open_jtalk -ot phone times of the generated frames)",
    BLIND: "the blind test: Festival's reserved voices kal_diphone and cmu_us_slt_arctic_hts, test split only "
           "(timing: utt.save.segs segment ends); report it, never train, tune or select models on it",
}
FESTIVAL_LICENCE = "Festival and its voices used here are free software (Debian main); the audio may be shipped"
LICENCES = {
    "espeak": "espeak-ng output audio is not covered by espeak-ng's licence",
    "mbrola": mbrola.LICENCE_NOTE,
    "festival": FESTIVAL_LICENCE,
    "flite": flite.LICENCE_NOTE,
    "jtalk": jtalk.LICENCE_NOTE,
    BLIND: FESTIVAL_LICENCE,
}
# Pitch profiles: MBROLA frequency ratio (mbrola -f), Festival (target F0 mean, spread) in Hz.
MBROLA_PROFILES = {"f0.80": 0.80, "f0.87": 0.87, "f0.93": 0.93, "f1.00": 1.0, "f1.07": 1.07, "f1.15": 1.15, "f1.25": 1.25}
FESTIVAL_PROFILES = {
    "low": (82.0, 10.0), "deep": (92.0, 18.0), "flat": (105.0, 6.0), "plain": (105.0, 15.0),
    "lively": (115.0, 28.0), "high": (130.0, 18.0), "higher": (150.0, 22.0),
}  # fmt: skip
FLITE_PROFILES = {"t0.90": 0.90, "t0.94": 0.94, "t0.97": 0.97, "t1.00": 1.0, "t1.03": 1.03, "t1.06": 1.06, "t1.10": 1.10}
# Open JTalk: (all-pass constant, pitch shift in half-tones); the voice's own is (0.55, 0), a lower constant raises
# the formants (spectral centroid 0.45: 479 Hz, 0.55: 336 Hz, 0.60: 308 Hz on one sentence).
JTALK_PROFILES = {
    "deep": (0.60, -3.0), "low": (0.58, -1.0), "plain": (0.55, 0.0), "bright": (0.53, 2.0),
    "young": (0.51, 4.0), "high": (0.49, 6.0), "higher": (0.47, 8.0),
}  # fmt: skip
PROFILES = {"mbrola": MBROLA_PROFILES, "festival": FESTIVAL_PROFILES, "flite": FLITE_PROFILES, "jtalk": JTALK_PROFILES}
HELD_OUT_VARIANTS = 1  # per engine, for each of val and test (MBROLA, Festival)
HELD_OUT_FRACTION = 0.1  # of each engine's clips, for each of val and test


class EngineError(RuntimeError):
    """An engine asked for is unknown or not installed; the message says what to do."""


@dataclass(frozen=True)
class EngineClip:
    id: str
    engine: str
    split: str
    text: str
    voice: Voice | mbrola.MbrolaVoice | festival.FestivalVoice | flite.FliteVoice | jtalk.JTalkVoice
    speaker: str  # voice+variant
    lead_silence: float
    tail_silence: float


def check_engines(
    engines: list[str], mbrola_voices: tuple[str, ...], festival_voices: tuple[str, ...], flite_voices: tuple[str, ...] = flite.VOICES
) -> None:
    """Fail before any synthesis if an engine or voice is unknown, reserved or not installed."""
    for name in festival_voices:
        festival.refuse_reserved(name)
        festival.language_of(name)  # unknown voices fail here, before any synthesis
    for name in flite_voices:
        flite.refuse_reserved(name)
    for engine in engines:
        if engine not in (*ENGINES, BLIND):
            raise EngineError(f"unknown engine {engine!r}; use some of {', '.join(ENGINES)}, or {BLIND} alone")
    if BLIND in engines:
        if engines != [BLIND]:
            raise EngineError(f"the blind test ({BLIND}) is a corpus of its own: build it alone, --engines {BLIND}")
        missing = [v for v in festival.BLIND_VOICES if not festival.festival_available(v)]
        if missing:
            raise EngineError(f"blind-test voice(s) {', '.join(missing)} not installed; "
                              f"apt-get install festival {festival.BLIND_PACKAGES}")  # fmt: skip
    if "espeak" in engines and not espeak_available():
        raise EngineError("espeak-ng is not installed; apt-get install espeak-ng libespeak-ng1")
    if "mbrola" in engines:
        for name in mbrola_voices:
            mbrola.language_of(name)  # voices without sentences or a phone table fail here
        missing = [v for v in mbrola_voices if not mbrola.mbrola_available(v)]
        if missing or not mbrola_voices:
            raise EngineError(f"MBROLA voice(s) {', '.join(missing) or '(none given)'} not installed; {mbrola.INSTALL_HINT}")
    if "festival" in engines:
        missing = [v for v in festival_voices if not festival.festival_available(v)]
        if missing or not festival_voices:
            raise EngineError(f"Festival voice(s) {', '.join(missing) or '(none given)'} not installed; {festival.INSTALL_HINT}")
    if "flite" in engines:
        missing = [v for v in flite_voices if not flite.flite_available(v)]
        if missing or not flite_voices:
            raise EngineError(f"Flite voice(s) {', '.join(missing) or '(none given)'} not installed; {flite.INSTALL_HINT}")
    if "jtalk" in engines and not jtalk.jtalk_available():
        raise EngineError(f"Open JTalk with its voice is not installed; {jtalk.INSTALL_HINT}")


def plan_engine(
    engine: str,
    n_clips: int,
    seed: int,
    mbrola_voices: tuple[str, ...],
    festival_voices: tuple[str, ...],
    flite_voices: tuple[str, ...] = flite.VOICES,
) -> list[EngineClip]:
    """Every clip's text, voice and split for one engine, drawn from ``seed`` and the engine's name."""
    if engine == "espeak":
        from lipsync.data.corpus.build import plan_corpus  # the espeak-only corpus's own plan

        return [
            EngineClip(f"espeak{i:05d}", "espeak", p.split, p.text, p.voice, p.voice.name, p.lead_silence, p.tail_silence)
            for i, p in enumerate(plan_corpus(n_clips, seed))
        ]
    if engine == BLIND:
        return _plan_blind(n_clips, seed)
    rng = random.Random(f"{seed}-{engine}")
    profiles = list(PROFILES[engine])
    rng.shuffle(profiles)
    k = HELD_OUT_VARIANTS
    pools = {"val": profiles[:k], "test": profiles[k : 2 * k], "train": profiles[2 * k :]}
    n_eval = max(1, round(HELD_OUT_FRACTION * n_clips)) if n_clips >= 3 else 0
    splits = ["val"] * n_eval + ["test"] * n_eval + ["train"] * (n_clips - 2 * n_eval)
    rng.shuffle(splits)
    # MBROLA's native-language voices speak in train only (as Festival's other languages); val/test English when given.
    mbrola_english = [v for v in mbrola_voices if mbrola.language_of(v) == "en"] if engine == "mbrola" else []
    by_language: dict[str, list[str]] = {}  # Festival's voices per language
    for v in festival_voices if engine == "festival" else ():
        by_language.setdefault(festival.language_of(v), []).append(v)
    clips = []
    for i, split in enumerate(splits):
        profile = rng.choice(pools[split])
        language = "en"
        if engine == "mbrola":
            name = rng.choice(mbrola_voices if split == "train" or not mbrola_english else mbrola_english)
            language = mbrola.language_of(name)
            voice = mbrola.MbrolaVoice(name, rng.randint(130, 260), rng.randint(25, 75), MBROLA_PROFILES[profile])
            speaker = f"mb-{name}+{profile}"
        elif engine == "flite":
            name = rng.choice(flite_voices)
            voice = flite.FliteVoice(name, round(rng.uniform(0.8, 1.3), 3), FLITE_PROFILES[profile])
            speaker = f"{name}+{profile}"
        elif engine == "jtalk":
            language = "ja"
            all_pass, half_tones = JTALK_PROFILES[profile]
            voice = jtalk.JTalkVoice(round(rng.uniform(0.8, 1.25), 3), all_pass, half_tones)
            speaker = f"{voice.name}+{profile}"
        else:
            # Train: each language equally often, then a voice of it; val/test: English when given. With
            # English voices only, the draws are those of the English-only builder (its corpora rebuild).
            if len(by_language) > 1 and (split == "train" or "en" not in by_language):
                language = rng.choice(sorted(by_language))
            else:
                language = "en" if "en" in by_language else next(iter(by_language))
            name = rng.choice(by_language[language])
            f0_mean, f0_std = FESTIVAL_PROFILES[profile]
            voice = festival.FestivalVoice(name, round(rng.uniform(0.75, 1.35), 3), f0_mean, f0_std)
            speaker = f"{name}+{profile}"
        text = compose_text(rng, n_sentences=1) if language == "en" else festival.compose_text(rng, language)
        clips.append(
            EngineClip(f"{engine}{i:05d}", engine, split, text, voice, speaker, rng.uniform(0.05, 0.2), rng.uniform(0.05, 0.2))
        )
    return clips


def _plan_blind(n_clips: int, seed: int) -> list[EngineClip]:
    """The blind test: every clip in test, each reserved voice in turn at its own pitch, a rate of 0.8-1.25."""
    rng = random.Random(f"{seed}-{BLIND}")
    f0_mean, f0_std = FESTIVAL_PROFILES["plain"]  # kal's own (measured 102 Hz); the HTS voice keeps its own anyway
    clips = []
    for i in range(n_clips):
        name = festival.BLIND_VOICES[i % len(festival.BLIND_VOICES)]
        voice = festival.FestivalVoice(name, round(rng.uniform(0.8, 1.25), 3), f0_mean, f0_std, blind=True)
        text = compose_text(rng, n_sentences=1)
        clips.append(EngineClip(f"{BLIND}{i:05d}", BLIND, "test", text, voice, f"{name}+plain",
                                rng.uniform(0.05, 0.2), rng.uniform(0.05, 0.2)))  # fmt: skip
    return clips


def phoneset_of(clip: EngineClip) -> str:
    """The phone set of this clip's alignment."""
    return festival.phoneset_of(clip.voice.name) if clip.engine == "festival" else PHONESETS[clip.engine]


def speak_all(clips: list[EngineClip], batch: int = 40) -> Iterator[tuple[EngineClip, np.ndarray, list[Phone]]]:
    """Yield (clip, 16 kHz audio with silence around it, phones tiling it) in order; Festival in batches."""
    i = 0
    while i < len(clips):
        clip = clips[i]
        if clip.engine in ("festival", BLIND):
            group = clips[i : i + batch]
            group = group[: next((k for k, c in enumerate(group) if c.engine != clip.engine), len(group))]
            for c, synth in zip(group, festival.synthesise_batch([(c.text, c.voice) for c in group])):
                yield (c, *_pad(c, synth))
            i += len(group)
            continue
        speak = {"espeak": espeak_synthesise, "mbrola": mbrola.synthesise, "flite": flite.synthesise, "jtalk": jtalk.synthesise}
        synth = speak[clip.engine](clip.text, clip.voice)
        yield (clip, *_pad(clip, synth))
        i += 1


def _pad(clip: EngineClip, synth: Synthesis) -> tuple[np.ndarray, list[Phone]]:
    """Resample to 16 kHz, add the planned silence, and cover it with pause phones."""
    pause = PAUSE if PHONESETS[clip.engine] == "espeak" else festival.PAUSE
    speech = resample(synth.audio.astype(np.float32), synth.sample_rate, SAMPLE_RATE)
    lead, tail = round(clip.lead_silence * SAMPLE_RATE), round(clip.tail_silence * SAMPLE_RATE)
    audio = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    offset, end = lead / SAMPLE_RATE, len(audio) / SAMPLE_RATE
    phones = [Phone(0.0, offset, pause)]
    phones += [Phone(p.start + offset, min(p.end + offset, end), pause if p.label == PAUSE else p.label) for p in synth.phones]
    phones.append(Phone(phones[-1].end, end, pause))
    merged: list[Phone] = []
    for p in phones:
        if p.end - p.start <= 0:
            continue
        if merged and p.label == pause and merged[-1].label == pause:
            merged[-1] = Phone(merged[-1].start, p.end, pause)
        else:
            merged.append(p)
    return audio, merged
