"""Speech with exact phone timing from libespeak-ng, driven through ctypes.

espeak-ng's C library reports a phoneme event (its mnemonic and the sample
where it starts) for every phone it synthesises, so the alignment is the
synthesiser's own, not a guess. No Python package wraps this API, and the
``-dev`` header is not installed, so the structures below mirror
``speak_lib.h`` (espeak-ng 1.51); tests check that events land where the
audio says.

The library keeps global state and is not thread-safe: one synthesis at a
time per process (a lock serialises callers).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lipsync.rigs.coarticulation import Phone

LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.dylib")
PAUSE = "_"
# Stops and affricates: a closure (silence) then a burst, where espeak puts the event.
STOPS = frozenset({"p", "b", "t", "d", "k", "g", "tS", "dZ"})

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4


class EspeakError(RuntimeError):
    """libespeak-ng is missing or refused a request; the message says what to do."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # samples from the start of the message
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """One way of speaking: ``name`` is ``voice`` or ``voice+variant`` (e.g. ``en-us+f3``)."""

    name: str = "en-us"
    rate: int = 175  # words per minute, 80-450
    pitch: int = 50  # 0-99
    pitch_range: int = 50  # 0-99


@dataclass(frozen=True)
class Synthesis:
    audio: np.ndarray  # float32 mono at sample_rate
    sample_rate: int
    phones: list[Phone]  # espeak mnemonics, pauses as "_", covering the whole audio


class _Engine:
    def __init__(self) -> None:
        self.lib = _load_library()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]  # fmt: skip
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS)
        if rate <= 0:
            raise EspeakError(
                f"espeak_Initialize failed ({rate}); is espeak-ng-data installed (apt-get install espeak-ng)?"
            )
        self.sample_rate = rate
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, str]] = []
        self.callback = _CALLBACK(self._collect)  # kept alive as long as the engine
        self.lib.espeak_SetSynthCallback(self.callback)
        self.lock = threading.Lock()

    def _collect(self, wav, n_samples, events) -> int:
        if n_samples > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                label = bytes(events[i].id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self.events.append((events[i].sample, label))
            i += 1
        return 0  # 0: keep synthesising

    def synthesise(self, text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[int, str]]]:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise EspeakError(f"espeak-ng has no voice {voice.name!r}; list them with `espeak-ng --voices=en`")
            settings = ((_PARAM_RATE, voice.rate), (_PARAM_PITCH, voice.pitch), (_PARAM_RANGE, voice.pitch_range))
            for param, value in settings:
                self.lib.espeak_SetParameter(param, int(value), 0)
            self.chunks, self.events = [], []
            data = text.encode("utf-8") + b"\0"
            status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise EspeakError(f"espeak_Synth failed with status {status} for text {text[:40]!r}")
            self.lib.espeak_Synchronize()
            audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
            return audio, list(self.events)


def _load_library() -> ctypes.CDLL:
    names = list(LIBRARY_NAMES)
    found = ctypes.util.find_library("espeak-ng")
    if found:
        names.append(found)
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise EspeakError("libespeak-ng not found; install it (Debian/Ubuntu: apt-get install espeak-ng libespeak-ng1)")


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    return _Engine()


def espeak_available() -> bool:
    try:
        _engine()
    except EspeakError:
        return False
    return True


def synthesise(text: str, voice: Voice = Voice()) -> Synthesis:
    """Speak ``text``; phones span the audio end to end, stop closures corrected."""
    raw, events = _engine().synthesise(text, voice)
    sample_rate = _engine().sample_rate
    audio = raw.astype(np.float32) / 32768.0
    phones = phones_from_events(events, len(audio), sample_rate)
    return Synthesis(audio, sample_rate, move_stops_over_closures(phones, audio, sample_rate))


def phones_from_events(events: list[tuple[int, str]], n_samples: int, sample_rate: int) -> list[Phone]:
    """Each event starts a phone that ends where the next one starts (the last at the audio's end)."""
    phones: list[Phone] = []
    starts = sorted(events, key=lambda e: e[0])
    for i, (sample, label) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else n_samples
        end = min(end, n_samples)
        if end <= sample:
            continue  # zero-length markers (e.g. stress or word-boundary events)
        label = PAUSE if not label or label.startswith("_") else label
        if phones and label == PAUSE and phones[-1].label == PAUSE:
            phones[-1] = Phone(phones[-1].start, end / sample_rate, PAUSE)
            continue
        phones.append(Phone(sample / sample_rate, end / sample_rate, label))
    return phones


def silent_run_before(audio: np.ndarray, sample: int, threshold: float = 1e-3) -> int:
    """How many samples immediately before ``sample`` stay below ``threshold`` in magnitude."""
    quiet = np.abs(audio[:sample]) < threshold
    if not quiet.size or not quiet[-1]:
        return 0
    loud = np.flatnonzero(~quiet)
    return sample - (int(loud[-1]) + 1 if loud.size else 0)


def move_stops_over_closures(
    phones: list[Phone],
    audio: np.ndarray,
    sample_rate: int,
    threshold: float = 1e-3,
    min_closure: float = 0.005,
    max_closure: float = 0.07,
) -> list[Phone]:
    """Start each stop at the silent closure before its burst instead of at the burst.

    espeak-ng marks a stop at its release and counts the closure's silence
    (20-50 ms) as part of the previous phone; the lips (p b) or tongue are
    already closed there, so the closure belongs to the stop. After a pause
    the silence is long, and only the last ``max_closure`` seconds of it are
    taken (the mouth closes shortly before speaking, not through the pause).
    The previous phone keeps at least a millisecond.
    """
    out = list(phones)
    for i, phone in enumerate(out):
        if phone.label.rstrip("0123456789#[") not in STOPS:  # t2, t#, t[ are t
            continue
        burst = round(phone.start * sample_rate)
        closure = min(silent_run_before(audio, burst, threshold) / sample_rate, max_closure)
        if closure < min_closure:
            continue
        floor = out[i - 1].start + 0.001 if i > 0 else 0.0
        new_start = max(phone.start - closure, floor)
        if new_start >= phone.start:
            continue
        if i > 0:
            out[i - 1] = Phone(out[i - 1].start, new_start, out[i - 1].label)
        out[i] = Phone(new_start, phone.end, phone.label)
    return out
