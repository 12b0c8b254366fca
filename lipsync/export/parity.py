"""Check an exported graph against the eager model on real audio of several lengths.

Tolerance: the largest absolute difference of any curve value (curves are in
[0, 1]) must not exceed ``PARITY_TOLERANCE`` = 1e-3, a tenth of a percent of
the full range, far below anything visible on a face. Float32 graph rewrites
(constant folding, fused kernels) measured 1e-7 to 1e-5 here; a difference
near 1e-3 means an operator is exported wrongly, not rounding.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from lipsync.convert.predictor import INPUT_LENGTHS, INPUT_WAVEFORM, OUTPUT_CURVES

PARITY_TOLERANCE = 1e-3
PARITY_SECONDS = (0.3, 1.0, 4.7, 65.0)


@dataclass(frozen=True)
class ParityResult:
    label: str  # e.g. "0.3 s" or "2 x 1.0 s"
    frames: int
    max_abs_diff: float


def parity_waves(speech: Sequence[np.ndarray], seconds: Sequence[float] = PARITY_SECONDS,
                 sample_rate: int = 16000) -> list[np.ndarray]:
    """Real speech cut or tiled (recordings joined end to end) to each length."""
    joined = np.concatenate([np.asarray(s, np.float32) for s in speech])
    if joined.size == 0:
        raise ValueError("parity audio is empty")
    waves = []
    for s in seconds:
        n = max(1, int(round(s * sample_rate)))
        reps = -(-n // joined.size)
        waves.append(np.tile(joined, reps)[:n])
    return waves


def check_parity(model: nn.Module, onnx_model: bytes | str | Path, waves: Sequence[np.ndarray],
                 threads: int | None = None) -> list[ParityResult]:
    """Largest |eager - onnxruntime| for each wave alone, and for a batch of two equal-length clips."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    model = model.eval()

    def compare(batch: np.ndarray, label: str) -> ParityResult:
        lengths = np.full(batch.shape[0], batch.shape[1], dtype=np.int64)
        with torch.inference_mode():
            eager = model(torch.from_numpy(batch), torch.from_numpy(lengths)).numpy()
        (exported,) = session.run([OUTPUT_CURVES], {INPUT_WAVEFORM: batch, INPUT_LENGTHS: lengths})
        if exported.shape != eager.shape:
            return ParityResult(label, int(eager.shape[1]), float("inf"))
        return ParityResult(label, int(eager.shape[1]), float(np.abs(exported - eager).max()) if eager.size else 0.0)

    results = [compare(np.asarray(w, np.float32)[None], f"{w.size / 16000:g} s") for w in waves]
    # Dynamic batch axis: two different clips of one length in one call.
    short = min(waves, key=len)
    other = np.roll(np.asarray(short, np.float32), short.size // 3)
    results.append(compare(np.stack([short, other]).astype(np.float32), f"2 x {short.size / 16000:g} s"))
    return results


def parity_table(results: Sequence[ParityResult], tolerance: float = PARITY_TOLERANCE) -> str:
    lines = [f"{'audio':>12} {'frames':>7} {'max |diff|':>11}"]
    lines += [f"{r.label:>12} {r.frames:>7} {r.max_abs_diff:>11.2e}" + ("  > tolerance" if r.max_abs_diff > tolerance else "")
              for r in results]
    worst = max(r.max_abs_diff for r in results)
    lines.append(f"largest difference {worst:.2e} (tolerance {tolerance:g}): {'ok' if worst <= tolerance else 'FAILED'}")
    return "\n".join(lines)
