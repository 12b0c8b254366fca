"""Convert speech audio to animation curves:

    python scripts/convert.py INPUT... --model model.onnx --out OUTDIR --format csv,json,rhubarb-tsv,vrma --fps 30
"""
import sys

from lipsync.convert.cli import main

if __name__ == "__main__":
    sys.exit(main())
