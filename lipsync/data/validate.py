"""Load and check a whole corpus before anything trains.

Every selected clip is read into RAM and checked: audio readable and not
silent, targets from a curves CSV (channels exactly the rig's) or from a phone
alignment, audio and curves lengths within two frames, no NaN, values in
[0, 1]. A bad clip is one ``Problem`` line; the run refuses to start unless
told to skip bad clips, because training on silently broken data wastes the
whole run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from lipsync.audio import SAMPLE_RATE, AudioError, load_audio, num_frames
from lipsync.curves import Curves, CurvesError
from lipsync.curves.csv import read_curves_csv
from lipsync.data.alignment import AlignmentError, read_alignment_tsv
from lipsync.data.manifest import (
    SPLITS,
    ClipEntry,
    CorpusError,
    ManifestError,
    Problem,
    corpus_roots,
    manifest_path,
    reserved_ids,
    scan_manifest,
)
from lipsync.rigs import Rig, load_rig
from lipsync.rigs.coarticulation import phones_to_curves
from lipsync.rigs.phonemes import UnknownPhoneError

__all__ = ["Clip", "CorpusError", "ManifestError", "Problem", "load_clips", "validate_corpus"]

log = logging.getLogger(__name__)

LENGTH_TOLERANCE_FRAMES = 2
# Curves CSVs are written with 4 decimals; anything further out than this is a real error.
RANGE_TOLERANCE = 1e-4
SKIP_HINT = "set data.skip_bad_clips=true to train without the bad clips"
ALIGNMENT_SUFFIXES = (".tsv", ".txt")


@dataclass
class Clip:
    id: str
    speaker: str | None
    split: str | None
    audio: np.ndarray  # float32, 16 kHz mono
    curves: np.ndarray  # float32 [num_frames(len(audio), fps), len(rig)]: round(seconds * fps), halves up

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def load_clips(
    root: str | Path | Sequence[str | Path],
    rig: Rig | str,
    fps: float,
    splits: Iterable[str] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> list[Clip]:
    """Every clip of the corpus (or of ``splits``), loaded and validated.

    Raises CorpusError listing every problem unless ``skip_bad``; then bad
    clips are logged and dropped. Raises CorpusError if no clip is left.
    A list of corpora gives their clips in list order; each must have clips
    of ``splits``, and a clip id may be in only one of them.
    """
    roots = corpus_roots(root)
    if len(roots) > 1:
        return _load_corpora(roots, rig, fps, splits, skip_bad, progress)
    root = roots[0]
    clips: list[Clip] = []
    problems: list[Problem] = []
    for result in _check_corpus(root, rig, fps, splits, progress):
        (problems if isinstance(result, Problem) else clips).append(result)
    where = manifest_path(root).parent
    if problems and not skip_bad:
        raise CorpusError(
            f"{where}: {len(problems)} problem(s) in the corpus:\n"
            + "\n".join(str(p) for p in problems)
            + f"\nfix them, or {SKIP_HINT}"
        )
    if problems:
        log.warning(
            "%s: skipping %d bad clip(s)/line(s) (data.skip_bad_clips=true):\n%s",
            where,
            len(problems),
            "\n".join(str(p) for p in problems),
        )
    if not clips:
        chosen = f" in split(s) {', '.join(sorted(map(str, _split_set(splits))))}" if splits is not None else ""
        if reserved_ids(root):
            raise CorpusError(
                f"{where}: no usable clips{chosen}: this is the blind test (the reserved voices, test split only); "
                "score a model on it with scripts/evaluate.py --split test, never train, tune or select models on it"
            )
        raise CorpusError(
            f"{where}: no usable clips{chosen}; check the manifest's 'split' fields and the problems above"
        )
    return clips


def _load_corpora(roots: list[Path], rig, fps, splits, skip_bad, progress) -> list[Clip]:
    clips: list[Clip] = []
    origin: dict[str, Path] = {}
    for root in roots:
        loaded = load_clips(root, rig, fps, splits, skip_bad, progress)
        for clip in loaded:
            if clip.id in origin:
                raise CorpusError(
                    f"clip id {clip.id!r} is in both {manifest_path(origin[clip.id])} and {manifest_path(root)}; "
                    "ids must be unique across data.root's corpora: rename the clip in one of the manifests"
                )
            origin[clip.id] = root
        clips += loaded
        log.info("data.root: %d clips from %s", len(loaded), root)
    return clips


def validate_corpus(root: str | Path, rig: Rig | str, fps: float) -> list[Problem]:
    """Every problem of a corpus, for reports; an empty list means it is ready to train on."""
    try:
        return [r for r in _check_corpus(root, rig, fps, None, progress=False) if isinstance(r, Problem)]
    except ManifestError as e:
        return [Problem(str(manifest_path(root)), str(e).split(": ", 1)[-1], "see data/README.md for the format")]


def _split_set(splits: Iterable[str] | None) -> set[str] | None:
    if splits is None:
        return None
    chosen = {splits} if isinstance(splits, str) else set(splits)
    unknown = chosen - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; use {', '.join(SPLITS)}")
    return chosen


def _check_corpus(
    root: str | Path, rig: Rig | str, fps: float, splits: Iterable[str] | None, progress: bool
) -> Iterator[Clip | Problem]:
    """A Clip or a Problem per selected clip, after one Problem per bad manifest line."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    rig = load_rig(rig) if isinstance(rig, str) else rig
    chosen = _split_set(splits)
    entries, line_problems = scan_manifest(root)
    yield from line_problems
    selected = [e for e in entries if chosen is None or e.split in chosen]
    if rig.from_oculus15 is None and any(e.curves is None for e in selected):
        raise CorpusError(
            f"{manifest_path(root)}: rig {rig.name!r} cannot be driven from phone alignments, "
            "but some clips have only an 'alignment'; give curves CSVs for this rig or train the oculus15 rig"
        )
    for entry in tqdm(selected, desc="checking corpus", unit="clip", disable=not progress, leave=False):
        try:
            yield _load_clip(entry, rig, fps)
        except _BadClip as bad:
            yield bad.as_problem(entry)


