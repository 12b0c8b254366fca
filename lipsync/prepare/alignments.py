"""Phone alignments (Praat TextGrid, HTS or festvox ``.lab``, ``start end phone`` TSV) -> curves.

Labels may be ARPAbet (stress digits allowed), IPA, the Montreal Forced
Aligner's sets (``english_us_arpa`` is ARPAbet, ``english_mfa`` is IPA with
ASCII diphthongs such as ``aj``), or one of Festival's phone sets
(``festival:russian`` …, read through ``rigs/phonemes/festival_ipa.yaml``).
A festvox ``.lab`` (the ESPS/xlabel files of festvox voice databases such as
CMU ARCTIC: a header, a ``#`` line, then ``end_time colour label`` lines) is
told from an HTS one by that ``#`` line. Silence labels (``sil``, ``sp``, ``spn``,
empty intervals) are dropped: the time they leave is silence to the
coarticulation model, which ramps the mouth closed there.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from lipsync.curves import Curves
from lipsync.data.alignment import AlignmentError, read_alignment_tsv
from lipsync.prepare.problems import PrepareError
from lipsync.rigs import Rig
from lipsync.rigs.coarticulation import Phone, phones_to_curves
from lipsync.rigs.phonemes import FESTIVAL_PHONESETS, PHONESETS, UnknownPhoneError, detect_phoneset, festival_to_ipa, visemes_for

SILENCE_LABELS = frozenset({"", "sil", "sp", "spn", "pau", "<eps>", "h#", "#", "_", "silence", "<sil>"})
PHONE_TIER_NAMES = ("phones", "phone", "phonemes", "phoneme", "segments", "segment")
ALIGNMENT_SUFFIXES = (".textgrid", ".lab", ".tsv")
PHONESET_CHOICES = ("auto", "arpabet", "ipa", "mfa", "espeak") + tuple(f"festival:{name}" for name in FESTIVAL_PHONESETS)
HTS_UNITS_PER_SECOND = 10_000_000  # HTS times are in 100 ns units
_HTS_CURRENT_PHONE = re.compile(r"-([^-+]+)\+")


def read_textgrid(path: str | Path, tier: str | None = None) -> list[Phone]:
    """The phone tier's intervals, empty ones included (they are silence)."""
    from praatio import textgrid
    from praatio.utilities.errors import PraatioException

    path = Path(path)
    try:
        grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=True, reportingMode="error")
    except (PraatioException, ValueError, IndexError, OSError, UnicodeDecodeError) as e:
        raise PrepareError(path, f"not a readable TextGrid ({type(e).__name__}: {e})".replace("\n", " "),
                           "save it again from Praat or the aligner") from None
    names = list(grid.tierNames)
    interval_tiers = [n for n in names if isinstance(grid.getTier(n), textgrid.IntervalTier)]
    if tier is None:
        tier = next((n for n in interval_tiers if n.lower() in PHONE_TIER_NAMES), None)
        if tier is None and len(interval_tiers) == 1:
            tier = interval_tiers[0]
    if tier not in interval_tiers:
        raise PrepareError(path, f"no phone tier (interval tiers: {', '.join(interval_tiers) or 'none'})",
                           "name the phone tier with --tier")
    entries = grid.getTier(tier).entries
    if not any(e.label.strip() for e in entries):
        raise PrepareError(path, f"tier {tier!r} has no labelled intervals", "give the aligner's phone tier, not an empty one")
    phones = [Phone(float(e.start), float(e.end), e.label.strip()) for e in entries]
    _check_order(path, phones)
    return phones


