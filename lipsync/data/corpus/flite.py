"""Speech from CMU Flite's statistical-parametric voices, with the segment times Flite reports.

``flite -psdur`` prints every segment with its end time (``pau:0.191
ax:0.220 ...``) while it writes the wave; the labels are the same radio
phone set as Festival's (lower-case ARPAbet, ``pau`` for pauses), so
alignments store them as ARPAbet. The voices ``rms`` (US male) and ``awb``
(Scottish male) are clustergen voices: vocoded from a statistical model,
a third way of making speech next to espeak-ng's formant synthesis and the
diphone concatenation of MBROLA and Festival.

A stop's segment starts before its closure (median +20 ms over /p b/ in
the sentence word list) and nearly always holds the burst; the few bursts
after it (under 5%) are covered by extending the stop, as for MBROLA.

Flite's pitch features do not move these voices' F0 (measured), so a
voice's variants are a playback-rate change of the rendered wave
(``timbre``: 1.08 raises pitch and formants by 8% and shortens the clip by
the same factor; phone times are scaled with it, exactly).

Refused: ``kal``, ``kal16`` and ``slt``, the speakers of the two Festival
voices reserved for the project's independent evaluation.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import soundfile as sf

from lipsync.data.corpus.closures import extend_stops_to_release
from lipsync.data.corpus.espeak import Synthesis
from lipsync.data.corpus.festival import ReservedVoiceError, tile_segments
from lipsync.rigs.coarticulation import Phone

VOICES = ("rms", "awb")
STOPS = frozenset({"P", "B", "T", "D", "K", "G", "CH", "JH"})
RESERVED_VOICES = frozenset({"kal", "kal16", "slt"})  # the speakers of kal_diphone and cmu_us_slt_arctic_hts
INSTALL_HINT = "apt-get install flite (Debian main), or scripts/install_engines.sh"
LICENCE_NOTE = "CMU Flite and its voices are free software (BSD-style); the audio may be shipped"


class FliteError(RuntimeError):
    """Flite or a voice is missing, or synthesis failed; the message says what to do."""


@dataclass(frozen=True)
class FliteVoice:
    """A Flite voice with a rate (``duration_stretch``: >1 is slower) and a timbre (playback-rate factor)."""

    name: str = "rms"
    stretch: float = 1.0
    timbre: float = 1.0

    def __post_init__(self) -> None:
        refuse_reserved(self.name)


def refuse_reserved(name: str) -> None:
    if name in RESERVED_VOICES:
        raise ReservedVoiceError(
            f"Flite voice {name!r} is the speaker of a voice reserved for the project's independent evaluation "
            f"(kal_diphone, cmu_us_slt_arctic_hts); never train, tune or select on it. Use {', '.join(VOICES)}"
        )


def flite_available(voice: str = "rms") -> bool:
    return voice in _installed_voices()


@lru_cache(maxsize=1)
def _installed_voices() -> frozenset[str]:
    """The voices ``flite -lv`` lists (asked once per process, not per clip)."""
    if shutil.which("flite") is None:
        return frozenset()
    return frozenset(subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split())


def synthesise(text: str, voice: FliteVoice = FliteVoice()) -> Synthesis:
    """Speak ``text``; phones (ARPAbet) tile the audio, times scaled with the timbre's rate change."""
    segs, audio, sample_rate = synthesise_raw(text, voice)
    phones = extend_stops_to_release(tile_segments(segs, len(audio) / sample_rate), audio, sample_rate, STOPS)
    rate = round(sample_rate * voice.timbre)
    scale = sample_rate / rate
    return Synthesis(audio, rate, [Phone(p.start * scale, p.end * scale, p.label) for p in phones])


def synthesise_raw(text: str, voice: FliteVoice) -> tuple[list[Phone], object, int]:
    """Flite's segments as it reports them (radio labels), the float32 audio and its sample rate."""
    refuse_reserved(voice.name)
    if not flite_available(voice.name):
        raise FliteError(f"Flite voice {voice.name!r} is not installed; {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="lipsync-flite-") as tmp:
        wav = Path(tmp) / "x.wav"
        cmd = ["flite", "-voice", voice.name, "-psdur", "--setf", f"duration_stretch={voice.stretch:.3f}",
               "-t", text, "-o", str(wav)]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not wav.is_file():
            raise FliteError(f"flite failed on {text[:40]!r} ({result.returncode}): {result.stderr.strip()[:300]}")
        audio, sample_rate = sf.read(wav, dtype="float32", always_2d=False)
    return parse_psdur(result.stdout), audio, sample_rate


def parse_psdur(text: str) -> list[Phone]:
    """``flite -psdur`` output (``label:end_time`` tokens) as phones starting at 0."""
    phones: list[Phone] = []
    start = 0.0
    for token in text.split():
        label, sep, end_text = token.rpartition(":")
        try:
            end = float(end_text) if sep else None
        except ValueError:
            end = None
        if end is None:
            raise FliteError(f"flite -psdur token {token!r} is not 'phone:end_time'")
        phones.append(Phone(start, end, label))
        start = end
    if not phones:
        raise FliteError(f"no segments in flite's output: {text[:80]!r}")
    return phones
