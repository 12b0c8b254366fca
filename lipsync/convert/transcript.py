"""Dialogue text -> curves timed by the model: what was said comes from the text, when from the audio.

A model that never heard a voice misses lip closures and invents others; the
dialogue text says exactly which closures, lip-teeth contacts and rounded vowels
there are. espeak-ng turns the text into IPA phones (any of its languages); a
Viterbi pass then places them on the model's predicted curves (resampled to
100 Hz): each phone scores the frames it covers by how strongly the model shows
its visemes, lasts at least ``MIN_PHONE_S``, and a pause may open at the start,
at the end and at every clause boundary (punctuation) but is never forced.
Accents say some sounds with another mouth shape (/w/ as [v]): such a sound is
placed as its variant where the curves show the variant better by
``VARIANT_COST``, so the text gives the words and the voice its accent.
The model's curves (30 fps) time a phone to about a frame; the audio's level
sharpens that: a consonant that closes or narrows the mouth starts where the
level falls most steeply within ``SNAP_S`` of its placed start, and a vowel
right after one starts where the level rises most steeply (a fall or rise of at
least ``SNAP_MIN_DB``; otherwise the phone stays where the curves put it).
The timed phones become curves with the same coarticulation as training targets.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lipsync.curves import Curves
from lipsync.rigs import VISEMES, Rig
from lipsync.rigs.coarticulation import Phone, borrowed_shape, phones_to_curves
from lipsync.rigs.phonemes import NEXT, SILENCE, UnknownPhoneError, visemes_for

ALIGN_FPS = 100.0
MIN_PHONE_S = 0.02  # a phone's viseme lasts at least this long (fast speech: ~40 ms phones)
MIN_PAUSE_S = 0.05  # a pause shorter than this is coarticulation, not silence
FLOOR = 1e-3  # keeps log scores finite where the model shows nothing at all
SNAP_S = 0.04  # how far the level may move a phone's start: a frame at 30 fps and a bit
SNAP_MIN_DB = 3.0  # a smaller change of level is not an edge
CLOSING = frozenset({"PP", "FF", "TH", "DD", "kk", "nn"})  # stops, nasals, f v θ ð: quieter than a vowel
VOWELS = frozenset({"aa", "E", "ih", "oh", "ou"})
# How accents commonly say a sound with another mouth shape: /w/ as [v] (German, Dutch, Scandinavian, Hungarian,
# Indian English). Where the model's curves show the variant better, the aligner takes it instead of the written
# sound. (/θ ð/ as [f v] or [t d] were measured too and left out: models that never heard a voice show TH, FF
# and DD too alike, so they cost more correct phones than they found.)
ACCENT_VARIANTS = {"w": ("v",)}
VARIANT_COST = 1.0  # log score (nats) a variant must gain over the written sound to replace it
MAX_CELLS = 300_000_000  # frames x states of one text: 300 MB of back-pointers, about 5 minutes of speech
KANJI = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
LANGUAGE_SWITCH = re.compile(r"\([a-z-]+\)")


class TranscriptError(ValueError):
    """Text that cannot be turned into phones; the message says what to fix."""


def transcript_path(audio: Path) -> Path:
    """The dialogue text of ``take.01.wav`` is ``take.01.txt`` beside it."""
    return audio.with_suffix(".txt")


def read_transcript(audio: Path) -> str:
    path = transcript_path(audio)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TranscriptError(f"{path}: no dialogue text for {audio.name}; write what is said there "
                              "(UTF-8), or convert without --text") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TranscriptError(f"{path}: cannot read the dialogue text ({e}); save it as UTF-8 text") from e
    if not text.strip():
        raise TranscriptError(f"{path}: the dialogue text is empty; write what is said in {audio.name}")
    return text


def text_to_clauses(text: str, voice: str = "en-us") -> list[list[str]]:
    """IPA phones per clause (espeak-ng breaks clauses at punctuation), stress marks kept for the table lookup."""
    if shutil.which("espeak-ng") is None:
        raise TranscriptError("dialogue text needs espeak-ng to turn words into phones: apt-get install espeak-ng")
    text = text.replace("+", "").strip()  # festvox texts mark stress with '+'
    if not text:
        raise TranscriptError("the dialogue text is empty")
    if voice.split("-")[0] == "ja" and KANJI.search(text):
        raise TranscriptError("espeak-ng reads Japanese kana only (it spells kanji out as 'Chinese letter'): "
                              "write the text in hiragana or katakana")
    # espeak-ng speaks some names it lacks with a near voice (en-zz as en) and exits 0: check the name first.
    if voice.split("+")[0].lower() not in espeak_voices():
        raise TranscriptError(f"espeak-ng has no voice {voice!r}; pass one of its languages, such as en-us, en-gb, "
                              "de, fr, es, ru, ja (espeak-ng --voices lists them)")
    proc = subprocess.run(["espeak-ng", "-q", "--ipa", "--sep= ", "-v", voice], input=text,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise TranscriptError(f"espeak-ng failed on the text with voice {voice!r}: {proc.stderr.strip()[:200]}")
    # "(en)" and the like mark words espeak-ng read in another language's rules: not phones. Its Russian
    # output also tags some vowels with '"' or '^', which are not IPA.
    clauses = [[p.strip('"^') for p in line.split() if not LANGUAGE_SWITCH.fullmatch(p)]
               for line in proc.stdout.splitlines()]
    return [c for c in clauses if c]


@lru_cache(maxsize=1)
def espeak_voices() -> frozenset[str]:
    """Every name espeak-ng answers to: language codes, voice names, voice files (lower case)."""
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            names.update({fields[1], fields[3], fields[4], fields[4].rsplit("/", 1)[-1]})
            names.update(f.strip("()") for f in fields[5::2])  # other languages: "(en 2)"
    return frozenset(n.lower() for n in names)


def _require_visemes(channels: tuple[str, ...] | list[str]) -> None:
    if tuple(channels) != VISEMES:
        raise TranscriptError(f"dialogue text needs a model with the oculus15 visemes; this one predicts "
                              f"{len(channels)} channels ({', '.join(channels[:4])}, ...)")


def check_text_voice(voice: str, rig: Rig) -> None:
    """Before a batch: espeak-ng is there and knows ``voice``, and the model predicts visemes text can time."""
    _require_visemes(rig.channels)
    text_to_clauses("a", voice)


@dataclass(frozen=True)
class _Sound:
    """One phone of the text and the ways it may be said: ``labels[0]`` as written, then accent variants."""
    labels: tuple[str, ...]
    visemes: tuple[tuple[str, ...], ...]


def _chain(clauses: list[list[str]]) -> list[_Sound | None]:
    """The text's sounds in order, with an optional pause (None) at the start, the end and between clauses."""
    chain: list[_Sound | None] = [None]
    for clause in clauses:
        for label in clause:
            try:
                visemes = visemes_for(label, "ipa")
            except UnknownPhoneError:
                continue  # a symbol the IPA table lacks: left to its neighbours rather than guessed
            if visemes == SILENCE:
                continue
            variants = ACCENT_VARIANTS.get(label, ())
            chain.append(_Sound((label, *variants), (visemes, *(visemes_for(v, "ipa") for v in variants))))
        if chain[-1] is not None:  # one pause between clauses, however many clauses had no sounds
            chain.append(None)
    return chain


