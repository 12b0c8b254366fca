"""The model card written beside an exported graph: everything needed to use it.

``model.onnx`` -> ``model.json`` with: rig, channels, fps, sample_rate (what
conversion needs), encoder id and architecture, the model config that rebuilds
it for fine-tuning (``lipsync.model.from_onnx``), the training run (run dir,
checkpoint, step, git state, command), its final metrics, package version,
opset, the graph's inputs and outputs, and the parity check's result.
"""
from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import lipsync
from lipsync.atomic import atomic_write
from lipsync.convert.predictor import CARD_FORMAT, INPUT_LENGTHS, INPUT_WAVEFORM, OUTPUT_CURVES
from lipsync.export.parity import ParityResult

CARD_VERSION = 1
RUN_DONE_FILE = "done.json"  # written by training when a run completes


def run_dir_of(checkpoint: Path) -> Path | None:
    """``runs/x/y/checkpoints/last.ckpt`` -> ``runs/x/y`` (None for a loose checkpoint file)."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == "checkpoints" else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def training_run(info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """(run facts, final metrics) from the checkpoint's info and its run dir, where there is one."""
    checkpoint = Path(info.get("checkpoint", ""))
    run = {"checkpoint": str(checkpoint), "global_step": info.get("global_step")}
    metrics: dict[str, float] = {}
    run_dir = run_dir_of(checkpoint) if info.get("checkpoint") else None
    if run_dir is not None:
        run["run_dir"] = str(run_dir)
        run["git"] = _read_json(run_dir / "git.json")
        command = run_dir / "command.txt"
        run["command"] = command.read_text(encoding="utf-8").strip() if command.is_file() else None
        done = _read_json(run_dir / RUN_DONE_FILE)
        run["complete"] = done is not None
        if isinstance(done, dict):
            metrics = {k: float(v) for k, v in (done.get("metrics") or {}).items() if isinstance(v, (int, float))}
    return run, metrics


def encoder_description(model_config: dict[str, Any]) -> dict[str, Any]:
    encoder = model_config.get("encoder", {})
    head = model_config.get("head", {})
    target = str(encoder.get("_target_", "?")).rsplit(".", 1)[-1]
    hf_type = (encoder.get("config") or {}).get("model_type") if isinstance(encoder.get("config"), dict) else None
    return {
        "id": model_config.get("encoder_id") or encoder.get("pretrained") or (f"{hf_type} (trained from scratch)" if hf_type else target),
        "class": target,
        "head": str(head.get("_target_", "?")).rsplit(".", 1)[-1],
    }


def build_model_card(model, infos: Sequence[dict[str, Any]], onnx_name: str, opset: int,
                     parity: Sequence[ParityResult], tolerance: float) -> dict[str, Any]:
    """``infos``: the checkpoint info of each model in the graph (several: an ensemble of their mean curves)."""
    import onnx
    import onnxruntime
    import torch

    members = [{"architecture": encoder_description(i.get("model_config", {})), "model_config": i.get("model_config"),
                **dict(zip(("training_run", "metrics"), training_run(i)))} for i in infos]
    if len(members) == 1:  # model_config rebuilds the trainable model (fine-tuning an export)
        keys = ("architecture", "model_config", "training_run", "metrics")
        encoder, model_config, run, metrics = (members[0][k] for k in keys)
    else:  # an ensemble has no single trainable model: its members are listed, each fine-tunable from its run
        run, metrics, model_config = {"members": [m["training_run"] for m in members]}, {}, None
        encoder = {"id": f"mean of {len(members)}: " + " + ".join(m["architecture"]["id"] for m in members),
                   "class": "MeanOfModels", "members": members}
    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "model_file": onnx_name,
        "rig": model.rig.name,
        "channels": list(model.rig.channels),
        "fps": float(model.fps),
        "sample_rate": int(model.sample_rate),
        "encoder": encoder["id"],
        "architecture": encoder,
        "model_config": model_config,
        "inputs": {INPUT_WAVEFORM: "float32 [batch, samples], 16 kHz mono; equal-length clips per batch",
                   INPUT_LENGTHS: "int64 [batch], samples per clip"},
        "outputs": {OUTPUT_CURVES: "float32 [batch, frames, channels] in [0, 1]; frames = floor(samples * fps / sample_rate + 0.5)"},
        "training_run": run,
        "metrics": metrics,
        "package_version": lipsync.__version__,
        "opset": opset,
        "exported_with": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                          "python": platform.python_version()},
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "parity": {
            "tolerance": tolerance,
            "max_abs_diff": max(r.max_abs_diff for r in parity),
            "cases": [{"audio": r.label, "frames": r.frames, "max_abs_diff": r.max_abs_diff} for r in parity],
        },
    }


def write_model_card(card: dict[str, Any], path: str | Path, overwrite: bool = True) -> None:
    with atomic_write(path, "w", overwrite=overwrite, encoding="utf-8") as f:
        json.dump(card, f, indent=2, default=str)
        f.write("\n")