class _BadClip(Exception):
    def __init__(self, file: Path, problem: str, fix: str):
        super().__init__(problem)
        self.file, self.problem, self.fix = file, problem, fix

    def as_problem(self, entry: ClipEntry) -> Problem:
        return Problem(str(self.file), f"clip {entry.id!r} (manifest line {entry.line}): {self.problem}", self.fix)


def _load_clip(entry: ClipEntry, rig: Rig, fps: float) -> Clip:
    audio = _load_audio(entry)
    n_frames = num_frames(len(audio), fps)
    if entry.curves is not None:
        curves = _curves_from_csv(entry, entry.curves, rig, fps, len(audio), n_frames)
    else:
        curves = _curves_from_alignment(entry, entry.alignment, rig, fps, len(audio), n_frames)
    return Clip(entry.id, entry.speaker, entry.split, audio, curves)


def _load_audio(entry: ClipEntry) -> np.ndarray:
    path = entry.audio
    remove = f", or remove manifest line {entry.line}"
    if not path.is_file():
        fix = f"correct the 'audio' path (relative to the corpus folder){remove}"
        raise _BadClip(path, "audio file not found", fix)
    try:
        return load_audio(path)
    except AudioError as e:
        what = _without_path(str(e), path)
        if "silent" in what:
            fix = f"replace it with a recording that contains speech{remove}"
        else:
            fix = f"re-export it as wav, flac, ogg or mp3{remove}"
        raise _BadClip(path, what, fix) from None


