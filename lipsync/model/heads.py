"""Temporal heads: [B, T, D] features at animation frame rate -> [B, T, C] logits.

Every head honours ``lengths`` so that a padded batch gives the same output
as each clip alone: convolutions zero the padding before every layer (exactly
what the zero padding of a clip alone looks like), the GRU packs sequences,
the Transformer masks padded keys.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]  # [B, T]


class TemporalConvHead(nn.Module):
    """Residual stack of dilated 1-D convolutions (receptive field grows 2x per layer).

    Pre-norm blocks (LayerNorm per frame, so padding cannot leak in): without
    them the residual stream grows with depth until the output saturates.
    causal=True looks only at past frames (for streaming), at the cost of the
    anticipation that coarticulation needs; expect lower scores.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, layers: int = 6, kernel: int = 3,
                 dropout: float = 0.1, causal: bool = False):
        super().__init__()
        self.causal, self.kernel = causal, kernel
        self.proj = nn.Conv1d(in_dim, hidden, 1)
        self.dilations = [2**i for i in range(layers)]
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in self.dilations)
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel, dilation=d) for d in self.dilations)
        self.mixes = nn.ModuleList(nn.Conv1d(hidden, hidden, 1) for _ in self.dilations)
        self.dropout = nn.Dropout(dropout)
        self.final_norm = nn.LayerNorm(hidden)
        self.out = nn.Conv1d(hidden, out_dim, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        keep = _mask(lengths, x.shape[1]).unsqueeze(1).to(x.dtype)  # [B, 1, T]
        h = self.proj(x.transpose(1, 2)) * keep
        for norm, conv, mix, d in zip(self.norms, self.convs, self.mixes, self.dilations):
            span = d * (self.kernel - 1)
            pad = (span, 0) if self.causal else (span // 2, span - span // 2)
            y = _channel_norm(norm, h) * keep  # zero padding, exactly as a clip alone is padded
            y = F.gelu(conv(F.pad(y, pad)))
            h = (h + self.dropout(mix(y))) * keep
        return self.out(_channel_norm(self.final_norm, h)).transpose(1, 2)


def _channel_norm(norm: nn.LayerNorm, h: torch.Tensor) -> torch.Tensor:
    """LayerNorm over channels of a [B, C, T] tensor, frame by frame."""
    return norm(h.transpose(1, 2)).transpose(1, 2)


class GRUHead(nn.Module):
    """(Bi)directional GRU; bidirectional=False is the streaming variant."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, layers: int = 2,
                 bidirectional: bool = True, dropout: float = 0.1):
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                          dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(hidden * (2 if bidirectional else 1), out_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or bool((lengths == x.shape[1]).all()):
            return self.out(self.gru(x)[0])
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.out(out)


class TransformerHead(nn.Module):
    """Pre-norm Transformer encoder with a convolutional position signal (works at any length).

    Its own small attention block rather than ``nn.TransformerEncoder``, whose
    legacy ONNX export freezes the batch and time sizes.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, layers: int = 4, heads: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.proj = nn.Linear(in_dim, hidden)
        self.position = nn.Conv1d(hidden, hidden, kernel_size=15, padding=7, groups=hidden)
        self.blocks = nn.ModuleList(_AttentionBlock(hidden, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        keep = _mask(lengths, x.shape[1])
        h = self.proj(x) * keep.unsqueeze(-1)
        h = h + self.position(h.transpose(1, 2)).transpose(1, 2) * keep.unsqueeze(-1)
        attend = keep[:, None, None, :]  # [B, 1, 1, T]: padded keys are never attended to
        for block in self.blocks:
            h = block(h, attend)
        return self.out(self.norm(h))


class _AttentionBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv, self.merge = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.qkv(self.norm1(h)).chunk(3, dim=-1))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        h = h + self.dropout(self.merge(a.transpose(1, 2).flatten(2)))
        return h + self.dropout(self.ff(self.norm2(h)))
