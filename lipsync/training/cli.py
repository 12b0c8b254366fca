"""Maps what train() raises to DESIGN.md's exit codes, with one clear line for the user's mistakes."""
from __future__ import annotations

import sys

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from lipsync.audio import AudioError
from lipsync.model.encoders import EncoderLoadError
from lipsync.rigs import RigError

EXIT_USER_ERROR = 1

# Errors in the user's input or config: say what to fix, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (EncoderLoadError, RigError, AudioError, OmegaConfBaseException,
                                                FileNotFoundError, ValueError)


def run(cfg: DictConfig) -> int:
    from lipsync.training.train import train

    try:
        return train(cfg)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