class _State(NamedTuple):
    """A Viterbi state: each viseme of each way of saying a sound lasts at least its minimum length in states."""
    viseme: str
    preds: list[int]  # the states it may be entered from
    cost: float  # added on entering it: minus VARIANT_COST for an accent variant's first state
    stay: bool  # may repeat: a viseme's last state
    start: bool  # may be the first frame's state
    sound: int  # index into the chain
    way: int  # index into that sound's labels


def _states(chain: list[_Sound | None]) -> tuple[list[_State], list[int]]:
    """The chain's states, and those the last frame may be in."""
    min_phone = max(1, round(MIN_PHONE_S * ALIGN_FPS))
    min_pause = max(1, round(MIN_PAUSE_S * ALIGN_FPS))
    # /h/ (NEXT) is scored with the shape coarticulation gives it (the next sounding viseme, else the previous),
    # taken from the text as written.
    raw = [(SILENCE if s is None else s.visemes[0], 0.0, 0.0) for s in chain]
    states: list[_State] = []
    tails, at_start = [], True  # the states the next sound may follow; whether it may open the audio
    for k, sound in enumerate(chain):
        if sound is None:
            ways = [[(SILENCE[0], min_pause)]]
        else:
            ways = [[(borrowed_shape(raw, k)[0] if v == NEXT[0] else v, min_phone) for v in visemes]
                    for visemes in sound.visemes]
        new_tails = []
        for way, units in enumerate(ways):
            preds, cost, start = tails, (0.0 if way == 0 else -VARIANT_COST), at_start
            for viseme, frames in units:
                for j in range(frames):
                    states.append(_State(viseme, preds, cost, j == frames - 1, start, k, way))
                    preds, cost, start = [len(states) - 1], 0.0, False
            new_tails.append(len(states) - 1)
        if sound is None:
            tails = new_tails + tails  # a pause may be skipped
        else:
            tails, at_start = new_tails, False
    return states, tails


