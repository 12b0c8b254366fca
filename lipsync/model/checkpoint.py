"""Rebuild the plain model from a training checkpoint, without Lightning or the hub.

A checkpoint carries ``checkpoint["lipsync"]["model_config"]``: the ``model``
config with a pretrained encoder's hub id replaced by its own config, so the
architecture is rebuilt offline and the trained weights are loaded into it.
Loads with ``weights_only=True``: a checkpoint holds only tensors and plain data.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from lipsync.model import LipSyncModel, build_model


class CheckpointError(ValueError):
    """A checkpoint path that cannot be turned into a model."""


def portable_model_config(model_config: dict, model: LipSyncModel) -> dict:
    """``model_config`` with a pretrained encoder pinned to its own config (no hub needed to rebuild)."""
    cfg = copy.deepcopy(model_config)
    pretrained = cfg["encoder"].get("pretrained")
    if pretrained:
        cfg["encoder"]["pretrained"] = None
        cfg["encoder"]["config"] = model.encoder.hf_config()
        cfg["encoder_id"] = pretrained
    return cfg


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run dir (its ``checkpoints/last.ckpt``)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / "last.ckpt"
        if not candidate.exists():
            raise CheckpointError(f"{path}: run dir has no checkpoints/last.ckpt; pass a .ckpt file instead")
        return candidate.resolve()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or run dir")
    return path


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[LipSyncModel, dict[str, Any]]:
    """(model in eval mode, info) from a checkpoint file or run dir; info has the model config and metadata."""
    ckpt_path = resolve_checkpoint(path)
    try:
        ckpt = torch.load(ckpt_path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CheckpointError(f"{ckpt_path}: cannot read checkpoint ({e})") from e
    info = ckpt.get("lipsync")
    if not info or "model_config" not in info:
        raise CheckpointError(f"{ckpt_path}: not a lipsync checkpoint (no 'lipsync' metadata)")
    model = build_model(info["model_config"])
    prefix = "model."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    model.load_state_dict(state, strict=True)
    meta = {k: v for k, v in info.items()}
    meta.update(checkpoint=str(ckpt_path), global_step=ckpt.get("global_step"))
    return model.eval(), meta
