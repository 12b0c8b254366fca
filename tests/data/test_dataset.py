from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lipsync.audio import num_frames
from lipsync.data.dataset import ClipDataset, WindowDataset, collate
from lipsync.data.validate import Clip, load_clips

FPS_VALUES = [24, 25, 30, 60]
# Odd lengths: not a whole number of frames at any of the fps values above.
ODD_SAMPLES = [16001, 23457, 40111, 57999]


def timed_clip(clip_id: str, n_samples: int, fps: float, channels: int = 3) -> Clip:
    """Audio sample i holds its own time (i / 16000 s); curve frame f holds f / fps in every channel,
    so a window whose audio and curves start at the same moment has equal first values."""
    audio = (np.arange(n_samples) / 16000).astype(np.float32)
    n_frames = num_frames(n_samples, fps)
    curves = np.repeat((np.arange(n_frames) / fps)[:, None], channels, axis=1).astype(np.float32)
    return Clip(clip_id, None, "train", audio, curves)


def clips_for(fps: float) -> list[Clip]:
    return [timed_clip(f"clip{i}", n, fps) for i, n in enumerate(ODD_SAMPLES)]


@pytest.mark.parametrize("fps", FPS_VALUES)
def test_windows_have_fixed_length_and_aligned_starts(fps):
    dataset = WindowDataset(clips_for(fps), fps, window_seconds=1.0, seed=3, windows_per_clip=4)
    assert len(dataset) == 16
    window_frames, window_samples = round(1.0 * fps), 16000
    for epoch in range(12):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            item = dataset[index]
            assert item["id"] == f"clip{index // 4}"
            assert item["audio"].dtype == torch.float32 and item["curves"].dtype == torch.float32
            assert item["audio"].shape == (window_samples,)
            assert item["curves"].shape == (window_frames, 3)
            assert item["curves"].shape[0] == num_frames(item["audio"].shape[0], fps)
            # Starts on a frame boundary: audio start = round(f0 * 16000 / fps).
            f0 = round(float(item["curves"][0, 0]) * fps)
            assert round(float(item["audio"][0]) * 16000) == round(f0 * 16000 / fps)


def test_windows_reach_both_ends_of_a_clip():
    fps = 30
    dataset = WindowDataset([timed_clip("c", 40111, fps)], fps, window_seconds=1.0, seed=0)
    starts = set()
    for epoch in range(400):
        dataset.set_epoch(epoch)
        starts.add(round(float(dataset[0]["curves"][0, 0]) * fps))
    n_frames = num_frames(40111, fps)
    # The latest start whose window still fits in both the curves and the audio.
    last = max(f for f in range(n_frames) if f + fps <= n_frames and round(f * 16000 / fps) + 16000 <= 40111)
    assert min(starts) == 0 and max(starts) == last


def test_same_seed_epoch_index_gives_the_same_window():
    fps = 25
    first = WindowDataset(clips_for(fps), fps, window_seconds=0.8, seed=7, windows_per_clip=3)
    second = WindowDataset(clips_for(fps), fps, window_seconds=0.8, seed=7, windows_per_clip=3)
    first.set_epoch(5)
    second.set_epoch(5)
    # Order of access does not matter: a resumed run that starts mid-epoch sees the same windows.
    forward = [first[i]["curves"] for i in range(len(first))]
    backward = [second[i]["curves"] for i in reversed(range(len(second)))][::-1]
    for a, b in zip(forward, backward):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    first.set_epoch(6)
    first.set_epoch(5)
    torch.testing.assert_close(first[4]["audio"], second[4]["audio"], rtol=0, atol=0)


def window_starts(dataset: WindowDataset, epoch: int) -> list[float]:
    dataset.set_epoch(epoch)
    return [float(dataset[i]["curves"][0, 0]) for i in range(len(dataset))]


