"""Predictors: something that turns a 16 kHz mono waveform into curves.

Conversion runs either an exported ONNX file (the fast path, no torch import)
or a checkpoint / run dir through ``lipsync.model.checkpoint.load_model``.
Both look the same to the chunker and the runner: ``rig``, ``fps``,
``sample_rate``, ``describe()`` and ``predict(wave) -> Curves``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lipsync.audio import SAMPLE_RATE
from lipsync.curves import Curves
from lipsync.rigs import BUILTIN_RIGS, Rig, load_rig

# The exported graph's interface (lipsync.export writes it, model.json records it).
INPUT_WAVEFORM = "waveform"  # float32 [batch, samples] at 16 kHz
INPUT_LENGTHS = "lengths"  # int64 [batch], samples per clip
OUTPUT_CURVES = "curves"  # float32 [batch, frames, channels] in [0, 1]
CARD_FORMAT = "lipsync.model-card"


class ModelLoadError(ValueError):
    """A model path that cannot be used; the message names the file, the problem and the fix."""


class Predictor(Protocol):
    rig: Rig
    fps: float
    sample_rate: int

    def predict(self, wave: np.ndarray) -> Curves:
        """float32 mono samples at ``sample_rate`` -> curves with num_frames(len(wave), fps) frames."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able facts about the model for output metadata."""
        ...


