"""Phone alignments -> viseme curves with coarticulation.

Each viseme segment gets an envelope: 1 over its phone, a smooth ramp that
starts ``lead`` seconds before it (the mouth forms the shape ahead of the
sound) and a ramp that releases over ``lag`` seconds after it. Channels take
the maximum of their segments' envelopes, so neighbours overlap and blend
instead of switching like boxes. Time not covered by any phone is silence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from lipsync.rigs import VISEMES, Rig, RigError
from lipsync.rigs.phonemes import NEXT, SILENCE, detect_phoneset, visemes_for


class Phone(NamedTuple):
    start: float  # seconds
    end: float
    label: str


@dataclass(frozen=True)
class Coarticulation:
    lead: float = 0.06  # s: how early a viseme starts forming before its phone
    lag: float = 0.06  # s: how long it takes to release after its phone


def phones_to_curves(
    phones: Sequence[Phone],
    rig: Rig,
    fps: float,
    n_frames: int | None = None,
    phoneset: str | None = None,
    shape: Coarticulation = Coarticulation(),
) -> np.ndarray:
    """Curves ``[n_frames, len(rig)]`` in [0, 1]; frame i is at time i / fps."""
    if rig.from_oculus15 is None:
        raise RigError(
            f"rig {rig.name!r} has no 'from_oculus15' table, so phone alignments cannot drive it; "
            "give curves CSVs instead, or add the table to the rig file"
        )
    phones = [Phone(float(p[0]), float(p[1]), str(p[2])) for p in phones]
    if n_frames is None:
        n_frames = round((phones[-1].end if phones else 0.0) * fps)
    phoneset = phoneset or detect_phoneset([p.label for p in phones])
    segments = _viseme_segments(phones, phoneset, end=n_frames / fps)
    times = np.arange(n_frames) / fps
    visemes = np.zeros((n_frames, len(VISEMES)), dtype=np.float32)
    for viseme, start, end in segments:
        env = _envelope(times, start, end, shape)
        if n_frames and not np.any((times >= start) & (times < end)):
            # Shorter than a frame and between frame times: still reach 1 once.
            env[min(n_frames - 1, round((start + end) / 2 * fps))] = 1.0
        column = VISEMES.index(viseme)
        np.maximum(visemes[:, column], env, out=visemes[:, column])
    return np.clip(visemes @ rig.from_oculus15, 0.0, 1.0).astype(np.float32)


def _envelope(times: np.ndarray, start: float, end: float, shape: Coarticulation) -> np.ndarray:
    rise = np.clip((times - (start - shape.lead)) / max(shape.lead, 1e-9), 0.0, 1.0)
    fall = np.clip(((end + shape.lag) - times) / max(shape.lag, 1e-9), 0.0, 1.0)
    ramp = np.minimum(rise, fall)
    return (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)  # smoothstep


def _viseme_segments(phones: list[Phone], phoneset: str, end: float) -> list[tuple[str, float, float]]:
    """(viseme, start, end) triples covering [0, end], gaps filled with silence."""
    raw: list[tuple[tuple[str, ...], float, float]] = []
    cursor = 0.0
    for phone in sorted(phones, key=lambda p: p.start):
        if phone.end < phone.start:
            raise ValueError(f"phone {phone.label!r} ends ({phone.end}) before it starts ({phone.start})")
        if phone.start > cursor + 1e-3:
            raw.append((SILENCE, cursor, phone.start))
        raw.append((visemes_for(phone.label, phoneset), phone.start, phone.end))
        cursor = max(cursor, phone.end)
    if end > cursor + 1e-3:
        raw.append((SILENCE, cursor, end))

    segments: list[tuple[str, float, float]] = []
    for i, (visemes, start, stop) in enumerate(raw):
        if visemes == NEXT:
            visemes = borrowed_shape(raw, i)
        step = (stop - start) / len(visemes)
        segments.extend((v, start + k * step, start + (k + 1) * step) for k, v in enumerate(visemes))
    return segments


def borrowed_shape(raw: list, i: int) -> tuple[str, ...]:
    """/h/ takes the first viseme of the next sounding phone, else the previous one's last."""
    for visemes, _, _ in raw[i + 1 :]:
        if visemes not in (NEXT, SILENCE):
            return visemes[:1]
    for visemes, _, _ in reversed(raw[:i]):
        if visemes not in (NEXT, SILENCE):
            return visemes[-1:]
    return SILENCE