def _scores(values: np.ndarray, fps: float, n_out: int) -> np.ndarray:
    """Per-frame log share of each viseme, resampled from the model's fps to ALIGN_FPS: [n_out, 15]."""
    times = np.arange(n_out) / ALIGN_FPS
    src = np.arange(len(values)) / fps
    resampled = np.stack([np.interp(times, src, values[:, c]) for c in range(values.shape[1])], axis=1)
    share = (resampled + FLOOR) / (resampled + FLOOR).sum(axis=1, keepdims=True)
    return np.log(share)


def _viterbi(scores: np.ndarray, chain: list[_Sound | None]) -> list[tuple[int, int, int]]:
    """Per element of the chain: its frame span [start, end) (empty where a pause is skipped) and
    which way of saying it fits best."""
    states, ends = _states(chain)
    n_states, n_frames = len(states), len(scores)
    n_sounds = sum(s is not None for s in chain)
    if n_states * n_frames > MAX_CELLS:
        raise TranscriptError(f"{n_frames / ALIGN_FPS / 60:.1f} minutes of audio with {n_sounds} sounds is too long "
                              "for one dialogue text (memory grows with both): split it into shorter lines")
    min_phone = max(1, round(MIN_PHONE_S * ALIGN_FPS))
    shortest = sum(min(len(v) for v in s.visemes) * min_phone for s in chain if s is not None)
    if shortest > n_frames:
        raise TranscriptError(f"the text has more sounds than {n_frames / ALIGN_FPS:.2f} s of audio can hold; "
                              "is it the right text for this file?")
    emit = scores[:, [VISEMES.index(s.viseme) for s in states]]  # [frames, states]
    preds = np.full((n_states, max(len(s.preds) for s in states)), -1)
    for i, s in enumerate(states):
        preds[i, :len(s.preds)] = s.preds
    has_pred, pred_index = preds >= 0, np.maximum(preds, 0)
    cost, stay = np.array([s.cost for s in states]), np.array([s.stay for s in states])

    neg = -np.inf
    score = np.where([s.start for s in states], emit[0] + cost, neg)
    back = np.zeros((n_frames, n_states), np.int8)  # 0 stay, k + 1 entered from preds[state, k]
    rows = np.arange(n_states)
    for t in range(1, n_frames):
        entering = np.where(has_pred, score[pred_index], neg)
        k = entering.argmax(axis=1)
        enter = entering[rows, k] + cost
        kept = np.where(stay, score, neg)
        stays = kept >= enter
        back[t] = np.where(stays, 0, k + 1)
        score = np.where(stays, kept, enter) + emit[t]
    state = max(ends, key=lambda s: score[s])
    if not np.isfinite(score[state]):
        raise TranscriptError("the text cannot be placed on this audio (too short for it)")
    path = np.empty(n_frames, int)
    for t in range(n_frames - 1, -1, -1):
        path[t] = state
        move = back[t, state]
        state = state if move == 0 else preds[state, move - 1]
    sound_of, way_of = np.array([s.sound for s in states])[path], np.array([s.way for s in states])[path]
    spans = [(0, 0, 0)] * len(chain)
    for k in range(len(chain)):
        frames = np.flatnonzero(sound_of == k)
        if len(frames):
            spans[k] = (int(frames[0]), int(frames[-1]) + 1, int(way_of[frames[0]]))
    return spans


