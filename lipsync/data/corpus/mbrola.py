"""Speech from MBROLA diphone voices, with the phone timing of the ``.pho`` file that drives it.

espeak-ng turns text into an MBROLA phone file (``--pho``: one phone a
line with its duration in ms and pitch targets), and ``mbrola`` renders it
by concatenating diphones recorded from a real speaker. The durations in
the ``.pho`` are what MBROLA renders, so their running sum is the exact
alignment (measured within 8 ms of the audio's end). A stop's segment
starts at its closure, but MBROLA sometimes releases it up to ~25 ms into
the next phone: those stops are extended to the burst
(``closures.extend_stops_to_release``), the only change to the .pho timing. espeak-ng's own phoneme
events for ``mb-`` voices are quantised (~65 ms) and are not used.

Phone symbols are SAMPA-like (``p_h``, ``r=``, ``{``, ``@U``); they are
translated to espeak-ng mnemonics with ``rigs/phonemes/mbrola_sampa.yaml``
so alignments use a phone set the viseme tables know.

Licence: the MBROLA voices forbid commercial use. Audio made with them is
for locally built training corpora only; never ship or commit it.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from lipsync.data.corpus.closures import extend_stops_to_release
from lipsync.data.corpus.espeak import PAUSE, STOPS, Synthesis
from lipsync.rigs.coarticulation import Phone

VOICE_DIR = Path("/usr/share/mbrola")
VOICES = ("us1", "us2", "us3", "en1")  # the English voices Debian packages (mbrola-us1 ... mbrola-en1)
_TABLE = Path(__file__).resolve().parents[2] / "rigs" / "phonemes" / "mbrola_sampa.yaml"
INSTALL_HINT = "run scripts/install_engines.sh (Debian contrib/non-free: mbrola, mbrola-us1 ... mbrola-en1)"
LICENCE_NOTE = (
    "MBROLA voices are licensed for non-commercial, non-military use only: audio made with them "
    "is for locally built training corpora; never ship, publish or commit it."
)


class MbrolaError(RuntimeError):
    """mbrola or a voice is missing, or synthesis failed; the message says what to do."""


@dataclass(frozen=True)
class MbrolaVoice:
    """An MBROLA voice with espeak-ng prosody; ``frequency_ratio`` scales every pitch target (mbrola -f)."""

    name: str = "us1"
    rate: int = 175  # espeak-ng words per minute
    pitch: int = 50  # espeak-ng pitch, 0-99
    frequency_ratio: float = 1.0


def voice_path(name: str) -> Path:
    return VOICE_DIR / name / name


def mbrola_available(voice: str = "us1") -> bool:
    return shutil.which("mbrola") is not None and shutil.which("espeak-ng") is not None and voice_path(voice).is_file()


@lru_cache(maxsize=1)
def _sampa_table() -> tuple[dict[str, str], frozenset[str]]:
    spec = yaml.safe_load(_TABLE.read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in spec["phones"].items()}, frozenset(spec["silence"])


def to_espeak_mnemonic(symbol: str) -> str:
    """One MBROLA phone symbol as an espeak-ng mnemonic (pauses as ``_``)."""
    phones, silence = _sampa_table()
    if symbol in silence:
        return PAUSE
    if symbol not in phones:
        raise MbrolaError(f"MBROLA phone {symbol!r} is not in {_TABLE}; add it there with its espeak-ng mnemonic")
    return phones[symbol]


def parse_pho(text: str) -> list[Phone]:
    """The phones of a ``.pho`` file as MBROLA will render them: cumulative durations, raw symbols."""
    phones: list[Phone] = []
    t = 0.0
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or line.startswith(";"):
            continue
        try:
            duration = int(fields[1]) / 1000
        except (IndexError, ValueError):
            raise MbrolaError(f".pho line {n} is not 'phone duration_ms [pitch points]': {line!r}") from None
        phones.append(Phone(t, t + duration, fields[0]))
        t += duration
    return phones


def synthesise(text: str, voice: MbrolaVoice = MbrolaVoice()) -> Synthesis:
    """Speak ``text``; phones (espeak-ng mnemonics) span the audio end to end, timing from the .pho."""
    raw_phones, audio, sample_rate = synthesise_raw(text, voice)
    phones = tile_phones(raw_phones, len(audio) / sample_rate)
    return Synthesis(audio, sample_rate, extend_stops_to_release(phones, audio, sample_rate, STOPS))


def synthesise_raw(text: str, voice: MbrolaVoice) -> tuple[list[Phone], np.ndarray, int]:
    """The .pho phones as MBROLA reports them (SAMPA symbols) and the float32 audio."""
    if not mbrola_available(voice.name):
        raise MbrolaError(f"MBROLA voice {voice.name!r} is not installed ({voice_path(voice.name)}); {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="lipsync-mbrola-") as tmp:
        pho, wav = Path(tmp) / "x.pho", Path(tmp) / "x.wav"
        _run(["espeak-ng", "-v", f"mb-{voice.name}", "-q", "-s", str(voice.rate), "-p", str(voice.pitch),
              "--pho", f"--phonout={pho}", text])  # fmt: skip
        _run(["mbrola", "-e", "-f", f"{voice.frequency_ratio:.3f}", str(voice_path(voice.name)), str(pho), str(wav)])
        phones = parse_pho(pho.read_text(encoding="utf-8"))
        audio, sample_rate = sf.read(wav, dtype="float32", always_2d=False)
    return phones, audio, sample_rate


def tile_phones(raw: list[Phone], duration: float) -> list[Phone]:
    """Translate symbols, merge neighbouring pauses, and make the last phone end with the audio."""
    out: list[Phone] = []
    for p in raw:
        label = to_espeak_mnemonic(p.label)
        start, end = min(p.start, duration), min(p.end, duration)
        if end <= start:
            continue
        if out and label == PAUSE and out[-1].label == PAUSE:
            out[-1] = Phone(out[-1].start, end, PAUSE)
        else:
            out.append(Phone(start, end, label))
    if out and out[-1].end < duration:  # MBROLA may render a few ms beyond the .pho's total
        last = out[-1]
        out[-1] = Phone(last.start, duration, last.label)
    return out


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise MbrolaError(f"{cmd[0]} failed ({result.returncode}): {result.stderr.strip()[:300]}")
