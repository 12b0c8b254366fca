"""The run dir describes its run: resolved config, command line, git state, completion marker."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lipsync.atomic import atomic_write

DONE = "done.json"


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