class LevelMeter:
    """The audio's level in dB per 10 ms (one value per aligner frame), fed block by block.

    Conversion streams long files; this keeps 100 numbers a second, not the audio.
    """

    def __init__(self, sample_rate: int):
        self.hop = sample_rate // int(ALIGN_FPS)
        self._rest = np.zeros(0, np.float32)
        self._power: list[np.ndarray] = []

    def feed(self, block: np.ndarray) -> np.ndarray:
        """Take the next block of samples; returns it, so ``map(meter.feed, blocks)`` passes them through."""
        x = np.concatenate([self._rest, block])
        n = len(x) // self.hop * self.hop
        self._power.append((x[:n].astype(np.float64).reshape(-1, self.hop) ** 2).mean(axis=1))
        self._rest = x[n:]
        return block

    def db(self) -> np.ndarray:
        power = np.concatenate(self._power) if self._power else np.zeros(0)
        return 10 * np.log10(power + 1e-10)


def level_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The level of a whole clip in memory, as ``LevelMeter`` gives it."""
    meter = LevelMeter(sample_rate)
    meter.feed(audio)
    return meter.db()


def _single_viseme(label: str) -> str | None:
    visemes = visemes_for(label, "ipa")
    return visemes[0] if len(visemes) == 1 else None


def snap_to_level(phones: list[Phone], level: np.ndarray) -> list[Phone]:
    """Phones whose starts moved to the level's edges (see the module's docstring); pauses stay pauses."""
    reach, min_frames = round(SNAP_S * ALIGN_FPS), max(1, round(MIN_PHONE_S * ALIGN_FPS))
    out = list(phones)
    visemes = [_single_viseme(phone.label) for phone in phones]
    for i, phone in enumerate(phones):
        joined = i > 0 and abs(phones[i - 1].end - phone.start) < 1e-9
        if visemes[i] in CLOSING:
            sign = 1.0  # the level falls into the closure or constriction
        elif visemes[i] in VOWELS and joined and visemes[i - 1] in CLOSING:
            sign = -1.0  # and rises at its release into the vowel
        else:
            continue
        start = round(phone.start * ALIGN_FPS)
        lowest = 0  # the first phone: only the edge measure's 20 ms before the edge bounds it
        if joined:  # the phone before keeps its shortest length
            lowest = round(out[i - 1].start * ALIGN_FPS) + min_frames
        elif i > 0:  # a pause before: it may shorten, the phone before it stays
            lowest = math.ceil(out[i - 1].end * ALIGN_FPS)
        lo = max(start - reach, lowest, 2)
        hi = min(start + reach, round(phone.end * ALIGN_FPS) - min_frames, len(level) - 2)
        if hi < lo:
            continue
        edges = np.arange(lo, hi + 1)  # the change across an edge: 20 ms before it against 20 ms after
        change = sign * ((level[edges - 2] + level[edges - 1]) - (level[edges] + level[edges + 1])) / 2
        if change.max() < SNAP_MIN_DB:
            continue
        moved = float(edges[int(np.argmax(change))]) / ALIGN_FPS
        out[i] = Phone(moved, phone.end, phone.label)
        if joined:
            out[i - 1] = Phone(out[i - 1].start, moved, out[i - 1].label)
    return out


def align_text(curves: Curves, clauses: list[list[str]], level: np.ndarray) -> list[Phone]:
    """Timed IPA phones (pauses as gaps) for ``clauses``, placed on the model's oculus15 ``curves`` and
    sharpened on the audio's ``level`` (dB per 10 ms, ``LevelMeter``)."""
    _require_visemes(curves.channels)
    chain = _chain(clauses)
    if not any(chain):
        raise TranscriptError("the dialogue text has no speech sounds")
    n_out = max(1, int(round(curves.n_frames / curves.fps * ALIGN_FPS)))
    spans = _viterbi(_scores(curves.values, curves.fps, n_out), chain)
    phones = [Phone(a / ALIGN_FPS, b / ALIGN_FPS, sound.labels[way])
              for sound, (a, b, way) in zip(chain, spans) if sound is not None and b > a]
    return snap_to_level(phones, level)


def transcript_curves(curves: Curves, text: str, voice: str, rig: Rig,
                      level: np.ndarray) -> tuple[Curves, list[Phone]]:
    """The model's curves re-drawn from the dialogue text, timed by the model and the audio's ``level``
    (``LevelMeter``); also the timed phones."""
    phones = align_text(curves, text_to_clauses(text, voice), level)
    values = phones_to_curves(phones, rig, curves.fps, n_frames=curves.n_frames, phoneset="ipa")
    return Curves(values, rig.channels, curves.fps), phones
