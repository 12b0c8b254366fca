"""Rhubarb Lip Sync-compatible mouth cues (shapes A-H and X) from oculus15 curves.

2D tools (After Effects, Moho, OpenToonz, Spine, Godot and Unity plugins) read
Rhubarb's output. We write three of its layouts:

- TSV: one ``start<TAB>shape`` line per cue, then a last line ``end<TAB>X``
  (the mouth closes when the audio ends);
- JSON: ``{"metadata": {"soundFile", "duration"}, "mouthCues": [{"start",
  "end", "value"}, ...]}``;
- Moho switch data (``.dat``, which Moho and OpenToonz import onto a mouth
  switch layer): ``MohoSwitch1``, then ``<frame> <shape>`` per cue, frames
  counted from 1 at the curves' frame rate, and the rest shape at the frame
  where the audio ends. The layer's drawings are named after the shapes:
  A-H and X, or Preston Blair's mouth names (Papagayo's set, ``PRESTON_BLAIR``).

TSV and JSON times are in seconds with two decimals, as Rhubarb writes them.

Viseme -> shape mapping (Rhubarb's shape descriptions in brackets):

====== ======================================== =========================
shape  Rhubarb meaning                          oculus15 visemes
====== ======================================== =========================
X      idle, mouth at rest (silence)            sil
A      closed lips, slight pressure (P B M)     PP
B      slightly open, clenched teeth (K S T EE) TH DD kk CH SS
C      open mouth (EH AE, i in "tip")           E ih
D      wide open (AA)                           aa
E      slightly rounded (AO ER)                 oh RR
F      puckered (UW OW W)                       ou
G      upper teeth on lower lip (F V)           FF
H      tongue raised (long L)                   nn
====== ======================================== =========================

Each frame takes the shape whose strongest viseme is strongest; it is X when
``sil`` wins or no mouth viseme reaches ``REST_LEVEL``. Like Rhubarb, cues too
short to register on screen (under ``MIN_CUE_S``, Rhubarb uses 7 cs) are
merged away: shortest first, each into the neighbour whose shape scores
higher over the short cue's frames.
"""
from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipsync.atomic import atomic_write
from lipsync.curves import Curves, viseme_columns

SHAPES = ("A", "B", "C", "D", "E", "F", "G", "H", "X")
VISEME_SHAPE = {
    "sil": "X", "PP": "A", "FF": "G", "TH": "B", "DD": "B", "kk": "B", "CH": "B", "SS": "B",
    "nn": "H", "RR": "E", "aa": "D", "E": "C", "ih": "C", "oh": "E", "ou": "F",
}
REST_LEVEL = 0.15
MIN_CUE_S = 0.07
# Each shape's Preston Blair mouth (the names of Papagayo's drawings); WQ, a rounder U, has no shape of its own.
PRESTON_BLAIR = {"A": "MBP", "B": "etc", "C": "E", "D": "AI", "E": "O", "F": "U", "G": "FV", "H": "L", "X": "rest"}


@dataclass(frozen=True)
class MouthCue:
    start: float
    end: float
    value: str


def shape_scores(curves: Curves) -> np.ndarray:
    """[frames, 9] score of each shape (column order ``SHAPES``): its strongest viseme."""
    columns = viseme_columns(curves, VISEME_SHAPE, "Rhubarb cues")
    scores = np.zeros((curves.n_frames, len(SHAPES)), dtype=np.float32)
    for column, shape in zip(columns, VISEME_SHAPE.values()):
        col = SHAPES.index(shape)
        scores[:, col] = np.maximum(scores[:, col], curves.values[:, column])
    return scores


def frame_shapes(scores: np.ndarray, rest_level: float = REST_LEVEL) -> np.ndarray:
    """[frames] index into SHAPES for each frame."""
    x = SHAPES.index("X")
    mouth = scores.copy()
    mouth[:, x] = -np.inf
    best = mouth.argmax(axis=1)
    best_level = mouth[np.arange(len(best)), best]
    at_rest = (scores[:, x] >= best_level) | (best_level < rest_level)
    return np.where(at_rest, x, best)


def cue_runs(curves: Curves, min_cue_s: float = MIN_CUE_S,
             rest_level: float = REST_LEVEL) -> list[tuple[int, int, str]]:
    """The cues as runs of whole frames, (first frame, end frame, shape), covering every frame with no gaps;
    each at least ``min_cue_s`` long unless the clip is shorter."""
    if curves.n_frames == 0:
        return [(0, 0, "X")]  # Rhubarb's zero-length rest for empty animation
    scores = shape_scores(curves)
    runs = _merge_short_runs(_runs(frame_shapes(scores, rest_level)), scores, min_cue_s * curves.fps)
    return [(start, end, SHAPES[shape]) for start, end, shape in runs]