def read_hts_lab(path: str | Path) -> list[Phone]:
    """``start end label`` lines in 100 ns units; full-context labels give their current phone."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PrepareError(path, f"cannot read ({e})", "give a UTF-8 HTS label file") from None
    phones = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not (fields[0].isdigit() and fields[1].isdigit()):
            raise PrepareError(path, f"line {number} is not 'start end label' with times in 100 ns units",
                               "give time-aligned HTS labels (e.g. 0 1200000 x^x-sil+hh=...)")
        match = _HTS_CURRENT_PHONE.search(fields[2])
        label = match.group(1) if match else fields[2]
        phones.append(Phone(int(fields[0]) / HTS_UNITS_PER_SECOND, int(fields[1]) / HTS_UNITS_PER_SECOND, label))
    if not phones:
        raise PrepareError(path, "has no labels", "give a time-aligned HTS label file")
    _check_order(path, phones)
    return phones


def read_festvox_lab(path: str | Path) -> list[Phone]:
    """ESPS/xlabel phone labels: header lines, a ``#`` line, then ``end_time colour label``; each phone
    starts where the one before it ended (the first at 0)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PrepareError(path, f"cannot read ({e})", "give a UTF-8 festvox label file") from None
    stripped = [line.strip() for line in lines]
    if "#" not in stripped:
        raise PrepareError(path, "has no '#' line ending the header", "give a festvox/ESPS .lab file")
    body_start = stripped.index("#") + 1
    phones, start = [], 0.0
    for number, line in enumerate(lines[body_start:], start=body_start + 1):
        fields = line.split()
        if not fields:
            continue
        try:
            end = float(fields[0])
        except ValueError:
            end = None
        if end is None or len(fields) not in (2, 3):
            raise PrepareError(path, f"line {number} is not 'end_time colour label'", "give a festvox/ESPS .lab file")
        phones.append(Phone(start, end, fields[-1] if len(fields) == 3 else ""))
        start = end
    if not phones:
        raise PrepareError(path, "has no labels after the '#' line", "give a time-aligned festvox label file")
    _check_order(path, phones)
    return phones


def read_any_alignment(path: str | Path, tier: str | None = None) -> list[Phone]:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".textgrid":
        return read_textgrid(path, tier)
    if suffix == ".lab":
        with open(path, "rb") as f:
            festvox = b"#" in (line.strip() for line in f)
        return read_festvox_lab(path) if festvox else read_hts_lab(path)
    try:
        return read_alignment_tsv(path)
    except AlignmentError as e:
        raise PrepareError(path, str(e).removeprefix(f"{path}:").strip(), "write 'start<TAB>end<TAB>phone' lines in seconds") from None


def _check_order(path: Path, phones: Sequence[Phone]) -> None:
    for i, p in enumerate(phones):
        if p.end < p.start:
            raise PrepareError(path, f"phone {i + 1} ({p.label!r}) ends at {p.end:g} s before it starts at {p.start:g} s",
                               "fix the interval's times")
        if i and p.start < phones[i - 1].end - 1e-6:
            raise PrepareError(path, f"phone {i + 1} ({p.label!r}) starts at {p.start:g} s before phone {i} ends at "
                               f"{phones[i - 1].end:g} s; intervals overlap", "give one tier of non-overlapping phones")


def sounding_phones(phones: Sequence[Phone]) -> list[Phone]:
    """Phones without silence labels; the gaps they leave are silence to the coarticulation model."""
    return [p for p in phones if p.label.strip().lower() not in SILENCE_LABELS]


def choose_phoneset(path: Path, labels: Sequence[str], phoneset: str = "auto") -> str:
    """The phone set that maps every label: the given one, else the detected one, else any that fits."""
    if phoneset not in PHONESET_CHOICES:
        raise ValueError(f"unknown phone set {phoneset!r}; use one of {', '.join(PHONESET_CHOICES)}")
    labels = sorted(set(labels))
    if phoneset == "mfa" or phoneset.startswith("festival:"):  # Festival's labels were turned into IPA
        phoneset = "ipa"
    candidates = [phoneset] if phoneset != "auto" else [detect_phoneset(labels)] + [s for s in PHONESETS if s != detect_phoneset(labels)]
    for candidate in candidates:
        if not _unknown(labels, candidate):
            return candidate
    closest = min(candidates, key=lambda c: len(_unknown(labels, c)))  # name the set that fits best
    unknown = _unknown(labels, closest)
    raise PrepareError(path, f"unknown phone(s) {', '.join(map(repr, unknown[:10]))} for the {closest} phone set",
                       f"relabel them, pass --phoneset, or add them to lipsync/rigs/phonemes/{closest}.yaml")


