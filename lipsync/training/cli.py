"""Maps what train() raises to DESIGN.md's exit codes, with one clear line for the user's mistakes;
``run.supervise=true`` runs train() in a supervised child process instead."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lipsync.audio import AudioError
from lipsync.checkpointing.supervisor import Supervisor, SupervisorLimits, is_supervised_child, own_command
from lipsync.model.encoders import EncoderLoadError
from lipsync.rigs import RigError

EXIT_USER_ERROR = 1

# Errors in the user's input or config: say what to fix, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (EncoderLoadError, RigError, AudioError, OmegaConfBaseException,
                                                FileNotFoundError, ValueError)


def run(cfg: DictConfig) -> int:
    from lipsync.training.train import train

    try:
        if cfg.run.supervise and not is_supervised_child():
            return supervise(cfg)
        return train(cfg)
    except USER_ERRORS + (InstantiationException,) as e:
        cause = _user_error(e)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        return EXIT_USER_ERROR


def _user_error(error: BaseException) -> BaseException | None:
    """The user's mistake behind ``error``: Hydra wraps what a ``_target_`` raises in InstantiationException."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error if isinstance(error, USER_ERRORS) else None


def supervise(cfg: DictConfig) -> int:
    """Run this same command as a child and restart it until it finishes (lipsync.checkpointing.supervisor)."""
    from lipsync.training.rundir import archive_previous_run

    run_dir = Path(cfg.run.dir).resolve()
    if cfg.run.restart:  # once, here: the children resume whatever the first one starts
        moved = archive_previous_run(run_dir)
        if moved:
            print(f"run.restart=true: moved the previous run's files to {moved}; starting over")
    limits = SupervisorLimits(**OmegaConf.to_container(cfg.run.supervisor, resolve=True))
    return Supervisor(own_command(), run_dir, limits, preflight=_gpu_preflight(cfg)).run()


def _gpu_preflight(cfg: DictConfig):
    """After a health stop: the GPU check in a short-lived process (no CUDA context kept here); None on CPU runs."""
    accelerator = cfg.trainer.accelerator
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if cfg.health.backend == "off" or not on_gpu:
        return None
    args = ["--backend", cfg.health.backend]
    if cfg.health.timeline:
        args += ["--timeline", str(cfg.health.timeline)]
    code = "import sys; from lipsync.health.cli import main; sys.exit(main(sys.argv[1:]))"

    def preflight() -> bool:
        return subprocess.run([sys.executable, "-c", code, *args]).returncode == 0

    return preflight
