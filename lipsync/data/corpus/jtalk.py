"""Japanese speech from Open JTalk's HTS voice, with the phone times of the synthesis itself.

Open JTalk (Debian main) speaks with an HMM-based (HTS) voice: spectra and
pitch are generated from a statistical model, frame by frame (5 ms), and
vocoded through an MLSA filter: a fourth way of making speech next to
formant synthesis (espeak-ng), diphone concatenation (MBROLA, Festival) and
Flite's clustergen vocoder. The voice is Nitech's ``nitech-jp-atr503-m001``
(Debian contrib; CC-BY 3.0). ``open_jtalk -ot`` writes the label sequence
with the start and end of every phone in the generated frames, so the times
are the synthesis's own, exact to the frame (the last phone ends with the
wave, measured).

Labels are Open JTalk's romaji-like phones, stored as IPA: ``u`` is [ɯ],
``sh`` [ɕ], ``ch`` [tɕ], ``j`` [dʑ], ``f`` [ɸ], ``hy`` [ç], ``r`` [ɾ];
devoiced vowels (``A I U E O``) keep their vowel's shape. Two phones depend
on what follows: the moraic nasal ``N`` is [m] before p b m (lips closed),
[n] before alveolars, [ŋ] before k g and [ɴ] elsewhere; ``cl``, the first
half of a geminate, is the closure (or frication) of the next consonant, so
``ippai`` closes the lips over ``cl`` and ``p`` alike.

Stops: the voice often goes quiet before a stop's label (t k d g, and
/p b/ after a word's last vowel, "no paipu": 40-45 ms), so each stop starts
at its acoustic closure when that comes earlier, by at most 60 ms
(``closures.start_stops_at_closure``; 139 stops moved over the project's
sentences at three voices, 18 of them /p b/). Then intervocalic /p b/
closures start a median 6 ms inside the label and none more than 15 ms
before it (52 measured). Bursts after the label's end are covered as for
MBROLA.

A voice's variants are the vocoder's frequency warping (all-pass constant:
lower is a shorter vocal tract, formants up) with a pitch shift in
half-tones, and a speaking rate.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from lipsync.data.corpus.closures import extend_stops_to_release, start_stops_at_closure
from lipsync.data.corpus.espeak import Synthesis
from lipsync.data.corpus.tiling import end_with_pause, relabel_and_merge
from lipsync.rigs.coarticulation import Phone

DICTIONARY = Path("/var/lib/mecab/dic/open-jtalk/naist-jdic")
VOICE_FILE = Path("/usr/share/hts-voice/nitech-jp-atr503-m001/nitech_jp_atr503_m001.htsvoice")
PAUSE = "sil"
INSTALL_HINT = (
    "install it (Debian: apt-get install open-jtalk open-jtalk-mecab-naist-jdic, and hts-voice-nitech-jp-atr503-m001 "
    "from contrib; or scripts/install_engines.sh)"
)
LICENCE_NOTE = (
    "Open JTalk's voice nitech-jp-atr503-m001 is CC-BY 3.0 (Nagoya Institute of Technology): audio made with it "
    "may be shipped with that attribution"
)
# Open JTalk's phones -> IPA; N and cl are decided by the next phone (to_ipa).
IPA = {
    "a": "a", "i": "i", "u": "ɯ", "e": "e", "o": "o", "A": "a", "I": "i", "U": "ɯ", "E": "e", "O": "o",
    "k": "k", "ky": "kʲ", "g": "g", "gy": "gʲ", "s": "s", "sh": "ɕ", "z": "z", "j": "dʑ",
    "t": "t", "ty": "tʲ", "ch": "tɕ", "ts": "ts", "d": "d", "dy": "dʲ", "n": "n", "ny": "ɲ",
    "h": "h", "hy": "ç", "f": "ɸ", "m": "m", "my": "mʲ", "p": "p", "py": "pʲ", "b": "b", "by": "bʲ",
    "r": "ɾ", "ry": "ɾʲ", "w": "w", "y": "j", "v": "v", "sil": PAUSE, "pau": PAUSE,
}  # fmt: skip
STOPS = frozenset({"p", "b", "t", "d", "k", "g", "pʲ", "bʲ", "tʲ", "dʲ", "kʲ", "gʲ", "tɕ", "dʑ", "ts"})
_BILABIAL = frozenset({"p", "b", "m", "py", "by", "my"})
_ALVEOLAR = frozenset({"t", "ty", "d", "dy", "n", "ny", "ts", "ch", "j", "z", "s", "sh", "r", "ry"})
_VELAR = frozenset({"k", "ky", "g", "gy"})
_VOWELS = frozenset("aiueoAIUEO")


class JTalkError(RuntimeError):
    """Open JTalk, its dictionary or its voice is missing, or synthesis failed; the message says what to do."""


@dataclass(frozen=True)
class JTalkVoice:
    """The HTS voice with a speaking rate (``speed`` > 1 is faster), a frequency warp and a pitch shift."""

    speed: float = 1.0
    all_pass: float = 0.55  # the voice's own value
    half_tones: float = 0.0
    name: str = "m001"


def jtalk_available() -> bool:
    return shutil.which("open_jtalk") is not None and VOICE_FILE.is_file() and (DICTIONARY / "sys.dic").is_file()


def synthesise(text: str, voice: JTalkVoice = JTalkVoice()) -> Synthesis:
    """Speak Japanese ``text``; phones (IPA) tile the audio."""
    raw, audio, sample_rate = synthesise_raw(text, voice)
    duration = len(audio) / sample_rate
    labels = to_ipa([p.label for p in raw])
    phones = relabel_and_merge([Phone(p.start, p.end, label) for p, label in zip(raw, labels)], duration, str, PAUSE)
    phones = start_stops_at_closure(end_with_pause(phones, duration, PAUSE), audio, sample_rate, STOPS)
    return Synthesis(audio, sample_rate, extend_stops_to_release(phones, audio, sample_rate, STOPS))


def synthesise_raw(text: str, voice: JTalkVoice) -> tuple[list[Phone], object, int]:
    """Open JTalk's phones as it reports them, the float32 audio and its sample rate."""
    if not jtalk_available():
        raise JTalkError(f"Open JTalk with the nitech-jp-atr503-m001 voice is not installed; {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="lipsync-jtalk-") as tmp:
        text_file, wav, trace = Path(tmp) / "text.txt", Path(tmp) / "x.wav", Path(tmp) / "x.trace"
        text_file.write_text(text, encoding="utf-8")
        cmd = ["open_jtalk", "-x", str(DICTIONARY), "-m", str(VOICE_FILE), "-ow", str(wav), "-ot", str(trace),
               "-r", f"{voice.speed:.3f}", "-a", f"{voice.all_pass:.3f}", "-fm", f"{voice.half_tones:.2f}", str(text_file)]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not wav.is_file() or not trace.is_file():
            raise JTalkError(f"open_jtalk failed on {text[:40]!r} ({result.returncode}): {result.stderr.strip()[:300]}")
        audio, sample_rate = sf.read(wav, dtype="float32", always_2d=False)
        phones = parse_trace(trace.read_text(encoding="utf-8"))
    return phones, audio, sample_rate


def parse_trace(text: str) -> list[Phone]:
    """The ``[Output label]`` block of an ``open_jtalk -ot`` trace (start end full-context label, 100 ns units)."""
    _, found, rest = text.partition("[Output label]")
    phones = []
    for line in rest.strip().split("\n\n", 1)[0].splitlines() if found else ():
        start, end, label = line.split(" ", 2)
        phone = label.split("-", 1)[1].split("+", 1)[0] if "-" in label and "+" in label else ""
        if not phone:
            raise JTalkError(f"open_jtalk trace line {line[:60]!r} is not 'start end p^p-phone+p=p/...'")
        phones.append(Phone(int(start) / 1e7, int(end) / 1e7, phone))
    if not phones:
        raise JTalkError("no [Output label] block in open_jtalk's trace")
    return phones


def to_ipa(labels: list[str]) -> list[str]:
    """Open JTalk phones as IPA, ``N`` and ``cl`` by the phone after them."""
    out = []
    for k, label in enumerate(labels):
        after = labels[k + 1] if k + 1 < len(labels) else PAUSE
        if label == "N":
            out.append("m" if after in _BILABIAL else "n" if after in _ALVEOLAR else "ŋ" if after in _VELAR else "ɴ")
        elif label == "cl":  # a geminate's closure is the next consonant's; before a vowel or pause, a glottal stop
            out.append(IPA[after] if after in IPA and after not in _VOWELS and IPA[after] != PAUSE else "ʔ")
        elif label in IPA:
            out.append(IPA[label])
        else:
            raise JTalkError(f"Open JTalk phone {label!r} is not in lipsync/data/corpus/jtalk.py's IPA table; add it there")
    return out
