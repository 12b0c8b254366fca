import numpy as np
import pytest

from lipsync.curves import Curves, CurvesError
from lipsync.curves.postprocess import clamp, one_euro, postprocess, savgol


def _noisy_step(fps=30.0, seconds=4.0, noise=0.05, seed=0) -> tuple[Curves, np.ndarray]:
    n = int(seconds * fps)
    clean = np.where(np.arange(n) < n // 2, 0.2, 0.8).astype(np.float32)
    noisy = clean + np.random.default_rng(seed).normal(0, noise, n).astype(np.float32)
    return Curves(np.stack([noisy, clean], axis=1), ("noisy", "clean"), fps), clean


def test_one_euro_removes_jitter_but_follows_a_fast_move():
    curves, clean = _noisy_step()
    out = one_euro(curves).values[:, 0]
    half = len(clean) // 2
    flat = slice(10, half - 1)
    assert np.std(out[flat]) < 0.7 * np.std(curves.values[flat, 0])  # defaults are gentle: mouth moves are fast
    # The jump of 0.6 is followed within 4 frames (133 ms) to within 0.1.
    assert abs(out[half + 4] - 0.8) < 0.1
    # A clean constant stays put; the filter does not drift.
    assert np.allclose(one_euro(curves).values[:half, 1], 0.2, atol=1e-6)


def test_savgol_keeps_a_quadratic_and_smooths_noise():
    fps = 50.0
    t = np.arange(200) / fps
    quad = (0.1 + 0.2 * t - 0.05 * t**2).astype(np.float32)
    curves = Curves(quad[:, None], ("q",), fps)
    assert np.allclose(savgol(curves, window_s=0.1).values[:, 0], quad, atol=1e-5)
    noisy, _ = _noisy_step(fps=fps)
    smoothed = savgol(noisy, window_s=0.2).values[:, 0]
    assert np.std(smoothed[10:90]) < 0.7 * np.std(noisy.values[10:90, 0])


def test_savgol_leaves_clips_shorter_than_its_window_alone():
    curves = Curves(np.random.default_rng(1).random((3, 2)).astype(np.float32), ("a", "b"), 30.0)
    assert savgol(curves, window_s=0.5) is curves


def test_postprocess_resamples_to_the_requested_length_and_clamps():
    values = np.linspace(-0.2, 1.3, 30, dtype=np.float32)[:, None]
    curves = Curves(values, ("x",), 30.0)
    out = postprocess(curves, smooth="none", fps=60.0, n_frames=61)
    assert out.fps == 60.0 and out.n_frames == 61
    assert out.values.min() == 0.0 and out.values.max() == 1.0
    raw = postprocess(curves, clamp_values=False)
    assert raw.values.min() < 0 and raw.values.max() > 1
    assert clamp(curves).values.max() == 1.0


@pytest.mark.parametrize("smooth", ["one-euro", "savgol"])
def test_postprocess_smoothers_keep_shape_and_range(smooth):
    curves, _ = _noisy_step()
    out = postprocess(curves, smooth=smooth, fps=25.0)
    assert out.n_frames == round(curves.duration * 25) and out.channels == curves.channels
    assert 0.0 <= out.values.min() and out.values.max() <= 1.0


def test_unknown_smoother_is_refused():
    curves, _ = _noisy_step()
    with pytest.raises(CurvesError, match="one-euro"):
        postprocess(curves, smooth="kalman")
