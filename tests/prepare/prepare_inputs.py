"""Real small inputs for the prepare tests: Live Link Face CSVs in the app's layout, tones."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lipsync.audio import write_audio
from lipsync.rigs import load_rig

LIVELINK_FPS = 60


def jaw_motion(t: np.ndarray) -> np.ndarray:
    """The known motion every Live Link test capture carries on JawOpen."""
    return 0.5 + 0.4 * np.sin(2 * np.pi * 1.5 * t)


def write_tone(path: Path, seconds: float, sample_rate: int = 16_000, peak: float = 0.3) -> Path:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    write_audio(path, (peak * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sample_rate)
    return path


def write_livelink_csv(
    path: Path,
    seconds: float = 2.0,
    fps: int = LIVELINK_FPS,
    start_frames: float = (19 * 3600 + 55 * 60 + 16) * LIVELINK_FPS + 26.689,
    drift: float = 2e-4,
    count_header: str = "BlendshapeCount",
    drop_rows: tuple[int, ...] = (),
    duplicate_rows: tuple[int, ...] = (),
    rename: dict[str, str] | None = None,
) -> Path:
    """A take in the app's published layout; JawOpen follows ``jaw_motion``, other channels are constants.

    The timecode is HH:MM:SS:FF.fff with FF the frame in the second and .fff the
    fraction of a frame by which the phone's clock drifts from the timecode clock.
    """
    rig = load_rig("arkit52")
    names = list(rig.livelink_columns) + list(rig.livelink_extra_columns)
    header = ["Timecode", count_header] + [(rename or {}).get(n, n) for n in names]
    lines = [",".join(header)]
    for k in range(round(seconds * fps)):
        if k in drop_rows:
            continue
        total = start_frames + k * (1 + drift)
        whole = int(math.floor(total))
        secs, ff = divmod(whole, fps)
        hh, rest = divmod(secs, 3600)
        mm, ss = divmod(rest, 60)
        stamp = f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{int((total - whole) * 1000):03d}"
        t = k / fps
        values = {n: 0.0 for n in names}
        values.update(JawOpen=float(jaw_motion(np.array(t))), JawLeft=0.1, JawRight=0.3, MouthLeft=0.05,
                      MouthRight=0.25, HeadYaw=-0.2, LeftEyePitch=0.1)
        row = ",".join([stamp, str(len(names))] + [f"{values[n]:.10f}" for n in names])
        lines.append(row)
        if k in duplicate_rows:
            lines.append(row)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def leftovers(folder: Path) -> list[str]:
    """Staging folders a failed run must not leave behind."""
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)
