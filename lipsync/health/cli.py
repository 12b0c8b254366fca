"""``python scripts/check_gpu.py``: is this GPU fit to train on? Prints a table of checks.

Exit codes:
  0   fit: every check passed or could only warn / was unsupported
  76  unfit (a check failed) or NO USABLE GPU (NVML library not found, driver not
      loaded, no CUDA device): either way, do not schedule GPU training here. The
      table's first rows and ``--json``'s ``verdict`` ("unfit" / "no_gpu") say which.
  1   wrong arguments or an unreadable fault timeline

On a machine without an NVIDIA GPU it prints ``NO USABLE GPU: NVML unavailable
(NVML Shared Library Not Found) ...`` and a ``cuda`` row saying torch sees no
CUDA device, and exits 76.
"""
from __future__ import annotations

import argparse
import json
import sys

from lipsync.health.backends import BACKEND_NAMES, make_backend
from lipsync.health.fake_backend import TimelineError
from lipsync.health.preflight import PreflightOptions, run_preflight


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="check_gpu.py", description="Check that a GPU is fit to train on (exit 0) or not (exit 76).")
    p.add_argument("--backend", choices=[b for b in BACKEND_NAMES if b != "off"], default="nvml",
                   help="nvml (the real GPU) or fake (replay --timeline)")
    p.add_argument("--timeline", help="fault timeline for --backend fake, e.g. configs/health/faults/ecc_dbe.json")
    p.add_argument("--device", type=int, default=None, help="NVML device index (default: the one CUDA device 0 is)")
    p.add_argument("--expect-name", default=None, help="fail unless the device name contains this text")
    p.add_argument("--required-memory-mib", type=float, default=None, help="fail if less GPU memory than this is free")
    p.add_argument("--no-self-test", action="store_true", help="skip the GEMM + memory-pattern self-test")
    p.add_argument("--no-dcgm", action="store_true", help="skip `dcgmi diag -r 1` even if DCGM is installed")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        backend = make_backend(args.backend, args.timeline)
    except (ValueError, TimelineError) as e:
        print(f"check_gpu: {e}", file=sys.stderr)
        return 1
    options = PreflightOptions(expect_name=args.expect_name, self_test=not args.no_self_test, dcgm_diag=not args.no_dcgm)
    try:
        report = run_preflight(backend, device=args.device, expect_gpu=True,
                               required_memory_mib=args.required_memory_mib, options=options)
    finally:
        backend.close()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.table())
    return report.exit_code
