"""Freeze the plain model into one ONNX graph with dynamic batch and time axes.

The legacy TorchScript exporter (``dynamo=False``) is used on purpose: it
keeps the batch and samples axes dynamic, takes a fraction of a second, and
needs only ``onnx``; the dynamo exporter took 7-19 s here and a second export
in one process came out with fixed input shapes (see ENV.md). The model's
frame counts are computed with tensor operations, so the traced graph stays
valid for any length.

Batches: the graph treats every row as ``samples`` long (tracing follows the
equal-length path), so a batch must hold equal-length clips; pass clips of
different lengths one at a time, as conversion does.
"""
from __future__ import annotations

import io
import warnings

import torch
from torch import nn

from lipsync.convert.predictor import INPUT_LENGTHS, INPUT_WAVEFORM, OUTPUT_CURVES, check_ensemble_member

OPSET = 17
DYNAMIC_AXES = {
    INPUT_WAVEFORM: {0: "batch", 1: "samples"},
    INPUT_LENGTHS: {0: "batch"},
    OUTPUT_CURVES: {0: "batch", 1: "frames"},
}


class MeanOfModels(nn.Module):
    """Several trained models of one rig, frame rate and sample rate as one graph: the mean of their curves
    (``lipsync.convert.predictor.EnsemblePredictor`` does the same with models loaded apart)."""

    def __init__(self, members: list[nn.Module], names: list[str]):
        super().__init__()
        first = members[0]
        for model, name in zip(members[1:], names[1:]):
            check_ensemble_member(first, model, names[0], name)
        self.members = nn.ModuleList(members)
        self.rig, self.channels, self.fps, self.sample_rate = first.rig, first.channels, first.fps, first.sample_rate

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(waveform, lengths) for m in self.members]).mean(dim=0)


def export_onnx_bytes(model: nn.Module, opset: int = OPSET, example_seconds: float = 2.0) -> bytes:
    """The serialised ONNX model, checked by ``onnx.checker``; the model is put in eval mode."""
    import onnx

    model = model.eval()
    n = int(example_seconds * getattr(model, "sample_rate", 16000))
    example = (0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(0)), torch.tensor([n], dtype=torch.int64))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The legacy exporter announces its own deprecation and notes on constant folding; neither is actionable.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model, example, buffer, dynamo=False, opset_version=opset,
            input_names=[INPUT_WAVEFORM, INPUT_LENGTHS], output_names=[OUTPUT_CURVES],
            dynamic_axes=DYNAMIC_AXES, do_constant_folding=True,
        )
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data
