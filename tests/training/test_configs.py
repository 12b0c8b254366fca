"""Every config file composes and instantiates."""
from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from transformers import Wav2Vec2Config, Wav2Vec2Model

from support import CONFIGS, compose_train
from lipsync.model import build_model

ENCODERS = sorted(p.stem for p in (CONFIGS / "model" / "encoder").glob("*.yaml"))
HEADS = sorted(p.stem for p in (CONFIGS / "model" / "head").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
DEBUGS = sorted(p.stem for p in (CONFIGS / "debug").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (CONFIGS / "trainer").glob("*.yaml"))


@pytest.fixture(scope="module")
def local_w2v(tmp_path_factory):
    """A tiny wav2vec2 saved like a downloaded one, standing in for facebook/wav2vec2-base."""
    path = tmp_path_factory.mktemp("w2v") / "tiny"
    Wav2Vec2Model(Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 conv_dim=(16,) * 7, num_conv_pos_embeddings=8,
                                 num_conv_pos_embedding_groups=2)).save_pretrained(path)
    return path


def _check_model(cfg):
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 8000) * 0.1, torch.tensor([8000]))
    assert out.shape == (1, 15, 15)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("head", HEADS)
def test_model_groups_instantiate(encoder, head, local_w2v):
    overrides = [f"model/encoder={encoder}", f"model/head={head}", "model.head.hidden=16"]
    if encoder == "wav2vec2":
        overrides.append(f"model.encoder.pretrained={local_w2v}")
    _check_model(compose_train(overrides))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_compose_and_instantiate(experiment, local_w2v, tmp_path):
    overrides = [f"experiment={experiment}", f"run.dir={tmp_path}"]
    cfg = compose_train(overrides)
    assert cfg.experiment_name == experiment
    if cfg.model.encoder.get("pretrained"):
        cfg = compose_train(overrides + [f"model.encoder.pretrained={local_w2v}"])
    _check_model(cfg)
    opt = instantiate(cfg.optim.optimizer)(params=[torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.AdamW)
    for spec in list(cfg.callbacks.values()):
        instantiate(spec)
    for spec in cfg.logger.values():
        instantiate(spec, save_dir=str(tmp_path))


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("debug", DEBUGS)
def test_trainer_and_debug_configs_build_a_trainer(trainer, debug, tmp_path):
    from lipsync.training.train import _trainer_args
    import lightning as L

    cfg = compose_train([f"trainer={trainer}", f"debug={debug}", f"run.dir={tmp_path}"])
    L.Trainer(**_trainer_args(cfg.trainer), logger=False, enable_checkpointing=False, default_root_dir=tmp_path)


def test_run_dir_follows_experiment_and_run_name():
    cfg = compose_train(["experiment=scratch", "run.name=try2"])
    assert cfg.run.dir == "runs/scratch/try2"
