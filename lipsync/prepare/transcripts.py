"""Audio + transcript -> phone alignment (PocketSphinx forced alignment) -> curves.

PocketSphinx 5 aligns known text in two passes: a word-level pass over a
grammar made of the transcript, then a phone-level pass inside it. Its en-us
model and CMU dictionary ship with the package. Words the dictionary lacks are
reported; the clip is skipped, or (``oov="espeak"``) given espeak-ng's
pronunciation mapped to ARPAbet.

No aligner says how sure it is, so three symptoms of a wrong alignment are
recorded per clip and flagged past a threshold: the mean acoustic score per
frame, the share of phones squeezed to the 30 ms minimum (the transcript has
words the audio lacks), and loud audio aligned to silence (the audio has
words the transcript lacks).
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipsync.audio import SAMPLE_RATE, AudioError, load_audio
from lipsync.curves import Curves
from lipsync.prepare.problems import ClipSkipped, PrepareError
from lipsync.rigs.coarticulation import Phone, phones_to_curves

FRAME_S = 0.01  # PocketSphinx frames
MIN_PHONE_FRAMES = 3  # a 3-state HMM cannot be shorter
# Flag thresholds (measured on espeak-ng speech: good alignments score -35 to -50 a frame,
# squeeze under 15% of phones to the minimum and leave no loud audio in silence).
LOW_SCORE_PER_FRAME = -120.0
SQUEEZED_SHARE = 0.35
SPEECH_IN_SILENCE_S = 0.3
LOUD_DB_BELOW_PEAK = 30.0
OOV_CHOICES = ("skip", "espeak")

# espeak-ng's IPA (en-us) -> the CMU dictionary's ARPAbet, for words the dictionary lacks.
IPA_TO_ARPABET = {
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "ɡ": "G", "m": "M", "n": "N", "ŋ": "NG",
    "f": "F", "v": "V", "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH",
    "tʃ": "CH", "dʒ": "JH", "l": "L", "ɫ": "L", "ɹ": "R", "r": "R", "w": "W", "j": "Y", "ɾ": "D", "ʔ": "T",
    "i": "IY", "ɪ": "IH", "ᵻ": "IH", "e": "EY", "eɪ": "EY", "ɛ": "EH", "æ": "AE", "a": "AE", "ɑ": "AA",
    "ɒ": "AA", "ɔ": "AO", "o": "OW", "oʊ": "OW", "əʊ": "OW", "ʊ": "UH", "u": "UW", "ʌ": "AH", "ə": "AH",
    "ɐ": "AH", "ɚ": "ER", "ɜ": "ER", "ɝ": "ER", "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY", "iə": "IY AH",
    "ɛɹ": "EH R", "ɑɹ": "AA R", "ɔɹ": "AO R", "ɪɹ": "IH R", "ʊɹ": "UH R", "oːɹ": "AO R", "əl": "AH L",
}
_STRIP = "ˈˌːˑ̩̯-"


def transcript_words(text: str) -> list[str]:
    """Lower-case words as the dictionary spells them (apostrophes kept, other punctuation dropped)."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return [w.strip("'") for w in re.findall(r"[a-z0-9']+", text) if w.strip("'")]


