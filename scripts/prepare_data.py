"""Turn Live Link Face captures, phone alignments or transcripts into a training corpus.

    python scripts/prepare_data.py {livelink,alignments,transcripts} INPUT_DIR --out CORPUS
    python scripts/prepare_data.py report CORPUS
"""
import sys

from lipsync.prepare.cli import main

if __name__ == "__main__":
    sys.exit(main())
