"""The curve loss: emphasis on closures, one-sided or balanced."""
from __future__ import annotations

import pytest
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


def test_viseme_cross_entropy_makes_a_closure_on_an_n_cost_against_nn():
    target = torch.zeros(1, 10, len(CHANNELS))
    target[0, :, CHANNELS.index("nn")] = 1.0  # an /n/ throughout
    mask = torch.ones(1, 10, dtype=torch.bool)
    right, wrong = torch.full_like(target, -5.0), torch.full_like(target, -5.0)
    right[..., CHANNELS.index("nn")] = 5.0
    wrong[..., CHANNELS.index("nn")] = 5.0
    wrong[..., CHANNELS.index("PP")] = 5.0  # lips shut as well: the sigmoids alone see one channel wrong
    loss = CurveLoss(CHANNELS, viseme_ce_weight=1.0)
    assert "viseme_ce" not in CurveLoss(CHANNELS)(right, target, mask)
    ce_right, ce_wrong = loss(right, target, mask)["viseme_ce"], loss(wrong, target, mask)["viseme_ce"]
    assert ce_right < 1e-3 and abs(ce_wrong.item() - torch.log(torch.tensor(2.0)).item()) < 1e-2  # nn shares with PP
    padded = torch.cat([mask[:, :5], torch.zeros(1, 5, dtype=torch.bool)], dim=1)
    assert torch.isclose(loss(wrong, target, padded)["viseme_ce"], ce_wrong)  # the mean over valid frames only


def test_viseme_cross_entropy_is_refused_for_a_blendshape_rig():
    with pytest.raises(ValueError, match="needs the oculus15 viseme rig"):
        CurveLoss(tuple(load_rig("arkit52").channels), viseme_ce_weight=0.5)
