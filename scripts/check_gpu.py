#!/usr/bin/env python
"""Check that this machine's GPU is fit to train on. Exit 0 fit, 76 unfit or no usable GPU (see lipsync.health.cli)."""
import sys

from lipsync.health.cli import main

if __name__ == "__main__":
    sys.exit(main())
