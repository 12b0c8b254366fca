"""The curve loss: emphasis on closures, one-sided or balanced."""
from __future__ import annotations

import torch

from lipsync.rigs import load_rig
from lipsync.training.losses import CurveLoss

CHANNELS = tuple(load_rig("oculus15").channels)


def _closure_every_tenth_frame() -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.zeros(1, 100, len(CHANNELS))
    target[0, ::10, CHANNELS.index("PP")] = 1.0
    return target, torch.ones(1, 100, dtype=torch.bool)


def test_one_sided_emphasis_ignores_false_closures_and_balanced_counts_them():
    target, mask = _closure_every_tenth_frame()
    pp = CHANNELS.index("PP")
    always_closed = torch.full_like(target, -20.0)
    always_closed[..., pp] = 20.0  # lips shut on every frame: every closure hit, 90 false ones
    one_sided = CurveLoss(CHANNELS)(always_closed, target, mask)["emphasis"]
    balanced = CurveLoss(CHANNELS, emphasis_balanced=True)(always_closed, target, mask)["emphasis"]
    assert one_sided < 1e-6  # one-sided: a model that always closes pays nothing extra
    assert abs(balanced.item() - 2.0) < 1e-3  # balanced: weight 2 x mean error 1 on the frames that must stay open


def test_balanced_emphasis_equals_one_sided_for_a_perfect_closure_channel():
    target, mask = _closure_every_tenth_frame()
    logits = torch.logit(target.clamp(1e-6, 1 - 1e-6))
    for balanced in (False, True):
        assert CurveLoss(CHANNELS, emphasis_balanced=balanced)(logits, target, mask)["emphasis"] < 1e-4