def mouth_cues(curves: Curves, min_cue_s: float = MIN_CUE_S, rest_level: float = REST_LEVEL) -> list[MouthCue]:
    """``cue_runs`` in seconds: cues covering [0, duration]."""
    return [MouthCue(start / curves.fps, end / curves.fps, shape)
            for start, end, shape in cue_runs(curves, min_cue_s, rest_level)]


def _runs(shapes: np.ndarray) -> list[list[int]]:
    """Run-length encoding as [start_frame, end_frame, shape]."""
    change = np.flatnonzero(np.diff(shapes)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(shapes)]])
    return [[int(s), int(e), int(shapes[s])] for s, e in zip(starts, ends)]


def _merge_short_runs(runs: list[list[int]], scores: np.ndarray, min_frames: float) -> list[list[int]]:
    """Absorb runs shorter than ``min_frames`` into a neighbour, shortest first (a heap keeps long files fast)."""
    n = len(runs)
    prev = list(range(-1, n - 1))
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    alive = [True] * n
    heap = [(r[1] - r[0], i) for i, r in enumerate(runs)]
    heapq.heapify(heap)

    def unlink(i: int) -> None:
        alive[i] = False
        if prev[i] >= 0:
            nxt[prev[i]] = nxt[i]
        if nxt[i] >= 0:
            prev[nxt[i]] = prev[i]

    while heap:
        length, i = heapq.heappop(heap)
        if not alive[i] or length != runs[i][1] - runs[i][0]:
            continue  # stale entry: the run has grown or gone since it was pushed
        if length >= min_frames:
            break
        left, right = prev[i], nxt[i]
        if left < 0 and right < 0:
            break  # the whole clip is one short cue
        start, end = runs[i][0], runs[i][1]
        span = scores[start:end]
        if right < 0 or (left >= 0 and span[:, runs[left][2]].mean() >= span[:, runs[right][2]].mean()):
            keep, other = left, right
            runs[keep][1] = end
        else:
            keep, other = right, left
            runs[keep][0] = start
        unlink(i)
        if other >= 0 and runs[other][2] == runs[keep][2]:  # the two neighbours now touch with one shape
            runs[keep][0] = min(runs[keep][0], runs[other][0])
            runs[keep][1] = max(runs[keep][1], runs[other][1])
            unlink(other)
        heapq.heappush(heap, (runs[keep][1] - runs[keep][0], keep))
    return [runs[i] for i in range(n) if alive[i]]


def _t(seconds: float) -> str:
    return f"{seconds:.2f}"


def write_rhubarb_tsv(curves: Curves, path: str | Path, overwrite: bool = True, min_cue_s: float = MIN_CUE_S) -> None:
    cues = mouth_cues(curves, min_cue_s)
    with atomic_write(path, "w", overwrite=overwrite, newline="", encoding="utf-8") as f:
        for cue in cues:
            f.write(f"{_t(cue.start)}\t{cue.value}\n")
        f.write(f"{_t(cues[-1].end)}\tX\n")


def write_rhubarb_json(
    curves: Curves, path: str | Path, sound_file: str = "", overwrite: bool = True, min_cue_s: float = MIN_CUE_S
) -> None:
    cues = mouth_cues(curves, min_cue_s)
    # Written by hand (not json.dump) to keep Rhubarb's two-decimal times, e.g. 0.00 rather than 0.0.
    lines = [
        "{",
        '  "metadata": {',
        f'    "soundFile": {json.dumps(sound_file, ensure_ascii=False)},',
        f'    "duration": {_t(cues[-1].end)}',
        "  },",
        '  "mouthCues": [',
        ",\n".join(f'    {{ "start": {_t(c.start)}, "end": {_t(c.end)}, "value": "{c.value}" }}' for c in cues),
        "  ]",
        "}",
    ]
    with atomic_write(path, "w", overwrite=overwrite, newline="", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_moho_dat(curves: Curves, path: str | Path, overwrite: bool = True, preston_blair: bool = False,
                   min_cue_s: float = MIN_CUE_S) -> None:
    """Moho switch data at the curves' frame rate: each cue keyed on its first frame, counted from 1."""
    runs = cue_runs(curves, min_cue_s)
    names = PRESTON_BLAIR if preston_blair else {shape: shape for shape in SHAPES}
    lines = ["MohoSwitch1"] + [f"{start + 1} {names[shape]}" for start, _, shape in runs]
    if runs[-1][2] != "X":
        lines.append(f"{curves.n_frames + 1} {names['X']}")
    with atomic_write(path, "w", overwrite=overwrite, newline="", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
