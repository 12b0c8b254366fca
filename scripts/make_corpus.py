"""Synthesise a lip-sync corpus: python scripts/make_corpus.py --out data/demo --clips 315 --seed 7 (espeak-ng);
add --engines espeak,mbrola,festival --clips 1070,450,330 for a multi-engine corpus (see data/README.md)."""
import sys

from lipsync.data.corpus.build import main

if __name__ == "__main__":
    sys.exit(main())