def card_path(onnx_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.json`` (the model card beside it)."""
    return Path(onnx_path).with_suffix(".json")


def read_model_card(onnx_path: str | Path) -> dict[str, Any]:
    path = card_path(onnx_path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: model card missing; export with scripts/export.py, which writes it beside the .onnx") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}: cannot read model card ({e}); export the model again") from e
    missing = [k for k in ("rig", "channels", "fps", "sample_rate") if k not in card]
    if missing:
        raise ModelLoadError(f"{path}: model card lacks {missing}; export the model again with scripts/export.py")
    return card


def rig_from_card(name: str, channels: list[str]) -> Rig:
    """The built-in rig when the card names one with the same channels, else a rig of the card's channels."""
    if name in BUILTIN_RIGS:
        rig = load_rig(name)
        if list(rig.channels) == list(channels):
            return rig
    return Rig(name=name, channels=tuple(channels))


class OnnxPredictor:
    """An exported ``model.onnx`` run by ONNX Runtime on CPU, batch of one."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.card = read_model_card(self.path)
        self.rig = rig_from_card(self.card["rig"], self.card["channels"])
        self.fps = float(self.card["fps"])
        self.sample_rate = int(self.card["sample_rate"])
        if self.sample_rate != SAMPLE_RATE:
            raise ModelLoadError(f"{card_path(self.path)}: sample_rate {self.sample_rate}; conversion feeds {SAMPLE_RATE} Hz")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Threads that spin between ops steal a core from file reading, writing and other jobs; on 2 busy
        # cores spinning doubled the median run time of the scratch model (measured). Results are unchanged.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # warnings about unused initialisers are noise to a user
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for bad files
            raise ModelLoadError(f"{self.path}: ONNX Runtime cannot load it ({str(e).splitlines()[0]}); export again") from e
        names = {i.name for i in self.session.get_inputs()}
        if names != {INPUT_WAVEFORM, INPUT_LENGTHS}:
            raise ModelLoadError(f"{self.path}: inputs are {sorted(names)}, expected {INPUT_WAVEFORM!r} and {INPUT_LENGTHS!r}")

    def predict(self, wave: np.ndarray) -> Curves:
        wave = np.ascontiguousarray(wave, dtype=np.float32)[None]
        lengths = np.array([wave.shape[1]], dtype=np.int64)
        (curves,) = self.session.run([OUTPUT_CURVES], {INPUT_WAVEFORM: wave, INPUT_LENGTHS: lengths})
        return Curves(curves[0].astype(np.float32, copy=False), self.rig.channels, self.fps)

    def describe(self) -> dict[str, Any]:
        keys = ("encoder", "training_run", "package_version")
        return {"path": str(self.path), "kind": "onnx", **{k: self.card[k] for k in keys if k in self.card}}


class TorchPredictor:
    """A checkpoint or run dir, loaded through ``lipsync.model.checkpoint.load_model`` and run eagerly on CPU."""

    def __init__(self, path: str | Path, threads: int | None = None):
        # OpenMP threads that spin-wait between ops make eager inference 10-100x slower on cores shared with
        # other work (measured on 2 busy cores); sleeping waits cost little. Only effective before torch loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import torch

        try:
            from lipsync.model.checkpoint import load_model
        except ImportError as e:
            raise ModelLoadError(
                f"{path}: this build cannot load checkpoints ({e}); export it with scripts/export.py and pass the .onnx"
            ) from e
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.path = Path(path)
        self.model, self.info = load_model(self.path)
        self.model.eval()
        self.rig = self.model.rig
        self.fps = float(self.model.fps)
        self.sample_rate = int(getattr(self.model, "sample_rate", SAMPLE_RATE))

    def predict(self, wave: np.ndarray) -> Curves:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
            curves = self.model(x, torch.tensor([x.shape[1]], dtype=torch.int64))
        return Curves(curves[0].float().numpy(), self.rig.channels, self.fps)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": "checkpoint", **{k: v for k, v in self.info.items() if _jsonable(v)}}


def check_ensemble_member(first, other, first_name: str, other_name: str) -> None:
    """Models (predictors or trained modules) average into one only with the same channels, fps and sample rate."""
    mismatch = [name for name, a, b in (("channels", first.rig.channels, other.rig.channels),
                                        ("fps", first.fps, other.fps),
                                        ("sample_rate", first.sample_rate, other.sample_rate)) if a != b]
    if mismatch:
        raise ModelLoadError(f"{other_name} differs from {first_name} in {', '.join(mismatch)}: an ensemble "
                             "averages models of one rig, fps and sample rate")


class EnsemblePredictor:
    """Several models of one rig, frame rate and sample rate run as one: the mean of their curves.

    Models trained apart (another seed, another recipe) err in different places on voices they never heard;
    where they disagree the mean stays below the event threshold, so fewer false closures pass.
    """

    def __init__(self, members: list[Predictor]):
        first = members[0]
        for other in members[1:]:
            check_ensemble_member(first, other, first.describe()["path"], other.describe()["path"])
        self.members = members
        self.rig, self.fps, self.sample_rate = first.rig, first.fps, first.sample_rate

    def predict(self, wave: np.ndarray) -> Curves:
        values = np.mean([m.predict(wave).values for m in self.members], axis=0, dtype=np.float32)
        return Curves(values, self.rig.channels, self.fps)

    def describe(self) -> dict[str, Any]:
        members = [m.describe() for m in self.members]
        return {"path": " + ".join(m["path"] for m in members), "kind": "ensemble", "members": members}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def is_onnx_model(path: str | Path) -> bool:
    path = Path(path)
    return path.suffix.lower() == ".onnx" or (path.is_dir() and (path / "model.onnx").is_file())


def onnx_file(path: str | Path) -> Path:
    """An exported model's graph file: the path itself, or ``model.onnx`` in a folder."""
    path = Path(path)
    return path / "model.onnx" if path.is_dir() else path


# Models shipped in the package (ONNX + card), usable by name right after install.
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS_DIR / "default.onnx"


def shipped_models() -> dict[str, Path]:
    """The models shipped in the package by name (``default``, ``ja``), each an ONNX file with its card."""
    return {path.stem: path for path in sorted(MODELS_DIR.glob("*.onnx"))}


def resolve_model(model: str | None) -> str:
    """``--model``: an existing path as given, else a shipped model's name (none given: ``default``).

    Shipped models need no training and no download, so audio converts right after install.
    """
    if model is not None and (Path(model).exists() or "/" in model or os.sep in model or Path(model).suffix):
        return model  # a path: load_predictor says if it is missing
    shipped = shipped_models()
    name = "default" if model is None else model
    if name in shipped:
        print(f"using the shipped model {name!r}: {shipped[name]} (card {shipped[name].with_suffix('.json')})",
              file=sys.stderr)
        return str(shipped[name])
    if model is None:
        raise ModelLoadError(f"no --model given and the shipped model {DEFAULT_MODEL} is missing; "
                             "reinstall lipsync or pass --model model.onnx")
    raise ModelLoadError(f"--model {model}: no such file or folder, and not a shipped model "
                         f"(shipped: {', '.join(shipped) or 'none'}); pass an exported .onnx, a checkpoint or a run dir")


def load_predictor(path: str | Path, threads: int | None = None) -> Predictor:
    """``model.onnx`` (or a folder holding one) -> ONNX Runtime; anything else -> checkpoint loader."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model; pass an exported .onnx, a checkpoint or a run dir")
    if is_onnx_model(path):
        return OnnxPredictor(onnx_file(path), threads)
    return TorchPredictor(path, threads)


def load_predictors(paths: list[str | Path], threads: int | None = None) -> Predictor:
    """One model, or several averaged as an ``EnsemblePredictor``."""
    members = [load_predictor(p, threads) for p in paths]
    return members[0] if len(members) == 1 else EnsemblePredictor(members)
