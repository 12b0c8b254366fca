"""Dialogue text -> curves timed by the model: what was said comes from the text, when from the audio.

A model that never heard a voice misses lip closures and invents others; the
dialogue text says exactly which closures, lip-teeth contacts and rounded vowels
there are. espeak-ng turns the text into IPA phones (any of its languages); a
Viterbi pass then places them on the model's predicted curves (resampled to
100 Hz): each phone scores the frames it covers by how strongly the model shows
its visemes, lasts at least ``MIN_PHONE_S``, and a pause may open at the start,
at the end and between any two words (people pause where no comma is written)
but is never forced.
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


def text_to_words(text: str, voice: str = "en-us") -> list[list[str]]:
    """IPA phones per word, stress marks kept for the table lookup."""
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
    # "_" between a word's phones, a space between words (with --sep=" " both are spaces).
    proc = subprocess.run(["espeak-ng", "-q", "--ipa", "--sep=_", "-v", voice], input=text,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise TranscriptError(f"espeak-ng failed on the text with voice {voice!r}: {proc.stderr.strip()[:200]}")
    # "(en)" and the like mark words espeak-ng read in another language's rules: not phones. Its Russian
    # output also tags some vowels with '"' or '^', which are not IPA.
    words = [[p.strip('"^') for p in word.split("_") if p and not LANGUAGE_SWITCH.fullmatch(p)]
             for word in proc.stdout.split()]
    return [w for w in words if w]


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
    text_to_words("a", voice)


@dataclass(frozen=True)
class _Unit:
    viseme: str
    phone: int  # index into the flat phone list, -1 for a pause
    optional: bool
    min_frames: int


def _units(words: list[list[str]]) -> tuple[list[_Unit], list[str]]:
    """The left-to-right chain: optional pauses around every word, each phone as its visemes in order."""
    min_phone = max(1, round(MIN_PHONE_S * ALIGN_FPS))
    pause = _Unit("sil", -1, True, max(1, round(MIN_PAUSE_S * ALIGN_FPS)))
    units, labels = [pause], []
    for word in words:
        for label in word:
            try:
                visemes = visemes_for(label, "ipa")
            except UnknownPhoneError:
                continue  # a symbol the IPA table lacks: left to its neighbours rather than guessed
            if visemes == SILENCE:
                continue
            labels.append(label)
            units += [_Unit(v, len(labels) - 1, False, min_phone) for v in visemes]
        if units[-1] is not pause:  # one pause between words: the chain skips one optional unit at a time
            units.append(pause)
    return units, labels


def _scores(values: np.ndarray, fps: float, n_out: int) -> np.ndarray:
    """Per-frame log share of each viseme, resampled from the model's fps to ALIGN_FPS: [n_out, 15]."""
    times = np.arange(n_out) / ALIGN_FPS
    src = np.arange(len(values)) / fps
    resampled = np.stack([np.interp(times, src, values[:, c]) for c in range(values.shape[1])], axis=1)
    share = (resampled + FLOOR) / (resampled + FLOOR).sum(axis=1, keepdims=True)
    return np.log(share)


