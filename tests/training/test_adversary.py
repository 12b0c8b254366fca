"""Domain-adversarial training: the reversed gradient, the classifier, and a real run with it on."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from support import compose_train
from lipsync.model.checkpoint import load_model
from lipsync.training.adversary import DomainAdversary, reverse_gradient
from lipsync.training.train import train


def test_reverse_gradient_is_identity_forward_and_flips_and_scales_backward():
    x = torch.randn(3, 4, requires_grad=True)
    y = reverse_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.allclose(x.grad, -0.25 * torch.arange(4.0).expand(3, 4))


def test_strength_ramps_from_zero_to_the_weight():
    adversary = DomainAdversary(8, {"a": "x", "b": "y"}, weight=0.3, ramp_steps=100)
    assert adversary.strength(0) == 0.0
    assert 0 < adversary.strength(10) < adversary.strength(50) < 0.3
    assert adversary.strength(100) == pytest.approx(0.3, rel=1e-3) and adversary.strength(10_000) == adversary.strength(100)


def test_classifier_learns_the_domains_while_its_gradient_pushes_the_features_to_hide_them():
    torch.manual_seed(0)
    ids = [f"clip{i}" for i in range(8)]
    domain_of = {c: ("festival" if i % 2 else "espeak") for i, c in enumerate(ids)}
    features = torch.randn(8, 20, 16)
    features[1::2, :, 0] += 3.0  # one feature gives the domain away
    mask = torch.ones(8, 20, dtype=torch.bool)
    mask[0, 15:] = False  # padded frames are not scored
    adversary = DomainAdversary(16, domain_of, weight=1.0, ramp_steps=0, hidden=16)
    optimizer = torch.optim.Adam(adversary.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        adversary(features, mask, ids, step=0)["adversary"].backward()
        optimizer.step()
    out = adversary(features, mask, ids, step=0)
    assert out["adversary_acc"] > 0.95

    # One gradient-descent step on the features (as the encoder would take) makes the classifier worse.
    leaf = features.clone().requires_grad_(True)
    adversary(leaf, mask, ids, step=0)["adversary"].backward()
    with torch.no_grad():
        moved = leaf - 0.5 * leaf.grad / leaf.grad.abs().max()
        assert adversary(moved, mask, ids, step=0)["adversary"] > out["adversary"]


def test_one_domain_or_an_unknown_clip_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="at least 2 domains.*adversary.field=null"):
        DomainAdversary(8, {"a": "espeak", "b": "espeak"})
    adversary = DomainAdversary(8, {"a": "x", "b": "y"})
    with pytest.raises(KeyError, match="no domain"):
        adversary(torch.zeros(1, 3, 8), torch.ones(1, 3, dtype=torch.bool), ["c"], step=0)


def test_training_with_an_adversary_logs_it_and_leaves_the_saved_model_unchanged(mini_corpus, tmp_path):
    cfg = compose_train(["experiment=scratch", f"data.root={mini_corpus}", f"run.dir={tmp_path}",
                         "trainer.max_steps=4", "trainer.log_every_n_steps=1", "data.batch_size=4",
                         "trainer.val_check_interval=4", "callbacks.progress_bar.refresh_rate=0",
                         "model.encoder.hidden=32", "model.head.hidden=32", "model.head.layers=3",
                         "adversary.field=speaker", "adversary.ramp_steps=2"])
    assert train(cfg) == 0
    rows = [r for r in csv.DictReader(open(tmp_path / "metrics" / "metrics.csv")) if r.get("train/adversary")]
    assert len(rows) == 4
    entries = [json.loads(line) for line in (mini_corpus / "manifest.jsonl").read_text().splitlines()]
    speakers = {e["speaker"] for e in entries if e["split"] == "train"}
    assert len(speakers) > 2  # chance-level cross-entropy is log(speakers)
    assert all(0 < float(r["train/adversary"]) < 2 * math.log(len(speakers)) for r in rows)
    assert all(float(r["train/loss"]) > float(r["train/adversary"]) for r in rows)  # the curve loss plus it
    model, _ = load_model(tmp_path)  # strict: the checkpoint's model weights are the plain model's
    assert not any("adversary" in name for name, _ in model.named_parameters())


def test_an_adversary_field_missing_from_the_manifest_is_refused(mini_corpus, tmp_path):
    cfg = compose_train(["experiment=scratch", f"data.root={mini_corpus}", f"run.dir={tmp_path}",
                         "trainer.max_steps=1", "adversary.field=microphone"])
    with pytest.raises(ValueError, match="adversary.field=microphone: 16 training clip.*no 'microphone'"):
        train(cfg)
