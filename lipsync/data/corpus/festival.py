"""Speech from Festival voices, with the segment times of Festival's own utterance.

One ``festival -b`` process speaks a batch of texts: for each it sets the
rate (``Duration_Stretch``) and the pitch model's target mean and spread
(``int_lr_params``), synthesises, and saves the wave and the segments
(``utt.save.segs``: each segment's end time; the last one within 4 ms of
the audio's end, measured). English segment labels are Festival's radio
phone set (lower-case ARPAbet, ``pau`` for pauses); alignments store them as
ARPAbet. The other languages' voices (Italian, Czech, Catalan, Hindi) have
their own phone sets; alignments store those as IPA
(``rigs/phonemes/festival_ipa.yaml``), and each language's text goes to
Festival in the encoding its front end reads.

Two Festival voices are reserved for the project's independent evaluation
and refused here: ``kal_diphone`` and ``cmu_us_slt_arctic_hts``. Never
train, tune or select models on them. So is ``msu_ru_nsh_clunits``: its
unit-selection voice plays back its own database, whose 620 labelled
recordings of a real speaker (festvox-ru) are the project's human-speech
test set (data/README.md).
"""
from __future__ import annotations

import functools
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from lipsync.data.corpus.closures import extend_stops_to_release
from lipsync.data.corpus.espeak import Synthesis
from lipsync.data.corpus.tiling import end_with_pause, relabel_and_merge
from lipsync.rigs.coarticulation import Phone
from lipsync.rigs.phonemes import UnknownPhoneError, festival_to_ipa

# English voices kept for the project's blind test (``engines.BLIND``): rendered only into a test-only corpus that
# training refuses. The Russian voice's recordings are the human-speech test set (prepare_data), never synthesised.
BLIND_VOICES = ("kal_diphone", "cmu_us_slt_arctic_hts")
BLIND_PACKAGES = "festvox-kallpc16k festvox-us-slt-hts"
RESERVED_VOICES = frozenset({*BLIND_VOICES, "msu_ru_nsh_clunits"})
ENGLISH_VOICES = ("ked_diphone",)  # English voices in Debian main that are not reserved (festvox-kdlpc16k)


@dataclass(frozen=True)
class Language:
    phoneset: str  # "radio" (English, stored as ARPAbet) or a phone set of festival_ipa.yaml (stored as IPA)
    encoding: str  # what the language's text front end reads
    package: str  # Debian package(s) of its voices
    # False: its voices speak in a Festival process of their own. Hindi's front end fails in a process where a
    # Czech voice has run (czech.scm redefines shared functions; measured: "Feature StressUnit not defined").
    shares_process: bool = True


LANGUAGES = {
    "en": Language("radio", "ascii", "festvox-kdlpc16k"),
    "it": Language("italian", "latin-1", "festvox-italp16k festvox-itapc16k"),
    "cs": Language("czech", "iso-8859-2", "festvox-czech-dita festvox-czech-krb festvox-czech-machac"),
    "ca": Language("catalan", "latin-1", "festvox-ca-ona-hts"),
    "hi": Language("hindi", "utf-8", "festvox-hi-nsk festival-hi", shares_process=False),  # the voice, its front end
}
# Voices of other languages (all in Debian main): real speakers' diphones, and one HTS voice (upc_ca_ona_hts).
# Left out after measuring /p/ on the texts: czech_ph and the Finnish suo_fi_lj_diphone, hy_fi_mv_diphone
# label their segments 30-100 ms ahead of the audio (the closure starts 50-80 ms into the labelled /p/
# and the burst comes after the next phone has begun), so their timing cannot be trusted.
OTHER_LANGUAGE_VOICES = {
    "lp_diphone": "it", "pc_diphone": "it",
    "czech_dita": "cs", "czech_krb": "cs", "czech_machac": "cs",
    "upc_ca_ona_hts": "ca",
}  # fmt: skip
# Spoken when named (--festival-voices), not by default: the documented corpus commands that take the default keep
# rebuilding the same corpora, and adding it to the shipped recipe's training did not help (README). Its segments
# hold each /p/ (closure onset median +11 ms, burst 14 ms before the segment's end; 43 /p/).
OPT_IN_VOICES = {"hindi_NSK_diphone": "hi"}
VOICE_LANGUAGES = {**{v: "en" for v in ENGLISH_VOICES}, **OTHER_LANGUAGE_VOICES, **OPT_IN_VOICES}
VOICES = tuple(VOICE_LANGUAGES)  # every voice the builder knows
DEFAULT_VOICES = tuple(v for v in VOICES if v not in OPT_IN_VOICES)
VOICE_DIR = Path("/usr/share/festival/voices")
PAUSE = "sil"  # Festival's pause labels, in the spelling both ARPAbet and IPA tables read as silence
INSTALL_HINT = (
    "install it (Debian: apt-get install festival " + " ".join(lang.package for lang in LANGUAGES.values())
    + ", or scripts/install_engines.sh)"
)
_TEXT_DIR = Path(__file__).resolve().parent / "texts"
# Stops of the other languages, as stored (IPA). Measured on 14-23 /p/ per voice: the Catalan voice
# releases up to 10 ms after the segment's end in about 1 of 11, so these stops are extended to a late burst
# as for MBROLA; English (ked) holds its bursts and is left as Festival says.
_STOP_BASES = ("p", "b", "t", "d", "t̪", "d̪", "ʈ", "ɖ", "k", "ɡ", "g", "c", "ɟ", "ts", "dz", "tʃ", "dʒ")
IPA_STOPS = frozenset(s + mark for s in _STOP_BASES for mark in ("", "ː", "ʰ", "ʱ"))


