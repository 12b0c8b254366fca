"""Speech from Festival voices, with the segment times of Festival's own utterance.

One ``festival -b`` process speaks a batch of texts: for each it sets the
rate (``Duration_Stretch``) and the pitch model's target mean and spread
(``int_lr_params``), synthesises, and saves the wave and the segments
(``utt.save.segs``: each segment's end time; the last one within 4 ms of
the audio's end, measured). Segment labels are Festival's radio phone set
(lower-case ARPAbet, ``pau`` for pauses); alignments store them as ARPAbet.

Two Festival voices are reserved for the project's independent evaluation
and refused here: ``kal_diphone`` and ``cmu_us_slt_arctic_hts``. Never
train, tune or select models on them.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from lipsync.data.corpus.espeak import Synthesis
from lipsync.rigs.coarticulation import Phone

RESERVED_VOICES = frozenset({"kal_diphone", "cmu_us_slt_arctic_hts"})
VOICES = ("ked_diphone",)  # English voices in Debian main that are not reserved (festvox-kdlpc16k)
VOICE_DIR = Path("/usr/share/festival/voices")
PAUSE = "sil"  # Festival's "pau", in ARPAbet spelling
INSTALL_HINT = "install it (Debian: apt-get install festival festvox-kdlpc16k, or scripts/install_engines.sh)"


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

    def __post_init__(self) -> None:
        refuse_reserved(self.name)


def refuse_reserved(name: str) -> None:
    if name in RESERVED_VOICES:
        raise ReservedVoiceError(
            f"Festival voice {name!r} is reserved for the project's independent evaluation and must never be used "
            f"to train, tune or select models; build corpora with {', '.join(VOICES)} instead"
        )


def festival_available(voice: str = "ked_diphone") -> bool:
    return shutil.which("festival") is not None and any(VOICE_DIR.glob(f"*/{voice}"))


def synthesise(text: str, voice: FestivalVoice = FestivalVoice()) -> Synthesis:
    return synthesise_batch([(text, voice)])[0]


def synthesise_batch(items: list[tuple[str, FestivalVoice]]) -> list[Synthesis]:
    """Speak each (text, voice) in one Festival process; phones (ARPAbet) tile each clip's audio."""
    return [Synthesis(audio, sr, tile_segments(segs, len(audio) / sr)) for segs, audio, sr in synthesise_raw(items)]


def synthesise_raw(items: list[tuple[str, FestivalVoice]]) -> list[tuple[list[Phone], object, int]]:
    """Per item: Festival's segments as it reports them (radio labels), the float32 audio and its rate."""
    for _, voice in items:
        refuse_reserved(voice.name)
        if not festival_available(voice.name):
            raise FestivalError(f"Festival voice {voice.name!r} is not installed; {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="lipsync-festival-") as tmp:
        script = [_utterance_scheme(text, voice, Path(tmp) / f"u{i}") for i, (text, voice) in enumerate(items)]
        (Path(tmp) / "batch.scm").write_text("\n".join(script) + "\n", encoding="utf-8")
        result = subprocess.run(["festival", "-b", str(Path(tmp) / "batch.scm")], capture_output=True, text=True)
        out = []
        for i in range(len(items)):
            wav, segs = Path(tmp) / f"u{i}.wav", Path(tmp) / f"u{i}.segs"
            if result.returncode != 0 or not wav.is_file() or not segs.is_file():
                raise FestivalError(
                    f"festival failed on {items[i][0][:40]!r} ({result.returncode}): {result.stderr.strip()[:300]}"
                )
            audio, sr = sf.read(wav, dtype="float32", always_2d=False)
            out.append((parse_segs(segs.read_text(encoding="utf-8")), audio, sr))
    return out


def _utterance_scheme(text: str, voice: FestivalVoice, stem: Path) -> str:
    quoted = text.replace("\\", " ").replace('"', "'")
    return (
        f"(voice_{voice.name})\n"
        f"(Parameter.set 'Duration_Stretch {voice.stretch:.3f})\n"
        f"(set! int_lr_params '((target_f0_mean {voice.f0_mean:.1f}) (target_f0_std {voice.f0_std:.1f}) "
        f"(model_f0_mean 170) (model_f0_std 34)))\n"
        f'(set! utt (utt.synth (Utterance Text "{quoted}")))\n'
        f'(utt.save.wave utt "{stem}.wav" \'riff)\n'
        f'(utt.save.segs utt "{stem}.segs")'
    )


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


def tile_segments(segs: list[Phone], duration: float) -> list[Phone]:
    """ARPAbet labels, zero-length segments dropped, pauses merged, the last phone ending with the audio."""
    out: list[Phone] = []
    for p in segs:
        label = to_arpabet(p.label)
        start, end = min(p.start, duration), min(p.end, duration)
        if end <= start:
            continue
        if out and label == PAUSE and out[-1].label == PAUSE:
            out[-1] = Phone(out[-1].start, end, PAUSE)
        else:
            out.append(Phone(start, end, label))
    last = out[-1]
    if last.end < duration:  # the wave may run a few ms beyond the last segment
        out[-1] = Phone(last.start, duration, last.label) if last.label == PAUSE else last
        if last.label != PAUSE:
            out.append(Phone(last.end, duration, PAUSE))
    return out
