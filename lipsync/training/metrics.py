"""Validation metrics over whole clips.

- MAE over all channels and per channel.
- Viseme accuracy: per-frame argmax agreement (the shape a viewer would see).
- Event F1, with its precision and recall, for the moments that matter most: lip
  closure (PP), lip-teeth contact (FF) and rounding (oh/ou). An event is a run
  of frames where the channel is at or above 0.5; a predicted event matches a
  true one (one to one) when their onsets are within ``tolerance`` seconds or
  the runs overlap. Onsets are interpolated between frames, so onset error is
  not limited to whole frames.
- Given each clip's phone alignment, the phone under every false and every
  missed event: where a model closes the lips wrongly (on /n/? on /v/?) says
  more about what it cannot hear than the F1 alone.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

EVENT_GROUPS = {
    "oculus15": {"closure": ("PP",), "labiodental": ("FF",), "rounding": ("oh", "ou")},
    "arkit52": {"closure": ("mouthClose",), "labiodental": ("mouthRollLower",), "rounding": ("mouthPucker",)},
}
THRESHOLD = 0.5


def events(signal: np.ndarray, fps: float) -> list[tuple[float, float]]:
    """(onset, offset) seconds of runs where ``signal`` >= THRESHOLD, with sub-frame onsets."""
    above = signal >= THRESHOLD
    if not above.any():
        return []
    edges = np.diff(above.astype(np.int8), prepend=0, append=0)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = []
    for s, e in zip(starts, stops):
        onset = float(s)
        if s > 0 and signal[s] != signal[s - 1]:
            onset = s - 1 + (THRESHOLD - signal[s - 1]) / (signal[s] - signal[s - 1])
        out.append((onset / fps, e / fps))
    return out


def match_events(pred: list, true: list, tolerance: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching by onset distance."""
    pairs = sorted(
        (abs(p[0] - t[0]), i, j)
        for i, p in enumerate(pred)
        for j, t in enumerate(true)
        if abs(p[0] - t[0]) <= tolerance or (p[0] < t[1] and t[0] < p[1])
    )
    used_p, used_t, matched = set(), set(), []
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i), used_t.add(j), matched.append((i, j))
    return matched


@dataclass
class _EventCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    onset_errors: list[float] = field(default_factory=list)
    false_at: Counter = field(default_factory=Counter)  # phone under each false event
    missed_at: Counter = field(default_factory=Counter)  # phone under each missed event

    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else float("nan")

    def precision(self) -> float:  # of the predicted events, how many are real
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    def recall(self) -> float:  # of the real events, how many are predicted
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")


def phone_at(phones: Sequence, seconds: float) -> str:
    """The label of the phone (start, end, label) sounding at ``seconds``; "-" outside the alignment."""
    for start, end, label in phones:
        if start <= seconds < end:
            return label
    return "-"


class CurveMetrics:
    """Accumulates clip by clip; ``compute()`` gives the table's numbers."""

    def __init__(self, channels: tuple[str, ...], fps: float, rig_name: str = "oculus15", tolerance: float = 0.1):
        self.channels, self.fps, self.tolerance = channels, fps, tolerance
        groups = EVENT_GROUPS.get(rig_name, {})
        self.groups = {g: [channels.index(c) for c in chans] for g, chans in groups.items() if all(c in channels for c in chans)}
        self.reset()

    def reset(self) -> None:
        self.abs_err = np.zeros(len(self.channels))
        self.frames = 0
        self.correct = 0
        self.counts = {g: _EventCounts() for g in self.groups}

    def update(self, pred: np.ndarray, true: np.ndarray, phones: Sequence | None = None) -> None:
        """One clip: pred/true [T, C] (already trimmed to its length); ``phones`` its alignment, if it has one."""
        self.abs_err += np.abs(pred - true).sum(axis=0)
        self.frames += len(true)
        self.correct += int((pred.argmax(axis=1) == true.argmax(axis=1)).sum())
        for name, cols in self.groups.items():
            p_ev = events(pred[:, cols].max(axis=1), self.fps)
            t_ev = events(true[:, cols].max(axis=1), self.fps)
            matched = match_events(p_ev, t_ev, self.tolerance)
            c = self.counts[name]
            c.tp += len(matched)
            c.fp += len(p_ev) - len(matched)
            c.fn += len(t_ev) - len(matched)
            c.onset_errors.extend(abs(p_ev[i][0] - t_ev[j][0]) * 1000 for i, j in matched)
            if phones is not None:  # an event's middle names the phone it sits on
                hit_p, hit_t = {i for i, _ in matched}, {j for _, j in matched}
                c.false_at.update(phone_at(phones, (a + b) / 2) for k, (a, b) in enumerate(p_ev) if k not in hit_p)
                c.missed_at.update(phone_at(phones, (a + b) / 2) for k, (a, b) in enumerate(t_ev) if k not in hit_t)

    def compute(self) -> dict[str, float]:
        frames = max(self.frames, 1)
        out = {"mae": float(self.abs_err.sum() / (frames * len(self.channels))), "viseme_acc": self.correct / frames}
        for name, c in self.counts.items():
            out[f"{name}_f1"] = c.f1()
            out[f"{name}_precision"], out[f"{name}_recall"] = c.precision(), c.recall()
            out[f"{name}_onset_ms"] = float(np.median(c.onset_errors)) if c.onset_errors else float("nan")
        return out

    def errors_by_phone(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per event group, the phones under its false and missed events, most frequent first (clips with
        alignments only)."""
        return {name: {"false": dict(c.false_at.most_common()), "missed": dict(c.missed_at.most_common())}
                for name, c in self.counts.items() if c.false_at or c.missed_at}

    def per_channel_mae(self) -> dict[str, float]:
        return {ch: float(e / max(self.frames, 1)) for ch, e in zip(self.channels, self.abs_err)}
