"""Evaluate a checkpoint on a corpus split; see lipsync/training/evaluate.py."""
import sys

from lipsync.training.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
