"""Synthesise a lip-sync corpus with espeak-ng: python scripts/make_corpus.py --out data/demo --clips 315 --seed 7"""
import sys

from lipsync.data.corpus.build import main

if __name__ == "__main__":
    sys.exit(main())