class FestivalError(RuntimeError):
    """Festival or a voice is missing, or synthesis failed; the message says what to do."""


class ReservedVoiceError(ValueError):
    """A voice kept for independent evaluation was asked for in corpus building."""


@dataclass(frozen=True)
class FestivalVoice:
    """A Festival voice with a rate (Duration_Stretch: >1 is slower) and a pitch model (Hz)."""

    name: str = "ked_diphone"
    stretch: float = 1.0
    f0_mean: float = 105.0
    f0_std: float = 15.0
    blind: bool = False  # one of BLIND_VOICES, for the blind test corpus only

    def __post_init__(self) -> None:
        if not self.blind:
            refuse_reserved(self.name)
        elif self.name not in BLIND_VOICES:
            raise FestivalError(f"{self.name!r} is not a blind-test voice; those are {', '.join(BLIND_VOICES)}")


def refuse_reserved(name: str) -> None:
    if name in RESERVED_VOICES:
        raise ReservedVoiceError(
            f"Festival voice {name!r} is reserved for the project's independent evaluation and must never be used "
            f"to train, tune or select models; build corpora with {', '.join(VOICES)} instead (the blind test "
            f"renders {', '.join(BLIND_VOICES)}: make_corpus.py --engines blind)"
        )


def festival_available(voice: str = "ked_diphone") -> bool:
    return shutil.which("festival") is not None and any(VOICE_DIR.glob(f"*/{voice}"))


def language_of(voice: str) -> str:
    if voice in BLIND_VOICES:
        return "en"
    if voice not in VOICE_LANGUAGES:
        raise FestivalError(f"unknown Festival voice {voice!r}; known voices: {', '.join(VOICES)}")
    return VOICE_LANGUAGES[voice]


def phoneset_of(voice: str) -> str:
    """The phone set (lipsync.rigs.phonemes) this voice's alignments are stored in."""
    return "arpabet" if language_of(voice) == "en" else "ipa"


@functools.lru_cache(maxsize=None)
def sentences(language: str) -> tuple[str, ...]:
    """The project's own sentences for a language other than English (corpus/texts/<language>.txt)."""
    lines = (_TEXT_DIR / f"{language}.txt").read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def compose_text(rng: random.Random, language: str) -> str:
    """Two different sentences of the language, drawn from ``rng``."""
    return " ".join(rng.sample(sentences(language), 2))


def synthesise(text: str, voice: FestivalVoice = FestivalVoice()) -> Synthesis:
    return synthesise_batch([(text, voice)])[0]


def synthesise_batch(items: list[tuple[str, FestivalVoice]]) -> list[Synthesis]:
    """Speak each (text, voice) in one Festival process; phones (ARPAbet, IPA for other languages) tile each clip."""
    out = []
    for (segs, audio, sr), (_, voice) in zip(synthesise_raw(items), items):
        language = language_of(voice.name)
        phones = tile_segments(segs, len(audio) / sr, language)
        if language != "en":
            phones = extend_stops_to_release(phones, audio, sr, IPA_STOPS)
        out.append(Synthesis(audio, sr, phones))
    return out


