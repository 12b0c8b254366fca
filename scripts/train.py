"""python scripts/train.py experiment=base|scratch [overrides...]; see configs/train.yaml."""
import os
import sys
from pathlib import Path

os.environ.setdefault("LIPSYNC_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402

from lipsync.training.cli import run  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg) -> None:
    sys.exit(run(cfg))


if __name__ == "__main__":
    main()
