"""Live Link Face CSV for arkit52 curves, in the layout the iPhone app exports.

Header: ``Timecode,BlendshapeCount,<52 blendshapes in Live Link order>,<9
head/eye angles>``; one row per frame with ``BlendshapeCount`` = 61. The
timecode is ``HH:MM:SS:FF.fff``: ``FF`` is the frame within the second and
``.fff`` the fraction of a frame (not milliseconds), as the app writes it. The
take starts at 00:00:00:00.000. Head and eye angles are written as 0 (the
model predicts none). The count column is spelled as ``lipsync.prepare``
reads it; importers match it case-insensitively.
"""
from __future__ import annotations

import math
from pathlib import Path

from lipsync.atomic import atomic_write
from lipsync.curves import Curves, CurvesError
from lipsync.rigs import Rig


def livelink_timecode(frame: int, fps: float) -> str:
    """Timecode of frame ``frame`` on a ``fps`` grid starting at midnight."""
    if float(fps).is_integer():  # exact integer arithmetic for the usual rates
        rate = int(fps)
        seconds, ff = divmod(frame, rate)
        fraction = 0.0
    else:
        t = frame / fps
        seconds = math.floor(t + 1e-9)
        position = (t - seconds) * fps
        ff = math.floor(position + 1e-6)
        fraction = max(position - ff, 0.0)
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}:{int(ff):02d}{f'{fraction:.3f}'[1:]}"


def livelink_column_order(rig: Rig, channels: tuple[str, ...]) -> list[int]:
    """Index into ``channels`` for each Live Link column (names matched case-insensitively)."""
    if rig.livelink_columns is None:
        raise CurvesError(f"rig {rig.name!r} has no Live Link Face columns; the livelink format needs an arkit52 model")
    where = {name.lower(): i for i, name in enumerate(channels)}
    missing = [c for c in rig.livelink_columns if c.lower() not in where]
    if missing:
        raise CurvesError(f"curves lack Live Link columns {missing[:5]}; the livelink format needs arkit52 channels")
    return [where[c.lower()] for c in rig.livelink_columns]


def write_livelink_csv(curves: Curves, path: str | Path, rig: Rig, overwrite: bool = True, decimals: int = 6) -> None:
    order = livelink_column_order(rig, curves.channels)
    extras = rig.livelink_extra_columns
    count = len(order) + len(extras)
    zeros = "," + ",".join(["0"] * len(extras)) if extras else ""
    fmt = f"{{:.{decimals}f}}"
    with atomic_write(path, "w", overwrite=overwrite, newline="", encoding="utf-8") as f:
        f.write(",".join(("Timecode", "BlendshapeCount", *rig.livelink_columns, *extras)) + "\n")
        values = curves.values[:, order]
        for i, row in enumerate(values):
            f.write(f"{livelink_timecode(i, curves.fps)},{count}," + ",".join(fmt.format(v) for v in row) + zeros + "\n")
