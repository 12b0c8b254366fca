"""Domain-adversarial training: features that do not tell which engine spoke.

A small classifier reads the encoder's features (aligned to the animation
frames) through a gradient reversal layer and learns to name each frame's
domain, the value of a manifest field such as ``engine``. The reversed
gradient pushes the encoder the other way, towards features the classifier
cannot tell apart (Ganin and Lempitsky, 2015). The mouth shape does not depend
on the synthesizer, so what the encoder unlearns is what would not carry over
to a voice it never heard. Training only: the model itself is unchanged and
the exported file has no trace of it.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the gradient flowing back is multiplied by ``-scale``."""
    return _ReverseGradient.apply(x, scale)


class DomainAdversary(nn.Module):
    """Per-frame domain classifier behind a gradient reversal of strength ``weight``.

    The strength ramps from 0 to ``weight`` over ``ramp_steps`` (the DANN
    schedule 2 / (1 + exp(-10 p)) - 1), so the classifier learns the domains
    before the encoder is pushed away from them.
    """

    def __init__(self, in_dim: int, domain_of: Mapping[str, str], weight: float = 0.1, hidden: int = 128,
                 ramp_steps: int = 1000):
        super().__init__()
        if weight < 0 or ramp_steps < 0:
            raise ValueError(f"adversary.weight ({weight}) and adversary.ramp_steps ({ramp_steps}) must be >= 0")
        self.domains: Sequence[str] = sorted(set(domain_of.values()))
        if len(self.domains) < 2:
            raise ValueError(
                f"domain-adversarial training needs clips from at least 2 domains; the training clips have "
                f"{len(self.domains)} ({', '.join(self.domains) or 'none'}): set adversary.field=null or pick another field"
            )
        index = {d: i for i, d in enumerate(self.domains)}
        self.domain_index = {clip: index[d] for clip, d in domain_of.items()}
        self.weight, self.ramp_steps = float(weight), int(ramp_steps)
        # Kernel 5 (5 frames, about 170 ms at 30 fps): enough context to hear a voice, not a sentence.
        self.classifier = nn.Sequential(
            nn.Conv1d(in_dim, hidden, kernel_size=5, padding=2), nn.GELU(), nn.Conv1d(hidden, len(self.domains), 1)
        )

    def strength(self, step: int) -> float:
        if self.ramp_steps == 0:
            return self.weight
        progress = min(1.0, step / self.ramp_steps)
        return self.weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)

    def forward(self, features: torch.Tensor, mask: torch.Tensor, clip_ids: Sequence[str], step: int) -> dict:
        """features [B, T, D], mask [B, T] of real frames -> {"adversary": cross-entropy, "adversary_acc": ...}."""
        unknown = [c for c in clip_ids if c not in self.domain_index]
        if unknown:
            raise KeyError(f"clips {unknown[:3]} have no domain: the adversary was built for other training clips")
        target = torch.tensor([self.domain_index[c] for c in clip_ids], device=features.device)
        reversed_ = reverse_gradient(features, self.strength(step)).transpose(1, 2)
        logits = self.classifier(reversed_).transpose(1, 2)  # [B, T, domains]
        frames = mask.reshape(-1)
        per_frame = target[:, None].expand(mask.shape).reshape(-1)[frames]
        flat = logits.reshape(-1, logits.shape[-1])[frames]
        loss = F.cross_entropy(flat.float(), per_frame)
        accuracy = (flat.argmax(dim=1) == per_frame).float().mean().detach()
        return {"adversary": loss, "adversary_acc": accuracy}