def _unknown(labels: Sequence[str], phoneset: str) -> list[str]:
    bad = []
    for label in labels:
        try:
            visemes_for(label, phoneset)
        except UnknownPhoneError:
            bad.append(label)
    return bad


def alignment_to_curves(path: Path, phones: Sequence[Phone], rig: Rig, fps: float, n_frames: int, phoneset: str = "auto"):
    """(sounding phones, curves [n_frames, len(rig)], phone set used)."""
    if phoneset.startswith("festival:"):
        phones = _festival_to_ipa(path, phones, phoneset.removeprefix("festival:"))
    sounding = sounding_phones(phones)
    if not sounding:
        raise PrepareError(path, "has only silence labels", "give an alignment with the spoken phones")
    chosen = choose_phoneset(path, [p.label for p in sounding], phoneset)
    return sounding, phones_to_curves(sounding, rig, fps, n_frames=n_frames, phoneset=chosen), chosen


def _festival_to_ipa(path: Path, phones: Sequence[Phone], name: str) -> list[Phone]:
    try:
        return [Phone(p.start, p.end, festival_to_ipa(p.label, name)) for p in phones]
    except UnknownPhoneError as e:
        raise PrepareError(path, str(e), "relabel it or add it to lipsync/rigs/phonemes/festival_ipa.yaml") from None


def prepare_alignments(
    input_dir: str | Path,
    out: str | Path,
    *,
    rig: str = "oculus15",
    fps: float = 30.0,
    phoneset: str = "auto",
    tier: str | None = None,
    fit_to_audio: bool = False,
    speaker: str | None = None,
    overwrite: bool = False,
    skip_bad: bool = False,
    copy_audio: bool = True,
    val_fraction: float = 0.0,
    print_report: bool = True,
) -> dict:
    """Every TextGrid/.lab/.tsv under ``input_dir`` with its audio (same name) -> a corpus."""
    from lipsync.prepare.build import PreparedClip, audio_seconds, build_corpus, check_lengths, find_inputs
    from lipsync.rigs import RigError, load_rig

    the_rig = load_rig(rig)
    if the_rig.from_oculus15 is None:
        raise RigError(f"rig {rig!r} cannot be driven from phones (no from_oculus15 table); use oculus15 or arkit52")
    # NAME.phones.tsv is what convert.py --text --format phones writes beside NAME's curves
    clips, problems = find_inputs(input_dir, ALIGNMENT_SUFFIXES, speaker, strip_suffixes=(".phones",))

    def convert(clip) -> PreparedClip:
        phones = read_any_alignment(clip.source, tier)
        audio_s = audio_seconds(clip.audio)
        if not fit_to_audio:
            # Aligners end the last interval at the file's end; only phones past the audio are wrong.
            end = max(p.end for p in phones)
            if end > audio_s:
                check_lengths(clip.audio, audio_s, end, fps, "alignment")
        sounding, curves, used = alignment_to_curves(clip.source, phones, the_rig, fps, round(audio_s * fps), phoneset)
        notes = {"phoneset": used, "phones": len(sounding), "silence_intervals": len(phones) - len(sounding),
                 "spoken_noise": sum(p.label.lower() == "spn" for p in phones)}
        flags = [f"{notes['spoken_noise']} 'spn' interval(s) (unknown words) animated as silence"] if notes["spoken_noise"] else []
        return PreparedClip(curves=Curves(curves, the_rig.channels, fps), phones=sounding, notes=notes, flags=flags)

    return build_corpus(
        out, clips, convert, rig=the_rig, fps=fps, source="alignments",
        options={"rig": rig, "fps": fps, "phoneset": phoneset, "tier": tier, "fit_to_audio": fit_to_audio},
        input_problems=problems, overwrite=overwrite, skip_bad=skip_bad, copy_audio=copy_audio,
        val_fraction=val_fraction, print_report=print_report,
    )
