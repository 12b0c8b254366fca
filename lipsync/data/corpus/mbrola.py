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

Voices: the four English ones (``us1`` ... ``en1``) and English spoken
through other languages' diphone sets (``de1-en``: espeak-ng's
``mb-de1-en`` maps English phonemes onto the German speaker's diphones).
The foreign ones add eleven more real speakers; their accent is what
MBROLA renders and the .pho says, so labels and audio still agree. The
native-language voices (``it3``: espeak-ng's ``mb-it3`` reading Italian) speak
the project's own sentences of their language (``texts/``), for training
only, like Festival's other languages.

Phone symbols are SAMPA-like (``p_h``, ``r=``, ``{``, ``@U``); they are
translated to espeak-ng mnemonics with ``rigs/phonemes/mbrola_sampa.yaml``
(a shared table plus per-diphone-set overrides, e.g. ro1's ``T`` is /ts/)
so alignments use a phone set the viseme tables know.

A diphone a voice lacks is rendered as silence (``Warning: Z-6 unknown,
replaced with _-_``, measured silent from the middle of the first phone to
the middle of the second); that span is labelled as a pause.

Licence: the MBROLA voices forbid commercial use. Audio made with them is
for locally built training corpora only; never ship or commit it.
"""
from __future__ import annotations

import re
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
from lipsync.data.corpus.espeak import PAUSE, Synthesis
from lipsync.data.corpus.espeak import STOPS as ESPEAK_STOPS
from lipsync.data.corpus.tiling import relabel_and_merge
from lipsync.rigs.coarticulation import Phone

VOICE_DIR = Path("/usr/share/mbrola")
ENGLISH_VOICES = ("us1", "us2", "us3", "en1")
# English through other languages' diphones (espeak-ng's mb-xx-en voices; Debian mbrola-xx packages).
# Left out: fr4, de3, de5, de6, gr2, whose /p b/ closures start > 15 ms before the labelled stop in
# 12-42% of cases (measured on the sentence word list; under 6% for these).
ACCENTED_VOICES = ("af1-en", "nl2-en", "fr1-en", "de1-en", "de2-en", "de4-en", "hu1-en", "pl1-en", "ro1-en",
                   "sw1-en", "sw2-en")  # fmt: skip
VOICES = ENGLISH_VOICES + ACCENTED_VOICES
# Voices reading their own language (Debian mbrola-it3, -it4, -cz2). Left out: it1 and it2, for which espeak-ng
# writes symbols their diphone sets lack (tS dZ j: about one silent gap a second on the Italian sentences); cz1,
# lacking 86 diphones on the Czech ones; ca1 and ca2, for which it writes French-like symbols (2 9 9~ @ y R).
NATIVE_VOICES = {"it3": "it", "it4": "it", "cz2": "cs"}
# Stops and affricates as translated (Czech t' d' are IPA c and ɟ), whose late bursts extend them.
STOPS = ESPEAK_STOPS | {"ts", "c", "ɟ"}
_TABLE = Path(__file__).resolve().parents[2] / "rigs" / "phonemes" / "mbrola_sampa.yaml"
INSTALL_HINT = "run scripts/install_engines.sh (Debian contrib/non-free: mbrola and its mbrola-<voice> packages)"
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


def database(name: str) -> str:
    """The MBROLA diphone set a voice speaks with: ``de1`` for ``de1-en``."""
    return name.split("-")[0]


def language_of(name: str) -> str:
    """The language a voice reads: ``en`` for the English and accented voices, else its own."""
    if name in NATIVE_VOICES:
        return NATIVE_VOICES[name]
    if name in ENGLISH_VOICES or name.endswith("-en"):
        return "en"
    raise MbrolaError(f"MBROLA voice {name!r}: lipsync has sentences and phone tables for English (us1 ... en1, "
                      f"xx-en) and for {', '.join(NATIVE_VOICES)} only")


def voice_path(name: str) -> Path:
    return VOICE_DIR / database(name) / database(name)


def mbrola_available(voice: str = "us1") -> bool:
    return shutil.which("mbrola") is not None and shutil.which("espeak-ng") is not None and voice_path(voice).is_file()


@lru_cache(maxsize=1)
def _sampa_spec() -> dict:
    return yaml.safe_load(_TABLE.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _sampa_table(db: str) -> tuple[dict[str, str], frozenset[str]]:
    """The symbol table of one diphone set: the shared table with that set's overrides on top."""
    spec = _sampa_spec()
    table = {str(k): str(v) for k, v in {**spec["phones"], **spec["overrides"].get(db, {})}.items()}
    return table, frozenset(spec["silence"])


def to_espeak_mnemonic(symbol: str, voice: str = "us1") -> str:
    """One MBROLA phone symbol of ``voice`` as an espeak-ng mnemonic (pauses as ``_``)."""
    table, silence = _sampa_table(database(voice))
    if symbol in silence:
        return PAUSE
    if symbol not in table:
        raise MbrolaError(f"MBROLA phone {symbol!r} (voice {voice}) is not in {_TABLE}; add it there with its espeak-ng mnemonic")
    return table[symbol]


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
    raw_phones, audio, sample_rate, missing = synthesise_raw(text, voice)
    phones = tile_phones(silence_missing_diphones(raw_phones, missing), len(audio) / sample_rate, voice.name)
    return Synthesis(audio, sample_rate, extend_stops_to_release(phones, audio, sample_rate, STOPS))


def synthesise_raw(text: str, voice: MbrolaVoice) -> tuple[list[Phone], np.ndarray, int, set[tuple[str, str]]]:
    """The .pho phones as MBROLA reports them (SAMPA symbols), the float32 audio, its sample rate,
    and the phone pairs whose diphone the voice lacks (MBROLA renders those silent)."""
    if not mbrola_available(voice.name):
        raise MbrolaError(f"MBROLA voice {voice.name!r} is not installed ({voice_path(voice.name)}); {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="lipsync-mbrola-") as tmp:
        pho, wav = Path(tmp) / "x.pho", Path(tmp) / "x.wav"
        _run(["espeak-ng", "-v", f"mb-{voice.name}", "-q", "-s", str(voice.rate), "-p", str(voice.pitch),
              "--pho", f"--phonout={pho}", text])  # fmt: skip
        log = _run(["mbrola", "-e", "-f", f"{voice.frequency_ratio:.3f}", str(voice_path(voice.name)), str(pho), str(wav)])
        phones = parse_pho(pho.read_text(encoding="utf-8"))
        audio, sample_rate = sf.read(wav, dtype="float32", always_2d=False)
    missing = set(_MISSING_DIPHONE.findall(log))
    return phones, audio, sample_rate, missing


_MISSING_DIPHONE = re.compile(r"Warning: (\S+?)-(\S+) unknown, replaced with _-_")


def silence_missing_diphones(raw: list[Phone], missing: set[tuple[str, str]]) -> list[Phone]:
    """Label as pauses the spans MBROLA rendered silent: each missing diphone, middle to middle."""
    gaps = [((a.start + a.end) / 2, (b.start + b.end) / 2) for a, b in zip(raw, raw[1:]) if (a.label, b.label) in missing]
    if not gaps:
        return raw
    out = [Phone(g0, g1, "_") for g0, g1 in gaps]
    for p in raw:
        pieces = [(p.start, p.end)]
        for g0, g1 in gaps:
            pieces = [q for s, e in pieces for q in ((s, min(e, g0)), (max(s, g1), e)) if q[1] > q[0]]
        out += [Phone(s, e, p.label) for s, e in pieces]
    return sorted(out, key=lambda p: p.start)


def tile_phones(raw: list[Phone], duration: float, voice: str = "us1") -> list[Phone]:
    """Translate symbols, merge neighbouring pauses, and make the last phone end with the audio."""
    out = relabel_and_merge(raw, duration, lambda label: to_espeak_mnemonic(label, voice), PAUSE)
    if out and out[-1].end < duration:  # MBROLA may render a few ms beyond the .pho's total
        last = out[-1]
        out[-1] = Phone(last.start, duration, last.label)
    return out


def _run(cmd: list[str]) -> str:
    """Run ``cmd``; its stderr (MBROLA's warnings) on success."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise MbrolaError(f"{cmd[0]} failed ({result.returncode}): {result.stderr.strip()[:300]}")
    return result.stderr
