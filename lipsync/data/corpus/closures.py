"""Where a stop's closure is in the audio: the quiet stretch between the lips closing and the burst.

Engines label stops differently (espeak-ng at the burst, MBROLA and Festival
at the closure's onset), so each engine's correction is checked against the
audio itself. The measure is acoustic and engine-independent: when the lips
close, the level (5 ms frames, 2.5 ms apart) falls ``drop_db`` below the
sound before the stop and to within ``rise_db`` of the closure's floor; at
the release burst it rises ``rise_db`` above that floor.
"""
from __future__ import annotations

import numpy as np

from lipsync.rigs.coarticulation import Phone

HOP = 0.0025
WINDOW = 0.005


def frame_levels_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Level of each frame (dB, frame k centred near k * HOP)."""
    hop, win = round(HOP * sample_rate), round(WINDOW * sample_rate)
    n = max(1, (len(audio) - win) // hop + 1)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(audio, (0, win)), win)[::hop][:n]
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def closure_span(
    audio: np.ndarray,
    sample_rate: int,
    stop: Phone,
    drop_db: float = 20.0,
    rise_db: float = 20.0,
    search: float = 0.08,
    levels: np.ndarray | None = None,
) -> tuple[float, float] | None:
    """(onset, release) in seconds of the closure nearest ``stop``, or None if the audio shows none.

    The closure's floor is sought from 30 ms before the labelled start
    (espeak-ng labels late) to 30 ms after the labelled end (the burst may be
    there); its onset up to ``search`` s before the start. ``levels`` (from
    ``frame_levels_db``) saves recomputing them for every stop of a clip.
    """
    levels = frame_levels_db(audio, sample_rate) if levels is None else levels
    first = max(0, int((stop.start - search) / HOP))
    last = min(len(levels), int((stop.end + 0.03) / HOP) + 1)
    own = max(first, int((stop.start - 0.03) / HOP))  # the floor is this stop's, not an earlier one's
    if last - own < 4:
        return None
    window = levels[first:last]
    floor_at = own - first + int(np.argmin(levels[own:last]))
    floor = window[floor_at]
    before = window[: floor_at + 1]
    if before.max() - floor < drop_db:
        return None  # nothing loud before it: no closure (a pause, or a voice bar throughout)
    # Onset: where the level, falling from the loudest sound before the floor, is both drop_db below
    # that sound and within rise_db of the floor (a vowel fading out is not yet a closure).
    peak_at = int(np.argmax(before))
    threshold = min(before[peak_at] - drop_db, floor + rise_db)
    onset = peak_at + int(np.flatnonzero(before[peak_at:] < threshold)[0])
    after = window[floor_at:]
    loud_after = np.flatnonzero(after > floor + rise_db)
    if not loud_after.size:
        return None
    release = floor_at + loud_after[0]
    return (first + onset) * HOP + WINDOW / 2, (first + release) * HOP + WINDOW / 2


def extend_stops_to_release(
    phones: list[Phone], audio: np.ndarray, sample_rate: int, stops: frozenset[str], max_shift: float = 0.03
) -> list[Phone]:
    """End each stop at its release burst when the burst comes after the labelled end (by at most ``max_shift``).

    MBROLA's diphones sometimes release a stop up to ~15-25 ms into the next
    phone; the lips stay closed until the burst, so the stop is extended and
    the next phone starts later (keeping at least a millisecond).
    """
    levels = frame_levels_db(audio, sample_rate)
    out = list(phones)
    for i in range(len(out) - 1):
        if out[i].label not in stops:
            continue
        span = closure_span(audio, sample_rate, out[i], levels=levels)
        if span is None:
            continue
        release = min(span[1], out[i + 1].end - 0.001)
        if out[i].end < release <= out[i].end + max_shift:
            out[i] = Phone(out[i].start, release, out[i].label)
            out[i + 1] = Phone(release, out[i + 1].end, out[i + 1].label)
    return out


def start_stops_at_closure(
    phones: list[Phone], audio: np.ndarray, sample_rate: int, stops: frozenset[str], max_shift: float = 0.06
) -> list[Phone]:
    """Start each stop at its closure's onset when the audio goes quiet before the labelled start (by at most ``max_shift``).

    Open JTalk's voice sometimes closes 15-65 ms before its /p b/ label (after
    a word-final vowel: "no paipu"); the articulators are closed there, so the
    stop takes that stretch from the phone before it (which keeps at least a
    millisecond).
    """
    levels = frame_levels_db(audio, sample_rate)
    out = list(phones)
    for i in range(1, len(out)):
        if out[i].label not in stops:
            continue
        span = closure_span(audio, sample_rate, out[i], levels=levels)
        if span is None:
            continue
        onset = max(span[0], out[i - 1].start + 0.001)
        if out[i].start - max_shift <= onset < out[i].start:
            out[i - 1] = Phone(out[i - 1].start, onset, out[i - 1].label)
            out[i] = Phone(onset, out[i].end, out[i].label)
    return out
