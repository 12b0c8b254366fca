"""Benchmarks that print tables (never timed tests):

    python scripts/benchmark.py convert      # conversion speed and memory (lipsync/convert/benchmark.py)
    python scripts/benchmark.py checkpoint   # checkpoint save time/size and cadence overhead
    python scripts/benchmark.py health       # GPU monitor overhead on step time
"""
import importlib
import sys

SUITES = {"convert": "lipsync.convert.benchmark", "checkpoint": "lipsync.checkpointing.benchmark",
          "health": "lipsync.health.benchmark"}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in SUITES:
        print(__doc__)
        sys.exit(2)
    sys.exit(importlib.import_module(SUITES[sys.argv[1]]).main(sys.argv[2:]))
