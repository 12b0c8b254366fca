"""The run dir describes its run: resolved config, command line, git state, completion marker."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lipsync.atomic import atomic_write, fsync_dir

DONE = "done.json"
ARCHIVE = "archive"
KEEP_IN_PLACE = {ARCHIVE, "train.log"}  # train.log is open (Hydra's log file) and spans every start


def record_run(run_dir: Path, cfg: DictConfig) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(run_dir / "config.yaml") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))
    with atomic_write(run_dir / "command.txt") as f:
        f.write(shlex.join([sys.executable, *sys.argv]) + "\n")
    with atomic_write(run_dir / "git.json") as f:
        json.dump(git_state(), f, indent=2)


def git_state() -> dict:
    """Commit and dirty flag of the code that ran (None outside a checkout)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def mark_done(run_dir: Path, summary: dict) -> None:
    with atomic_write(run_dir / DONE) as f:
        json.dump(summary, f, indent=2, default=float)


def read_done(run_dir: Path) -> dict | None:
    path = run_dir / DONE
    return json.loads(path.read_text()) if path.is_file() else None


def archive_previous_run(run_dir: Path) -> Path | None:
    """``run.restart=true``: move everything of the previous run into ``archive/<time>/`` (nothing is deleted)."""
    if not run_dir.is_dir():
        return None
    entries = [p for p in run_dir.iterdir() if p.name not in KEEP_IN_PLACE]
    if not entries:
        return None
    dest = run_dir / ARCHIVE / time.strftime("%Y%m%d-%H%M%S")
    dest.mkdir(parents=True, exist_ok=False)
    for p in entries:
        os.replace(p, dest / p.name)
    fsync_dir(run_dir)
    return dest