def _curves_from_csv(
    entry: ClipEntry, path: Path, rig: Rig, fps: float, n_samples: int, n_frames: int
) -> np.ndarray:
    remove = f", or remove manifest line {entry.line}"
    if not path.is_file():
        raise _BadClip(path, "curves file not found", f"correct the 'curves' path{remove}")
    try:
        curves = read_curves_csv(path)
    except CurvesError as e:
        fix = f"rewrite it as 'time,<channel>,...' (data/README.md){remove}"
        raise _BadClip(path, _without_path(str(e), path), fix) from None
    if len(set(curves.channels)) != len(curves.channels):
        dupes = sorted({c for c in curves.channels if curves.channels.count(c) > 1})
        raise _BadClip(path, f"duplicate channel column(s) {', '.join(dupes)}", f"keep one column per channel{remove}")
    missing = [c for c in rig.channels if c not in curves.channels]
    extra = [c for c in curves.channels if c not in rig.channels]
    if missing or extra:
        parts = ([f"missing channel(s) {', '.join(missing)}"] if missing else []) + (
            [f"extra channel(s) {', '.join(extra)}"] if extra else []
        )
        raise _BadClip(
            path,
            f"channels do not match rig {rig.name!r}: " + "; ".join(parts),
            f"give exactly the rig's channels ({' '.join(rig.channels)}) or train with the matching rig",
        )
    values = curves.values
    if not np.all(np.isfinite(values)):
        frame, column = np.argwhere(~np.isfinite(values))[0]
        raise _BadClip(
            path,
            f"NaN or infinite value (first at frame {frame}, channel {curves.channels[column]})",
            f"regenerate the curves{remove}",
        )
    low, high = float(values.min()), float(values.max())
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise _BadClip(
            path,
            f"values outside [0, 1] (min {low:.4g}, max {high:.4g})",
            f"rescale or clip the curves to [0, 1]{remove}",
        )
    expected = num_frames(n_samples, curves.fps)
    if abs(curves.n_frames - expected) > LENGTH_TOLERANCE_FRAMES:
        raise _BadClip(
            path,
            f"{curves.n_frames} frames at {curves.fps:g} fps ({curves.duration:.3f} s) but the audio is "
            f"{n_samples / SAMPLE_RATE:.3f} s ({expected} frames); more than {LENGTH_TOLERANCE_FRAMES} frames apart",
            f"check that curves and audio belong to the same clip{remove}",
        )
    order = [curves.channels.index(c) for c in rig.channels]
    reordered = Curves(values[:, order], rig.channels, curves.fps)
    # One interpolation both resamples to the training fps and trims/holds the ends to the audio's length.
    out = reordered.resample(fps, n_frames=n_frames).values
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def _curves_from_alignment(
    entry: ClipEntry, path: Path, rig: Rig, fps: float, n_samples: int, n_frames: int
) -> np.ndarray:
    remove = f", or remove manifest line {entry.line}"
    if not path.is_file():
        raise _BadClip(path, "alignment file not found", f"correct the 'alignment' path{remove}")
    if path.suffix.lower() not in ALIGNMENT_SUFFIXES:
        raise _BadClip(
            path,
            f"alignment format {path.suffix!r} is not read at training time",
            "convert it to a 'start end phone' TSV with scripts/prepare_data.py",
        )
    try:
        phones = read_alignment_tsv(path)
        curves = phones_to_curves(phones, rig, fps, n_frames=n_frames)
    except AlignmentError as e:
        fix = f"write 'start<TAB>end<TAB>phone' lines in seconds{remove}"
        raise _BadClip(path, _without_path(str(e), path), fix) from None
    except UnknownPhoneError as e:
        fix = f"add the phone to the phoneme table or relabel it{remove}"
        raise _BadClip(path, str(e).split(";")[0], fix) from None
    duration = n_samples / SAMPLE_RATE
    end = max(p.end for p in phones)
    if end > duration + LENGTH_TOLERANCE_FRAMES / fps:
        raise _BadClip(
            path,
            f"phones run to {end:.3f} s but the audio is {duration:.3f} s; "
            f"more than {LENGTH_TOLERANCE_FRAMES} frames apart",
            f"check that alignment and audio belong to the same clip{remove}",
        )
    return curves


def _without_path(message: str, path: Path) -> str:
    """Library errors start with the path; the Problem names the file already."""
    prefix = f"{path}:"
    message = message[len(prefix) :].strip() if message.startswith(prefix) else message
    return message.replace(str(path), path.name)
