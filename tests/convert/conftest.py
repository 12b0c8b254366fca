"""Fixtures for conversion: a tiny exported ONNX model and real audio files in many shapes.

The tiny model stands in for a trained one: a strided conv (~50 Hz frames,
25 ms window), a 5-frame mixing conv, linear frame alignment to
num_frames(samples, fps) and a sigmoid. It is exported with the legacy
exporter and dynamic axes, exactly like lipsync.export, with a model card.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lipsync.rigs import load_rig

ALSA_DIR = Path("/usr/share/sounds/alsa")
SPEECH = ALSA_DIR / "Front_Center.wav"  # a human voice, 48 kHz mono, 1.43 s


def _tiny_module(n_channels: int, fps: float):
    import torch
    from torch import nn

    class TinyLipSync(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.frames = nn.Conv1d(1, 8, kernel_size=400, stride=320)
            self.mix = nn.Conv1d(8, n_channels, kernel_size=5, padding=2)
            self.fps = fps

        def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            x = nn.functional.pad(waveform[:, None], (40, 359))  # ceil(N / 320) frames for any N >= 1
            feats = self.mix(torch.tanh(self.frames(x) * 20.0))  # [B, C, F]
            # Counts from tensors, never Python ints, so the traced graph keeps the time axis dynamic.
            n_in = torch.div(lengths.max() + 319, 320, rounding_mode="floor")
            n_out = torch.floor(lengths.max().to(torch.float64) * self.fps / 16000 + 0.5).to(torch.int64)
            last = (n_in - 1).to(torch.float32)
            pos = (torch.arange(n_out, dtype=torch.float32) + 0.5) * (n_in.to(torch.float32) / n_out.to(torch.float32)) - 0.5
            pos = torch.minimum(pos.clamp(min=0.0), last)
            left = pos.floor().to(torch.int64)
            right = torch.minimum(left + 1, n_in - 1)
            w = pos - left.to(torch.float32)
            out = feats[:, :, left] * (1 - w) + feats[:, :, right] * w
            return torch.sigmoid(out).transpose(1, 2)

    return TinyLipSync().eval()


def export_tiny_model(folder: Path, rig_name: str = "oculus15", fps: float = 30.0) -> Path:
    import torch

    rig = load_rig(rig_name)
    model = _tiny_module(len(rig), fps)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    wave = torch.randn(1, 16000)
    with warnings.catch_warnings():  # the legacy exporter's deprecation and constant-folding notes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (wave, torch.tensor([16000])), str(path), dynamo=False, opset_version=17,
            input_names=["waveform", "lengths"], output_names=["curves"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "lengths": {0: "batch"},
                          "curves": {0: "batch", 1: "frames"}},
        )
    card = {"format": "lipsync.model-card", "version": 1, "rig": rig.name, "channels": list(rig.channels),
            "fps": fps, "sample_rate": 16000, "encoder": "tiny-test-conv", "package_version": "test"}
    (folder / "model.json").write_text(json.dumps(card))
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("tiny_oculus"))


@pytest.fixture(scope="session")
def tiny_onnx_arkit(tmp_path_factory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("tiny_arkit"), "arkit52", fps=60.0)


@pytest.fixture(scope="session")
def speech() -> tuple[np.ndarray, int]:
    """Real human speech (48 kHz) when alsa-utils is installed; the project's machines have it."""
    if not SPEECH.is_file():
        pytest.skip(f"{SPEECH} missing: install Debian alsa-utils for real speech samples")
    wave, rate = sf.read(str(SPEECH), dtype="float32")
    return wave, rate


def speech_like(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Syllable-rate amplitude-modulated harmonics with pauses: deterministic, speech-shaped test audio."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) * (np.sin(2 * np.pi * 0.3 * t) > -0.5)
    return (0.3 * voice * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="session")
def make_speech():
    """``make_speech(seconds, rate, seed)`` -> deterministic speech-shaped float32 audio."""
    return speech_like
