"""Export a trained model to ONNX plus its model card, checked against the eager model:

    python scripts/export.py --checkpoint runs/<experiment>/<run> --out model.onnx
"""
import sys

from lipsync.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
