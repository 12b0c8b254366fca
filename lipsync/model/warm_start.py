"""``init_from``: start a new training run from a trained model's weights (fine-tuning).

The source is a shipped model's name (``default``), an exported ``.onnx`` with
its card, a checkpoint or a run dir. Only the weights are taken: the step
count, optimiser state and learning-rate schedule start afresh. The source's
architecture must be the one the config builds; a mismatch is refused with
the fields that differ and their values on both sides.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lipsync.model import LipSyncModel
from lipsync.model.checkpoint import CheckpointError, load_model, portable_model_config

# What decides the architecture; the rest of a model config (e.g. encoder_id, a note) does not.
ARCHITECTURE_KEYS = ("encoder", "head", "rig", "fps", "sample_rate")


def source_model(spec: str) -> tuple[LipSyncModel, dict[str, Any], str]:
    """(model, its portable model config, a one-line description) of ``init_from``'s value."""
    from lipsync.convert.predictor import is_onnx_model, resolve_model

    try:
        path = Path(resolve_model(spec))  # a path as given, else a shipped model's name
    except ValueError as e:
        raise CheckpointError(f"init_from={spec}: {e}") from None
    if not path.exists():
        raise CheckpointError(f"init_from={spec}: no such file or run dir; pass a shipped model's name "
                              "(default), an exported .onnx, a .ckpt or a run dir")
    if is_onnx_model(path):
        from lipsync.model.from_onnx import load_exported

        model, card = load_exported(path)
        return model, card["model_config"], f"{path} (exported model, {card.get('encoder', '?')})"
    model, info = load_model(path)
    return model, info["model_config"], f"{info['checkpoint']} (step {info.get('global_step')})"


def warm_start(model: LipSyncModel, model_config: dict, spec: str) -> str:
    """Copy ``spec``'s weights into ``model`` (built from ``model_config``); returns what was loaded."""
    source, source_config, description = source_model(spec)
    differences = _differences(_architecture(portable_model_config(model_config, model)),
                               _architecture(source_config))
    if differences:
        listed = "; ".join(f"model.{key}: config {ours!r}, {spec} {theirs!r}" for key, ours, theirs in differences)
        raise CheckpointError(f"init_from={spec}: its architecture differs from this config's ({listed}). "
                              "Set the config's model to the source's (experiment=finetune matches the shipped "
                              "default) or start without init_from")
    model.load_state_dict(source.state_dict(), strict=True)
    return description


def _architecture(model_config: dict) -> dict:
    return {k: model_config.get(k) for k in ARCHITECTURE_KEYS}


def _differences(ours: Any, theirs: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, our value, their value) for every leaf that differs."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = []
        for key in sorted(set(ours) | set(theirs), key=str):
            found += _differences(ours.get(key), theirs.get(key), f"{prefix}{'.' if prefix else ''}{key}")
        return found
    return [] if ours == theirs else [(prefix, ours, theirs)]
