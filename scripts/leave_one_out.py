"""Leave-one-engine-out: train without each engine in turn and score on it; see lipsync/training/leave_one_out.py."""
import sys

from lipsync.training.leave_one_out import main

if __name__ == "__main__":
    sys.exit(main())