def synthesise_raw(items: list[tuple[str, FestivalVoice]]) -> list[tuple[list[Phone], object, int]]:
    """Per item: Festival's segments as it reports them (its phone set's labels), the float32 audio and its rate."""
    for _, voice in items:
        if not voice.blind:
            refuse_reserved(voice.name)
        if not festival_available(voice.name):
            hint = f"apt-get install festival {BLIND_PACKAGES}" if voice.blind else INSTALL_HINT
            raise FestivalError(f"Festival voice {voice.name!r} is not installed; {hint}")
    processes: dict[str | None, list[int]] = {}  # None: the shared process, in the items' order
    for i, (_, voice) in enumerate(items):
        language = language_of(voice.name)
        processes.setdefault(None if LANGUAGES[language].shares_process else language, []).append(i)
    out: list = [None] * len(items)
    for indices in processes.values():
        for i, result in zip(indices, _run_batch([items[i] for i in indices])):
            out[i] = result
    return out


def _run_batch(items: list[tuple[str, FestivalVoice]]) -> list[tuple[list[Phone], object, int]]:
    with tempfile.TemporaryDirectory(prefix="lipsync-festival-") as tmp:
        script = [_utterance_scheme(text, voice, Path(tmp) / f"u{i}") for i, (text, voice) in enumerate(items)]
        (Path(tmp) / "batch.scm").write_bytes(b"".join(script))
        result = subprocess.run(  # the other languages' front ends print in their own encodings
            ["festival", "-b", str(Path(tmp) / "batch.scm")], capture_output=True, text=True, errors="replace"
        )
        out = []
        for i, (text, voice) in enumerate(items):
            wav, segs = Path(tmp) / f"u{i}.wav", Path(tmp) / f"u{i}.segs"
            if not wav.is_file() or not segs.is_file():  # the first utterance it did not finish
                # A voice's folder can be there without its language's front end (festival-hi is only a Recommends)
                lacking = "could not open file" in result.stderr
                missing = f"; a Festival package is missing: {INSTALL_HINT}" if lacking else ""
                raise FestivalError(f"festival failed on {voice.name}'s {text[:40]!r} ({result.returncode}): "
                                    f"{result.stderr.strip()[:300]}{missing}")
            audio, sr = sf.read(wav, dtype="float32", always_2d=False)
            out.append((parse_segs(segs.read_text(encoding="utf-8")), audio, sr))
        if result.returncode != 0:
            raise FestivalError(f"festival exited {result.returncode} after the batch: {result.stderr.strip()[:300]}")
    return out


def _utterance_scheme(text: str, voice: FestivalVoice, stem: Path) -> bytes:
    quoted = text.replace("\\", " ").replace('"', "'")
    encoding = LANGUAGES[language_of(voice.name)].encoding
    try:
        quoted.encode(encoding)
    except UnicodeEncodeError as err:
        raise FestivalError(
            f"text for Festival voice {voice.name!r} has {quoted[err.start:err.end]!r}, which its front end's "
            f"encoding ({encoding}) cannot write: {text[:60]!r}"
        ) from None
    return (
        f"(voice_{voice.name})\n"
        f"(Parameter.set 'Duration_Stretch {voice.stretch:.3f})\n"
        f"(set! int_lr_params '((target_f0_mean {voice.f0_mean:.1f}) (target_f0_std {voice.f0_std:.1f}) "
        f"(model_f0_mean 170) (model_f0_std 34)))\n"
        f'(set! utt (utt.synth (Utterance Text "{quoted}")))\n'
        f'(utt.save.wave utt "{stem}.wav" \'riff)\n'
        f'(utt.save.segs utt "{stem}.segs")\n'
    ).encode(encoding)


def parse_segs(text: str) -> list[Phone]:
    """``utt.save.segs`` output (a header up to ``#``, then ``end_time 100 label`` lines) as phones."""
    _, _, body = text.partition("#")
    phones: list[Phone] = []
    start = 0.0
    for line in body.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        end = float(fields[0])
        phones.append(Phone(start, end, fields[2]))
        start = end
    if not phones:
        raise FestivalError(f"no segments in Festival's output: {text[:80]!r}")
    return phones


def to_arpabet(label: str) -> str:
    return PAUSE if label in ("pau", "#", "") else label.upper()


def to_label(label: str, language: str) -> str:
    """Festival's label as alignments store it: ARPAbet for English, IPA otherwise."""
    if language == "en":
        return to_arpabet(label)
    try:
        return festival_to_ipa(label, LANGUAGES[language].phoneset)
    except UnknownPhoneError as e:
        raise FestivalError(str(e)) from None


def tile_segments(segs: list[Phone], duration: float, language: str = "en") -> list[Phone]:
    """Stored labels (``to_label``), zero-length segments dropped, pauses merged, the last phone ending with the audio."""
    out = relabel_and_merge(segs, duration, lambda label: to_label(label, language), PAUSE)
    return end_with_pause(out, duration, PAUSE)
