"""Post-processing of predicted curves: smoothing, output frame rate, clamping.

Order used by :func:`postprocess`: smooth at the model's frame rate (where the
filter parameters were chosen), then resample to the output rate, then clamp
to [0, 1] (interpolation and Savitzky-Golay can overshoot slightly).
"""
from __future__ import annotations

import math

import numpy as np

from lipsync.curves import Curves, CurvesError

SMOOTHERS = ("none", "one-euro", "savgol")

# Defaults tuned for mouth curves: visemes change at up to ~10 Hz, so the
# resting cutoff stays well above jitter-only frequencies and fast moves open it further.
ONE_EURO_MIN_CUTOFF = 3.0  # Hz
ONE_EURO_BETA = 0.5
ONE_EURO_D_CUTOFF = 1.0  # Hz
SAVGOL_WINDOW_S = 0.1  # 3 frames at 30 fps, 5 at 50 fps
SAVGOL_POLYORDER = 2


def one_euro(
    curves: Curves,
    min_cutoff: float = ONE_EURO_MIN_CUTOFF,
    beta: float = ONE_EURO_BETA,
    d_cutoff: float = ONE_EURO_D_CUTOFF,
) -> Curves:
    """One-Euro filter (Casiez et al. 2012), causal, per channel.

    A low-pass whose cutoff rises with the signal's speed: still curves lose
    their jitter, fast lip moves keep their timing.
    """
    if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
        raise CurvesError(f"one-euro needs min_cutoff > 0, d_cutoff > 0, beta >= 0 (got {min_cutoff}, {d_cutoff}, {beta})")
    x = curves.values.astype(np.float64)
    if len(x) < 2:
        return curves
    dt = 1.0 / curves.fps

    def alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    a_d = alpha(d_cutoff)
    out = np.empty_like(x)
    out[0] = x[0]
    speed = np.zeros(x.shape[1])
    for i in range(1, len(x)):
        speed = speed + a_d * ((x[i] - out[i - 1]) / dt - speed)
        a = alpha(min_cutoff + beta * np.abs(speed))
        out[i] = out[i - 1] + a * (x[i] - out[i - 1])
    return Curves(out.astype(np.float32), curves.channels, curves.fps)


def savgol(curves: Curves, window_s: float = SAVGOL_WINDOW_S, polyorder: int = SAVGOL_POLYORDER) -> Curves:
    """Savitzky-Golay smoothing (zero-phase) over a window of ``window_s`` seconds.

    The window in frames is the odd number nearest ``window_s * fps``, at least
    ``polyorder + 2``; clips shorter than the window are returned unchanged.
    """
    from scipy.signal import savgol_filter  # scipy.signal costs ~1 s to import: only when asked

    window = max(int(round(window_s * curves.fps)), polyorder + 2)
    window += 1 - window % 2
    if curves.n_frames < window:
        return curves
    values = savgol_filter(curves.values, window, polyorder, axis=0, mode="interp")
    return Curves(values.astype(np.float32), curves.channels, curves.fps)


def clamp(curves: Curves) -> Curves:
    return Curves(np.clip(curves.values, 0.0, 1.0).astype(np.float32), curves.channels, curves.fps)


def postprocess(
    curves: Curves,
    smooth: str = "none",
    fps: float | None = None,
    clamp_values: bool = True,
    one_euro_min_cutoff: float = ONE_EURO_MIN_CUTOFF,
    one_euro_beta: float = ONE_EURO_BETA,
    savgol_window_s: float = SAVGOL_WINDOW_S,
    n_frames: int | None = None,
) -> Curves:
    """Smooth (``none``, ``one-euro``, ``savgol``), resample to ``fps`` if given, clamp to [0, 1].

    ``n_frames`` fixes the output length when resampling (conversion passes
    ``num_frames(samples, fps)`` so every output agrees with the audio's length).
    """
    if smooth == "one-euro":
        curves = one_euro(curves, min_cutoff=one_euro_min_cutoff, beta=one_euro_beta)
    elif smooth == "savgol":
        curves = savgol(curves, window_s=savgol_window_s)
    elif smooth != "none":
        raise CurvesError(f"unknown smoothing {smooth!r}; use one of {', '.join(SMOOTHERS)}")
    if fps is not None and (fps != curves.fps or (n_frames is not None and n_frames != curves.n_frames)):
        curves = curves.resample(fps, n_frames)
    return clamp(curves) if clamp_values else curves