def test_epoch_and_seed_change_the_windows():
    fps = 30
    clips = clips_for(fps)
    dataset = WindowDataset(clips, fps, window_seconds=0.5, seed=0, windows_per_clip=4)
    other_seed = WindowDataset(clips, fps, window_seconds=0.5, seed=1, windows_per_clip=4)
    assert window_starts(dataset, 0) != window_starts(dataset, 1)
    assert window_starts(dataset, 0) != window_starts(other_seed, 0)
    # Windows of the same clip within one epoch differ too (their index differs).
    assert len(set(window_starts(dataset, 0)[4:8])) > 1


def test_short_clip_is_returned_whole():
    fps = 30
    short = timed_clip("short", 12345, fps)
    item = WindowDataset([short], fps, window_seconds=2.0)[0]
    assert item["audio"].shape == (12345,) and item["curves"].shape == (num_frames(12345, fps), 3)
    np.testing.assert_array_equal(item["audio"].numpy(), short.audio)


def test_items_do_not_alias_the_clips():
    fps = 30
    clip = timed_clip("c", 40111, fps)
    item = ClipDataset([clip])[0]
    item["audio"].zero_()
    item["curves"].zero_()
    assert clip.audio[-1] > 0 and clip.curves[-1, 0] > 0


def test_window_must_be_whole_frames_and_arguments_checked():
    clips = clips_for(30)
    with pytest.raises(ValueError, match="not a whole number of frames"):
        # 1.499997 frames rounds to 1, but its 800 samples are exactly 1.5 frames, which round to 2.
        WindowDataset(clips, 30, window_seconds=0.0499999)
    with pytest.raises(ValueError, match="windows_per_clip"):
        WindowDataset(clips, 30, windows_per_clip=0)
    with pytest.raises(ValueError, match="at least one clip"):
        WindowDataset([], 30)
    with pytest.raises(IndexError):
        WindowDataset(clips, 30)[len(clips)]


@pytest.mark.parametrize("fps", FPS_VALUES)
def test_clip_dataset_and_collate(fps):
    clips = clips_for(fps)
    dataset = ClipDataset(clips)
    assert len(dataset) == len(clips)
    batch = collate([dataset[i] for i in range(len(dataset))])
    lengths = torch.tensor(ODD_SAMPLES)
    frames = torch.tensor([num_frames(n, fps) for n in ODD_SAMPLES])
    assert batch["ids"] == [c.id for c in clips]
    assert batch["audio"].shape == (4, max(ODD_SAMPLES)) and batch["audio"].dtype == torch.float32
    assert batch["curves"].shape == (4, int(frames.max()), 3)
    assert batch["audio_lengths"].dtype == torch.int64 and torch.equal(batch["audio_lengths"], lengths)
    assert batch["frame_lengths"].dtype == torch.int64 and torch.equal(batch["frame_lengths"], frames)
    assert batch["mask"].dtype == torch.bool and batch["mask"].shape == (4, int(frames.max()))
    assert torch.equal(batch["mask"].sum(1), frames)
    assert torch.equal(batch["scored"], batch["mask"])  # no NaN curves: every real frame has a target
    for i, clip in enumerate(clips):
        n, t = len(clip.audio), clip.curves.shape[0]
        assert torch.equal(batch["audio"][i, :n], torch.from_numpy(clip.audio))
        assert torch.equal(batch["curves"][i, :t], torch.from_numpy(clip.curves))
        assert bool(batch["mask"][i, : t].all()) and not bool(batch["mask"][i, t:].any())
        assert not batch["audio"][i, n:].any() and not batch["curves"][i, t:].any()


def test_dataloader_over_a_real_corpus(good_corpus: Path):
    fps = 30
    clips = load_clips(good_corpus, "oculus15", fps, progress=False)
    windows = WindowDataset(clips, fps, window_seconds=1.0, seed=0, windows_per_clip=2)
    loader = DataLoader(windows, batch_size=3, shuffle=False, collate_fn=collate)
    batches = list(loader)
    assert sum(len(b["ids"]) for b in batches) == 8
    for batch in batches:
        for n, t in zip(batch["audio_lengths"].tolist(), batch["frame_lengths"].tolist()):
            assert t == num_frames(n, fps)
            assert n <= 16000  # a full window, or a whole clip shorter than it (d: 0.75 s, b: 0.9 s)
        assert batch["curves"].shape[-1] == 15
