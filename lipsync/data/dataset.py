"""Torch datasets over loaded clips: random fixed-length windows for training,
whole clips for evaluation, and a collate that pads and says what is real.

Every item keeps ``T == num_frames(N, fps)`` (round(N / 16000 * fps) with
halves up; N audio samples, T curve frames), the rule the model's frame alignment uses, so targets and
predictions always have the same length. A frame whose curves are NaN has
no target (``data.unscored_phones``): it is audio the model hears, but the
loss skips it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lipsync.audio import SAMPLE_RATE, num_frames
from lipsync.data.validate import Clip


def _item(clip_id: str, audio: np.ndarray, curves: np.ndarray) -> dict:
    # Copies, so a batch never aliases (and can never modify) the clips held in RAM.
    return {
        "audio": torch.from_numpy(np.array(audio, dtype=np.float32)),
        "curves": torch.from_numpy(np.array(curves, dtype=np.float32)),
        "id": clip_id,
    }


class WindowDataset(Dataset):
    """Item ``index``: a random window of clip ``index // windows_per_clip``.

    The window start comes from ``np.random.default_rng([seed, epoch, index])``
    alone, so a resumed run replays exactly the windows it would have seen;
    call ``set_epoch`` at the start of every epoch (before the DataLoader's
    iterator is made: workers copy the dataset then, so ``persistent_workers``
    would keep a stale epoch). Windows start on a frame boundary. A clip no
    longer than the window is returned whole.
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        fps: float,
        window_seconds: float = 2.0,
        seed: int = 0,
        windows_per_clip: int = 1,
        augment: Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]] | None = None,
    ):
        if not clips:
            raise ValueError("WindowDataset needs at least one clip")
        if window_seconds <= 0 or windows_per_clip < 1 or seed < 0:
            raise ValueError(
                f"need window_seconds > 0, windows_per_clip >= 1, seed >= 0; got "
                f"{window_seconds}, {windows_per_clip}, {seed}"
            )
        self.clips = list(clips)
        self.fps = float(fps)
        self.seed = int(seed)
        self.windows_per_clip = int(windows_per_clip)
        self.window_frames = int(np.floor(window_seconds * fps + 0.5))
        self.window_samples = round(window_seconds * SAMPLE_RATE)
        if self.window_frames < 1 or num_frames(self.window_samples, fps) != self.window_frames:
            raise ValueError(
                f"a window of {window_seconds} s is not a whole number of frames at {fps} fps; "
                f"use a multiple of 1/fps such as {max(1, round(window_seconds * fps)) / fps:.4f} s"
            )
        self.augment = augment  # (audio, curves, rng) -> (audio, curves), e.g. lipsync.data.augment.Augmenter
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips) * self.windows_per_clip

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        clip = self.clips[index // self.windows_per_clip]
        last_start = self._last_start_frame(clip)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if last_start < 0:
            audio, curves = clip.audio, clip.curves
        else:
            f0 = int(rng.integers(0, last_start + 1))
            a0 = round(f0 * SAMPLE_RATE / self.fps)
            audio, curves = clip.audio[a0 : a0 + self.window_samples], clip.curves[f0 : f0 + self.window_frames]
        if self.augment is not None:
            audio, curves = self.augment(audio, curves, rng)
        return _item(clip.id, audio, curves)

    def _last_start_frame(self, clip: Clip) -> int:
        """The latest frame a full window can start on (audio and curves both in range); -1 if none."""
        n_samples, n_frames = len(clip.audio), clip.curves.shape[0]
        last = min(
            n_frames - self.window_frames,
            int(np.floor((n_samples - self.window_samples) * self.fps / SAMPLE_RATE)),
        )
        while last >= 0 and round(last * SAMPLE_RATE / self.fps) + self.window_samples > n_samples:
            last -= 1  # guards float rounding at the very end of the clip
        return last


class ClipDataset(Dataset):
    """Whole clips, for evaluation."""

    def __init__(self, clips: Sequence[Clip]):
        self.clips = list(clips)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        return _item(clip.id, clip.audio, clip.curves)


def collate(items: Sequence[dict]) -> dict:
    """Zero-pad to the longest item; ``mask`` is True on real frames, ``scored`` on real frames with a target
    (no NaN in their curves; those become 0)."""
    if not items:
        raise ValueError("collate needs at least one item")
    audio_lengths = torch.tensor([len(it["audio"]) for it in items], dtype=torch.int64)
    frame_lengths = torch.tensor([it["curves"].shape[0] for it in items], dtype=torch.int64)
    channels = items[0]["curves"].shape[1]
    batch = len(items)
    audio = torch.zeros(batch, int(audio_lengths.max()), dtype=torch.float32)
    curves = torch.zeros(batch, int(frame_lengths.max()), channels, dtype=torch.float32)
    for i, it in enumerate(items):
        audio[i, : audio_lengths[i]] = it["audio"]
        curves[i, : frame_lengths[i]] = it["curves"]
    mask = torch.arange(curves.shape[1])[None, :] < frame_lengths[:, None]
    scored = mask & ~curves.isnan().any(-1)
    return {
        "audio": audio,
        "audio_lengths": audio_lengths,
        "curves": curves.nan_to_num(0.0),
        "frame_lengths": frame_lengths,
        "mask": mask,
        "scored": scored,
        "ids": [it["id"] for it in items],
    }
