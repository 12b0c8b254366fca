"""Animation curves: frames x channels in [0, 1] at a fixed frame rate."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class CurvesError(ValueError):
    """Curves that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)
class Curves:
    values: np.ndarray  # [frames, channels] float32
    channels: tuple[str, ...]
    fps: float

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.channels):
            raise CurvesError(f"values {self.values.shape} do not match {len(self.channels)} channels")

    @property
    def n_frames(self) -> int:
        return self.values.shape[0]

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.n_frames) / self.fps

    def resample(self, fps: float, n_frames: int | None = None) -> "Curves":
        """Linear interpolation to ``fps`` (``round(duration * fps)`` frames unless given)."""
        if n_frames is None:
            n_frames = round(self.duration * fps)
        if fps == self.fps and n_frames == self.n_frames:
            return self
        src = self.times
        dst = np.arange(n_frames) / fps
        values = np.stack([np.interp(dst, src, self.values[:, c]) for c in range(len(self.channels))], axis=1)
        return Curves(values.astype(np.float32).reshape(n_frames, -1), self.channels, fps)


def viseme_columns(curves: Curves, visemes, what: str) -> list[int]:
    """The column of each oculus15 viseme in ``visemes``; fails naming the missing ones and ``what`` needs them."""
    missing = [v for v in visemes if v not in curves.channels]
    if missing:
        raise CurvesError(f"{what} need oculus15 curves; channels {missing} are missing (use an oculus15 model)")
    return [curves.channels.index(v) for v in visemes]