def espeak_arpabet(word: str, voice: str = "en-us") -> str | None:
    """espeak-ng's pronunciation of ``word`` in ARPAbet, or None if a sound has no ARPAbet phone."""
    try:
        ipa = subprocess.run(["espeak-ng", "-q", "--ipa", "--sep=_", "-v", voice, word],
                             capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    phones = []
    for token in re.split(r"[_\s]+", ipa):
        token = "".join(ch for ch in token if ch not in "ˈˌ")
        if not token:
            continue
        mapped = IPA_TO_ARPABET.get(token) or IPA_TO_ARPABET.get("".join(ch for ch in token if ch not in _STRIP))
        if mapped is None:
            return None
        phones.append(mapped)
    return " ".join(phones) or None


@dataclass
class ForcedAlignment:
    phones: list[Phone]  # ARPAbet, silence left out
    words: list[tuple[float, float, str]]
    score_per_frame: float
    squeezed_share: float
    speech_in_silence_s: float

    def doubts(self) -> list[str]:
        out = []
        if self.score_per_frame < LOW_SCORE_PER_FRAME:
            out.append(f"low acoustic score ({self.score_per_frame:.0f} per frame; good alignments score above {LOW_SCORE_PER_FRAME:.0f})")
        if self.squeezed_share > SQUEEZED_SHARE:
            out.append(f"{100 * self.squeezed_share:.0f}% of phones squeezed to 30 ms (does the transcript have words the audio lacks?)")
        if self.speech_in_silence_s > SPEECH_IN_SILENCE_S:
            out.append(f"{self.speech_in_silence_s:.2f} s of loud audio aligned to silence (does the audio have words the transcript lacks?)")
        return out


class ForcedAligner:
    """One PocketSphinx decoder, reused across clips (building it takes ~0.3 s)."""

    def __init__(self):
        from pocketsphinx import Decoder

        # With default beams, or on digital silence (log energy of zero), the word pass
        # often ends outside the grammar ("Final result does not match the grammar"):
        # wide beams and seeded dither fix both.
        self.decoder = Decoder(samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL", dither=True, seed=1,
                               beam=1e-100, pbeam=1e-100, wbeam=1e-80)

    def pronunciation(self, word: str) -> str | None:
        return self.decoder.lookup_word(word)

    def add_word(self, word: str, phones: str) -> None:
        self.decoder.add_word(word, phones, True)

    def align(self, wave: np.ndarray, words: list[str]) -> ForcedAlignment | None:
        """Phones of ``words`` in 16 kHz ``wave``; None when the audio cannot be matched to the text."""
        pcm = (np.clip(wave, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        d = self.decoder
        try:
            d.set_align_text(" ".join(words))
            self._decode(pcm)
            if d.hyp() is None:
                return None
            d.set_alignment()
            self._decode(pcm)
            # The alignment's iterators are only valid while iterating: copy everything out now.
            word_spans, phones, scores = [], [], []
            for word in d.get_alignment():
                name = re.sub(r"\(\d+\)$", "", word.name)
                if name != "<sil>":
                    word_spans.append((word.start * FRAME_S, (word.start + word.duration) * FRAME_S, name))
                for phone in word:
                    if phone.name != "SIL":
                        phones.append(Phone(phone.start * FRAME_S, (phone.start + phone.duration) * FRAME_S, phone.name))
                        scores.append((phone.score, phone.duration))
        except RuntimeError:
            return None
        if not phones:
            return None
        frames = sum(n for _, n in scores)
        return ForcedAlignment(
            phones=phones,
            words=word_spans,
            score_per_frame=sum(s for s, _ in scores) / frames,
            squeezed_share=sum(n <= MIN_PHONE_FRAMES for _, n in scores) / len(scores),
            speech_in_silence_s=_loud_outside(wave, phones),
        )

    def _decode(self, pcm: bytes) -> None:
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()


def _loud_outside(wave: np.ndarray, phones: list[Phone]) -> float:
    """Seconds of loud 10 ms frames that no phone covers."""
    hop = round(FRAME_S * SAMPLE_RATE)
    n = len(wave) // hop
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(wave[: n * hop].reshape(n, hop) ** 2, axis=1))
    loud = rms > max(rms.max() * 10 ** (-LOUD_DB_BELOW_PEAK / 20), 1e-4)
    covered = np.zeros(n, bool)
    for p in phones:
        covered[int(p.start / FRAME_S) : int(np.ceil(p.end / FRAME_S))] = True
    return float(np.sum(loud & ~covered)) * FRAME_S


def read_transcript(path: Path) -> list[str]:
    try:
        words = transcript_words(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise PrepareError(path, f"cannot read transcript ({e})", "save it as UTF-8 text") from None
    if not words:
        raise PrepareError(path, "transcript has no words", "write what is said in the audio")
    return words


def prepare_transcripts(
    input_dir: str | Path,
    out: str | Path,
    *,
    rig: str = "oculus15",
    fps: float = 30.0,
    oov: str = "skip",
    speaker: str | None = None,
    overwrite: bool = False,
    skip_bad: bool = False,
    copy_audio: bool = True,
    val_fraction: float = 0.0,
    print_report: bool = True,
) -> dict:
    """Every ``*.txt`` transcript under ``input_dir`` with its audio (same name) -> a corpus."""
    from lipsync.prepare.build import PreparedClip, build_corpus, find_inputs
    from lipsync.rigs import load_rig

    if oov not in OOV_CHOICES:
        raise ValueError(f"oov must be one of {', '.join(OOV_CHOICES)}, got {oov!r}")
    the_rig = load_rig(rig)
    clips, problems = find_inputs(input_dir, (".txt",), speaker)
    aligner = ForcedAligner()

    def convert(clip) -> PreparedClip:
        words = read_transcript(clip.source)
        missing = sorted({w for w in words if aligner.pronunciation(w) is None})
        guessed = {}
        if missing and oov == "skip":
            raise ClipSkipped(clip.source, f"word(s) not in the dictionary: {', '.join(missing)}",
                              "pass --oov espeak to guess their pronunciation, or respell them")
        for word in missing:
            guessed[word] = espeak_arpabet(word)
            if guessed[word] is None:
                raise PrepareError(clip.source, f"no pronunciation for {word!r} (not in the dictionary, espeak-ng's has no ARPAbet match)",
                                   "respell the word as it sounds")
            aligner.add_word(word, guessed[word])
        try:
            wave = load_audio(clip.audio)
        except AudioError as e:
            raise PrepareError(clip.audio, str(e).removeprefix(f"{clip.audio}:").strip(), "re-export it as wav, flac, ogg or mp3") from None
        result = aligner.align(wave, words)
        if result is None:
            raise PrepareError(clip.audio, "forced alignment failed: the audio cannot be matched to its transcript",
                               "check that the transcript is what this audio says")
        n_frames = round(len(wave) / SAMPLE_RATE * fps)
        curves = phones_to_curves(result.phones, the_rig, fps, n_frames=n_frames, phoneset="arpabet")
        notes = {"words": len(words), "oov_guessed": guessed, "score_per_frame": round(result.score_per_frame, 2),
                 "squeezed_share": round(result.squeezed_share, 3), "speech_in_silence_s": round(result.speech_in_silence_s, 3)}
        flags = result.doubts() + ([f"pronunciation guessed by espeak-ng for {', '.join(guessed)}"] if guessed else [])
        return PreparedClip(curves=Curves(curves, the_rig.channels, fps), phones=result.phones, notes=notes, flags=flags)

    return build_corpus(
        out, clips, convert, rig=the_rig, fps=fps, source="transcripts",
        options={"rig": rig, "fps": fps, "oov": oov}, input_problems=problems, overwrite=overwrite,
        skip_bad=skip_bad, copy_audio=copy_audio, val_fraction=val_fraction, print_report=print_report,
    )
