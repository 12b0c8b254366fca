"""Run a predictor over long audio in overlapping windows and stitch the curves.

A model sees at most ``window_s`` of audio at once, so memory stays flat for
hours-long files. Windows start on output frames that also fall on the
encoder's 50 Hz grid (every 320 samples; at 30 fps every 3rd frame), so a
window's frame j is global frame start + j and its encoder frames are the
whole file's encoder frames. The last window is pulled back to end exactly at
the end of the file, so it has full context too. Where two windows overlap,
the outer 3/8 of the overlap on each side come from the window they are
interior to (a window's edges lack context on one side) and the middle
quarter is a linear cross-fade.

Equality with whole-file prediction: a model whose output at a frame depends
only on audio within R seconds of it gives identical curves when
R <= 3/8 * overlap_s (3 s with the defaults; the scratch TCN head reaches
~2.2 s at 30 fps). Models with wider context (self-attention over the whole
input, per-clip normalisation, bidirectional GRUs) differ slightly near the
cross-fades; the tests measure it. Audio no longer than one window is
predicted in one call, unchanged.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Callable, Iterable

import numpy as np

from lipsync.audio import SAMPLE_RATE, num_frames

WINDOW_S = 40.0
OVERLAP_S = 8.0
ENCODER_STRIDE = 320  # samples per 50 Hz encoder frame (wav2vec2 family and the log-mel encoder)

PredictFrames = Callable[[np.ndarray], np.ndarray]  # 16 kHz mono wave -> [frames, channels]


class CrossFadeStitcher:
    """Joins windows of frames added in order of their (increasing) start frame."""

    def __init__(self) -> None:
        self.done: list[np.ndarray] = []
        self.tail: np.ndarray | None = None  # frames of the last window not yet final
        self.tail_start = 0

    def add(self, start: int, frames: np.ndarray) -> None:
        if self.tail is None:
            self.tail, self.tail_start = frames, start
            return
        tail_end = self.tail_start + len(self.tail)
        if start > tail_end or start + len(frames) < tail_end:
            raise ValueError(f"window at frames {start}-{start + len(frames)} leaves a gap after frame {tail_end}")
        margin = 3 * (tail_end - start) // 8
        fade_start = max(start + margin, self.tail_start)
        fade_end = max(tail_end - margin, fade_start)
        fade_end = min(fade_end, start + len(frames))
        n = fade_end - fade_start
        self.done.append(self.tail[: fade_start - self.tail_start])
        if n > 0:
            ramp = ((np.arange(n) + 0.5) / n).astype(np.float32)[:, None]  # weight of the new window
            old = self.tail[fade_start - self.tail_start : fade_end - self.tail_start]
            new = frames[fade_start - start : fade_end - start]
            self.done.append(old * (1 - ramp) + new * ramp)
        self.tail, self.tail_start = frames[fade_end - start :], fade_end

    def finish(self, n_frames: int, n_channels: int) -> np.ndarray:
        """All frames, cut or padded (repeating the last frame) to exactly ``n_frames``."""
        parts = [*self.done, self.tail] if self.tail is not None else self.done
        values = np.concatenate(parts, axis=0) if parts else np.zeros((0, n_channels), np.float32)
        if len(values) >= n_frames:
            return values[:n_frames]
        edge = values[-1:] if len(values) else np.zeros((1, n_channels), np.float32)
        return np.concatenate([values, np.repeat(edge, n_frames - len(values), axis=0)], axis=0)


def predict_chunked(
    blocks: Iterable[np.ndarray],
    predict: PredictFrames,
    fps: float,
    n_channels: int,
    sample_rate: int = SAMPLE_RATE,
    window_s: float = WINDOW_S,
    overlap_s: float = OVERLAP_S,
    grid_samples: int = ENCODER_STRIDE,
) -> np.ndarray:
    """Curves [num_frames(samples, fps), n_channels] for audio arriving as consecutive blocks.

    Holds at most two windows of audio: the one being predicted and, until
    the file's end is known, the previous one (the last window may start inside it).
    """
    if not 0 <= overlap_s < window_s:
        raise ValueError(f"chunk overlap ({overlap_s} s) must be >= 0 and shorter than the window ({window_s} s)")
    step = aligned_step(fps, sample_rate, grid_samples, max_step=max(1, round(overlap_s * fps) // 4))
    win_f = max(step, round(window_s * fps / step) * step)
    hop_f = max(step, win_f - round(overlap_s * fps / step) * step)

    def sample_of(frame: int) -> int:
        return round(frame * sample_rate / fps)

    source = iter(blocks)
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # sample index of buf[0]
    ended = False
    stitcher = CrossFadeStitcher()
    start_f = 0
    while True:
        # One frame of look-ahead past the window tells whether this window is the last.
        need = sample_of(start_f + win_f + 1)
        while not ended and buf_start + buf.size < need:
            block = next(source, None)
            if block is None:
                ended = True
            else:
                buf = np.concatenate([buf, np.asarray(block, dtype=np.float32)])
        total = buf_start + buf.size
        if ended and total < need:
            n_frames = num_frames(total, fps, sample_rate)
            last_start = max(0, (n_frames - win_f) // step * step) if start_f > 0 else 0
            wave = buf[sample_of(last_start) - buf_start :]
            if wave.size:
                stitcher.add(last_start, _fitted(predict(wave), n_frames - last_start, n_channels))
            return stitcher.finish(n_frames, n_channels)
        wave = buf[sample_of(start_f) - buf_start : sample_of(start_f + win_f) - buf_start]
        stitcher.add(start_f, _fitted(predict(wave), win_f, n_channels))
        # Keep this window's audio: the last window may start anywhere after its start.
        keep = sample_of(start_f) - buf_start
        buf, buf_start = buf[keep:], buf_start + keep
        start_f += hop_f


def aligned_step(fps: float, sample_rate: int, grid_samples: int, max_step: int) -> int:
    """Smallest frame count q whose duration is whole encoder frames (q * sr / fps divisible by the grid).

    30 fps -> 3 (1600 samples = 5 encoder frames), 25 and 50 fps -> 1, 60 -> 6,
    24 -> 12. Rates with no small q (29.97) fall back to 1: windows then start
    within half a sample of the frame grid.
    """
    ratio = Fraction(sample_rate) / (Fraction(fps).limit_denominator(1000) * grid_samples)
    return ratio.denominator if ratio.denominator <= max_step else 1


def _fitted(frames: np.ndarray, n_frames: int, n_channels: int) -> np.ndarray:
    """Exactly ``n_frames`` rows: sample rounding at a window's ends can leave one frame more or less."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != n_channels or abs(len(frames) - n_frames) > 1:
        raise ValueError(f"predictor returned shape {frames.shape} for a window of {n_frames} frames x {n_channels}")
    if len(frames) < n_frames:
        frames = np.concatenate([frames, frames[-1:]], axis=0)
    return frames[:n_frames]
