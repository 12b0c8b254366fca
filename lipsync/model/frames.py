"""Frame alignment: encoder frames (~50 Hz) -> exactly num_frames(samples, fps) animation frames.

Written with tensor operations only, so the traced ONNX graph keeps the time
axis dynamic (a Python ``round`` on a shape would freeze it).
"""
from __future__ import annotations

import torch


def target_frames(num_samples: torch.Tensor, fps: float, sample_rate: int) -> torch.Tensor:
    """Tensor version of lipsync.audio.num_frames (float64 keeps hour-long files exact)."""
    return torch.floor(num_samples.to(torch.float64) * float(fps) / sample_rate + 0.5).to(torch.int64)


def resample_frames(features: torch.Tensor, in_frames: torch.Tensor, out_frames: torch.Tensor,
                    step: float, offset: float = 0.0) -> torch.Tensor:
    """Linear interpolation of [B, T, D] encoder frames to ``out_frames`` animation frames.

    Animation frame j (at time j / fps) reads encoder position ``j * step - offset``
    where ``step`` = encoder rate / fps and ``offset`` = time of encoder frame 0
    in encoder frames. The mapping does not depend on the clip's length, so a
    window of a file and the whole file put every frame at the same place
    (chunked conversion equals whole-file conversion). Positions past the
    ``in_frames`` valid frames hold the last one. Counts are 0-d int64 tensors.
    """
    last = (in_frames - 1).clamp(min=0)
    positions = torch.arange(out_frames, device=features.device, dtype=torch.float32) * step - offset
    positions = torch.minimum(positions.clamp(min=0.0), last.to(torch.float32))
    left = positions.floor().to(torch.int64)
    right = torch.minimum(left + 1, last)
    weight = (positions - left.to(torch.float32)).unsqueeze(-1).to(features.dtype)
    return features[:, left] * (1 - weight) + features[:, right] * weight