def _viterbi(scores: np.ndarray, units: list[_Unit]) -> list[tuple[int, int]]:
    """Best frame span [start, end) per unit (empty where an optional pause is skipped)."""
    # Expand each unit into min_frames chained states; only a unit's last state may repeat.
    unit_of = np.concatenate([np.full(u.min_frames, i) for i, u in enumerate(units)])
    first = np.cumsum([0] + [u.min_frames for u in units[:-1]])
    last = first + np.array([u.min_frames for u in units]) - 1
    n_states, n_frames = len(unit_of), len(scores)
    if n_states * n_frames > MAX_CELLS:
        raise TranscriptError(f"{n_frames / ALIGN_FPS / 60:.1f} minutes of audio with {len(units)} sounds is too long "
                              "for one dialogue text (memory grows with both): split it into shorter lines")
    if n_states > n_frames + sum(u.min_frames for u in units if u.optional):
        raise TranscriptError(f"the text has more sounds than {n_frames / ALIGN_FPS:.2f} s of audio can hold; "
                              "is it the right text for this file?")
    # /h/ (NEXT) is scored with the shape coarticulation gives it (the next sounding viseme, else the previous).
    raw = [((u.viseme,), 0.0, 0.0) for u in units]
    visemes = [borrowed_shape(raw, i)[0] if u.viseme == NEXT[0] else u.viseme for i, u in enumerate(units)]
    emit = scores[:, [VISEMES.index(visemes[u]) for u in unit_of]]  # [frames, states]

    stay = np.zeros(n_states, bool)
    stay[last] = True
    skip_from = np.full(n_states, -1)  # a unit's first state may also follow the unit before an optional one
    for i in range(1, len(units)):
        if units[i - 1].optional and i >= 2:
            skip_from[first[i]] = last[i - 2]
    can_start = np.zeros(n_states, bool)
    can_start[first[0]] = True
    if units[0].optional:
        can_start[first[1]] = True

    neg = -np.inf
    score = np.where(can_start, emit[0], neg)
    back = np.zeros((n_frames, n_states), np.int8)  # 0 stay, 1 from previous state, 2 skip
    prev_idx = np.arange(n_states) - 1
    has_skip = skip_from >= 0
    for t in range(1, n_frames):
        from_stay = np.where(stay, score, neg)
        from_prev = np.concatenate([[neg], score[:-1]])
        from_skip = np.where(has_skip, score[np.maximum(skip_from, 0)], neg)
        best = np.maximum(from_stay, np.maximum(from_prev, from_skip))
        back[t] = np.where(best == from_stay, 0, np.where(best == from_prev, 1, 2))
        score = best + emit[t]
    ends = [last[-1]] + ([last[-2]] if units[-1].optional else [])
    state = max(ends, key=lambda s: score[s])
    if not np.isfinite(score[state]):
        raise TranscriptError("the text cannot be placed on this audio (too short for it)")
    path = np.empty(n_frames, int)
    for t in range(n_frames - 1, -1, -1):
        path[t] = state
        move = back[t, state]
        state = state if move == 0 else prev_idx[state] if move == 1 else skip_from[state]
    spans = [(0, 0)] * len(units)
    units_path = unit_of[path]
    for i in range(len(units)):
        frames = np.flatnonzero(units_path == i)
        if len(frames):
            spans[i] = (int(frames[0]), int(frames[-1]) + 1)
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


def align_text(curves: Curves, words: list[list[str]], level: np.ndarray) -> list[Phone]:
    """Timed IPA phones (pauses as gaps) for ``words``, placed on the model's oculus15 ``curves`` and
    sharpened on the audio's ``level`` (dB per 10 ms, ``LevelMeter``)."""
    _require_visemes(curves.channels)
    units, labels = _units(words)
    if not labels:
        raise TranscriptError("the dialogue text has no speech sounds")
    n_out = max(1, int(round(curves.n_frames / curves.fps * ALIGN_FPS)))
    spans = _viterbi(_scores(curves.values, curves.fps, n_out), units)
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    for unit, (a, b) in zip(units, spans):
        if unit.phone >= 0 and b > a:
            starts.setdefault(unit.phone, a / ALIGN_FPS)
            ends[unit.phone] = b / ALIGN_FPS
    phones = [Phone(starts[i], ends[i], labels[i]) for i in range(len(labels)) if i in starts]
    return snap_to_level(phones, level)


def transcript_curves(curves: Curves, text: str, voice: str, rig: Rig,
                      level: np.ndarray) -> tuple[Curves, list[Phone]]:
    """The model's curves re-drawn from the dialogue text, timed by the model and the audio's ``level``
    (``LevelMeter``); also the timed phones."""
    phones = align_text(curves, text_to_words(text, voice), level)
    values = phones_to_curves(phones, rig, curves.fps, n_frames=curves.n_frames, phoneset="ipa")
    return Curves(values, rig.channels, curves.fps), phones
