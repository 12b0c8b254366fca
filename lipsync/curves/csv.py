"""The curves CSV: ``time,<channel>,...``, one row per frame, time = i / fps.

What training reads as targets and what conversion writes, so output can be
fed back as training data.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from lipsync.atomic import atomic_write
from lipsync.curves import Curves, CurvesError


def read_curves_csv(path: str | Path) -> Curves:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CurvesError(f"{path}: cannot read curves CSV ({e})") from e
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not rows[0] or rows[0][0].strip() != "time":
        raise CurvesError(f"{path}: first column must be 'time' (header 'time,<channel>,...')")
    header = [h.strip() for h in rows[0]]
    channels = tuple(header[1:])
    if not channels:
        raise CurvesError(f"{path}: header has no channel columns after 'time'")
    body = [r for r in rows[1:] if r]
    if len(body) < 2:
        raise CurvesError(f"{path}: needs at least 2 frames, has {len(body)}")
    try:
        table = np.array(body, dtype=np.float64)
    except ValueError as e:
        raise CurvesError(f"{path}: non-numeric or ragged rows ({e}); every row needs {len(header)} numbers") from e
    times = table[:, 0]
    steps = np.diff(times)
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0)) + 2
        raise CurvesError(f"{path}: time must increase every row (row {bad} does not)")
    fps = 1.0 / float(np.median(steps))
    if abs(times[0]) > 0.5 / fps:
        raise CurvesError(f"{path}: first frame is at {times[0]:.3f} s; frame 0 must be at time 0")
    fps = round(fps, 3)
    return Curves(table[:, 1:].astype(np.float32), channels, fps)


def write_curves_csv(curves: Curves, path: str | Path, overwrite: bool = True, decimals: int = 4) -> None:
    # One format string per row, written in blocks: conversion writes thousands of these (the csv
    # module's per-value formatting was a third of its CPU time), and an hour of curves must not
    # become a million Python floats at once.
    row = ",".join(["%s"] + [f"%.{decimals}f"] * len(curves.channels)) + "\n"
    times = curves.times
    with atomic_write(path, "w", overwrite=overwrite, newline="", encoding="utf-8") as f:
        f.write(",".join(("time", *curves.channels)) + "\n")
        for start in range(0, curves.n_frames, 4096):
            block = curves.values[start : start + 4096].tolist()
            stamps = (f"{t:.6f}".rstrip("0").rstrip(".") or "0" for t in times[start : start + 4096])
            f.write("".join(row % (t, *v) for t, v in zip(stamps, block)))
