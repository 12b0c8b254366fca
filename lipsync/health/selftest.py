"""A short GPU self-test against a CPU fp32 reference, to catch silent data corruption.

GEMM: a seeded fp32 matrix product on the device (TF32 off, so the only
difference from the CPU is summation order) must match the CPU within
``GEMM_TOLERANCE`` relative to the result's scale, and repeated runs on the
device must agree bit for bit. Memory: a block is filled with constant and
address-dependent patterns and read back; any flipped word fails the test.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

# fp32 with K=1024 differs from the CPU by ~1e-6 relative; a flipped exponent or
# mantissa bit in an accumulator is far above this.
GEMM_TOLERANCE = 1e-4
_PATTERNS = (0x00000000, -1, 0x55555555, -0x55555556)  # all-zero, all-one, 0101..., 1010... as int32


@dataclass(frozen=True)
class SelfTestResult:
    ok: bool
    detail: str
    gemm_max_rel_err: float | None = None
    memory_bad_words: int | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def gemm_relative_error(device_result: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest absolute difference relative to the reference's largest magnitude (inf if non-finite)."""
    device_result = device_result.detach().float().cpu()
    if not torch.isfinite(device_result).all():
        return float("inf")
    scale = reference.abs().max().clamp_min(1e-30)
    return float((device_result - reference).abs().max() / scale)


def _gemm(device: torch.device, size: int, repeats: int) -> tuple[float, bool]:
    gen = torch.Generator().manual_seed(1234)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    reference = a @ b
    previous_precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        a_d, b_d = a.to(device), b.to(device)
        results = [a_d @ b_d for _ in range(repeats)]
    finally:
        torch.set_float32_matmul_precision(previous_precision)
    stable = all(torch.equal(results[0], r) for r in results[1:])
    return gemm_relative_error(results[0], reference), stable


def _memory(device: torch.device, mib: int) -> int:
    n = max(1, mib * 1024 * 1024 // 4)
    block = torch.empty(n, dtype=torch.int32, device=device)
    bad = 0
    for pattern in _PATTERNS:
        block.fill_(pattern)
        bad += int((block != pattern).sum())
    # Address pattern, checked on the CPU so a faulty device cannot grade itself.
    torch.arange(n, dtype=torch.int32, out=block)
    block.bitwise_xor_(0x2545F491)
    expected = torch.arange(n, dtype=torch.int32).bitwise_xor_(0x2545F491)
    bad += int((block.cpu() != expected).sum())
    del block
    return bad


def run_self_test(device: str | torch.device, gemm_size: int = 1024, memory_mib: int = 256, repeats: int = 3) -> SelfTestResult:
    """Run the GEMM and memory-pattern tests on ``device``; never raises for a device fault."""
    device = torch.device(device)
    start = time.perf_counter()
    try:
        err, stable = _gemm(device, gemm_size, repeats)
        bad_words = _memory(device, memory_mib)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    except RuntimeError as e:  # a CUDA error here is itself the finding
        return SelfTestResult(False, f"self-test raised on {device}: {e}", seconds=time.perf_counter() - start)
    seconds = time.perf_counter() - start
    problems = []
    if err > GEMM_TOLERANCE:
        problems.append(f"GEMM {gemm_size}² differs from CPU fp32 by {err:.2e} relative (limit {GEMM_TOLERANCE:.0e})")
    if not stable:
        problems.append(f"GEMM gave different results across {repeats} identical runs")
    if bad_words:
        problems.append(f"memory pattern test found {bad_words} bad 32-bit words in {memory_mib} MiB")
    detail = "; ".join(problems) or (
        f"GEMM {gemm_size}² matches CPU fp32 (max rel err {err:.1e}), {memory_mib} MiB patterns clean, {seconds:.2f} s"
    )
    return SelfTestResult(not problems, detail, err, bad_words, seconds)
