"""The model: a plain ``nn.Module`` from waveform to curves (no loss, no Lightning).

    audio [B, N] @ 16 kHz -> encoder (~50 Hz) -> frame alignment (fps) -> temporal head -> sigmoid -> [B, T, C]
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from lipsync.model.frames import resample_frames, target_frames
from lipsync.rigs import Rig, load_rig


class LipSyncModel(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Module, rig: Rig, fps: float, sample_rate: int = 16000):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.rig, self.fps, self.sample_rate = rig, float(fps), sample_rate

    @property
    def channels(self) -> tuple[str, ...]:
        return self.rig.channels

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return target_frames(lengths, self.fps, self.sample_rate)

    def _frame_map(self) -> tuple[float, float]:
        """(step, offset) from animation frames to encoder frames; see frames.resample_frames."""
        return self.encoder.frame_rate / self.fps, self.encoder.frame_offset * self.encoder.frame_rate

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """waveform [B, N] float32 at 16 kHz (zero-padded), lengths [B] samples -> curves [B, T, C] in [0, 1]."""
        return torch.sigmoid(self.logits(waveform, lengths))

    def logits(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.logits_and_features(waveform, lengths)[0]

    def logits_and_features(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, T, C], the encoder's features aligned to the animation frames [B, T, D]) for training-time heads."""
        features, feature_lengths = self.encoder(waveform, lengths)
        out_lengths = self.frame_lengths(lengths)
        if torch.jit.is_tracing() or bool((lengths == waveform.shape[1]).all()):
            # One batch of equal-length clips (and the exported graph): counts from tensors keep axes dynamic.
            aligned = resample_frames(features, feature_lengths.max(), out_lengths.max(), *self._frame_map())
        else:
            aligned = nn.utils.rnn.pad_sequence(
                [resample_frames(features[i : i + 1], feature_lengths[i], out_lengths[i], *self._frame_map())[0]
                 for i in range(features.shape[0])],
                batch_first=True,
            )
        return self.head(aligned, out_lengths), aligned


def build_model(cfg: Mapping[str, Any]) -> LipSyncModel:
    """Build from the ``model`` config: ``encoder`` and ``head`` are ``_target_`` specs, plus rig and fps."""
    from hydra.utils import instantiate

    rig = load_rig(cfg["rig"])
    encoder = instantiate(cfg["encoder"], _convert_="all")
    head = instantiate(cfg["head"], in_dim=encoder.output_dim, out_dim=len(rig), _convert_="all")
    return LipSyncModel(encoder, head, rig, cfg["fps"], cfg.get("sample_rate", 16000))
