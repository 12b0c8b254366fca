"""Durable checkpoint files in ``<run dir>/checkpoints``: write, describe, list, prune.

Layout::

    step-000000120.ckpt   the checkpoint (torch.save of tensors and plain containers)
    step-000000120.json   its manifest, written last: a checkpoint without one is incomplete
    last.ckpt             symlink to the newest complete checkpoint (relative, so the run dir can move)
    best.ckpt             symlink to the best one by the monitored metric, when tracked
    rejected/             checkpoints that failed verification on resume, moved aside, with why

Order of a save: the payload goes to a temp file in the same folder, fsync,
rename, fsync the folder; then the manifest (sha256 of the bytes on disk) the
same way; then ``last.ckpt``; then older checkpoints beyond ``keep_last`` (and
not the best) are removed, manifest first. A crash at any point leaves the
previous complete checkpoint and its manifest untouched.

Test hook (used by tests/checkpointing, harmless otherwise):
``LIPSYNC_TEST_KILL_IN_SAVE_AT_STEP=N`` or ``N:manifest`` SIGKILLs this process
half-way through writing step N's payload (or after its rename, before its
manifest), once per run dir.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lipsync.atomic import atomic_write, fsync_dir
from lipsync.checkpointing import keys
from lipsync.checkpointing.testhooks import fire_once

LAST, BEST = "last.ckpt", "best.ckpt"
REJECTED = "rejected"
_NAME = re.compile(r"^step-(\d{9})\.(ckpt|json)$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}.ckpt"


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_payload(f, checkpoint: dict) -> None:
    """Serialise ``checkpoint`` into the open temp file (tests patch this to simulate a full disk)."""
    torch.save(checkpoint, f)


@dataclass
class Candidate:
    """A step found in the folder: its checkpoint file and manifest, either possibly missing."""

    step: int
    path: Path
    manifest_path: Path

    def manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text())


class CheckpointStore:
    def __init__(self, folder: str | Path, keep_last: int = 3, keep_best: bool = True):
        if keep_last < 1:
            raise ValueError(f"checkpoint.keep_last={keep_last}: keep at least 1 checkpoint")
        self.folder = Path(folder)
        self.keep_last = int(keep_last)
        self.keep_best = bool(keep_best)

    # -- writing ---------------------------------------------------------------
    def path_for(self, step: int) -> Path:
        return self.folder / checkpoint_name(step)

    def save(self, checkpoint: dict, step: int, manifest_fields: dict[str, Any]) -> Path:
        """Write step ``step`` durably, then its manifest, then point ``last.ckpt`` at it; prune. Returns the path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path_for(step)
        started = time.perf_counter()
        with atomic_write(path, "wb") as f:  # temp file beside it, fsync, rename, fsync the folder
            write_payload(f, checkpoint)
            f.flush()
            _test_kill_in_save(self.folder, step, "write", f)
        _test_kill_in_save(self.folder, step, "manifest")
        manifest = {
            "format": keys.MANIFEST_FORMAT,
            "file": path.name,
            "step": int(step),
            "bytes": path.stat().st_size,
            "sha256": sha256_of(path),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "save_seconds": round(time.perf_counter() - started, 4),
            **manifest_fields,
        }
        with atomic_write(self.manifest_path(path)) as f:
            json.dump(manifest, f, indent=2)
        self._point(LAST, path)
        self.prune()
        return path

    def manifest_path(self, path: Path) -> Path:
        return path.with_suffix(".json")

    def mark_best(self, step: int) -> None:
        path = self.path_for(step)
        if path.is_file():
            self._point(BEST, path)

    def _point(self, link_name: str, target: Path) -> None:
        """Atomically replace the symlink ``link_name`` with one to ``target`` (same folder)."""
        link = self.folder / link_name
        tmp = self.folder / f".{link_name}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(target.name, tmp)
        os.replace(tmp, link)
        fsync_dir(self.folder)

    def prune(self) -> list[Path]:
        """Remove complete checkpoints beyond the newest ``keep_last``, keeping the best. Returns what was removed."""
        complete = [c for c in self.candidates() if c.manifest_path.is_file() and c.path.is_file()]
        keep = {c.step for c in complete[: self.keep_last]}
        best = self.best_step()
        if self.keep_best and best is not None:
            keep.add(best)
        removed = []
        for c in complete:
            if c.step not in keep:
                c.manifest_path.unlink()  # manifest first: a half-removed checkpoint reads as incomplete
                c.path.unlink()
                removed.append(c.path)
        if removed:
            fsync_dir(self.folder)
        return removed

    # -- reading ---------------------------------------------------------------
    def candidates(self) -> list[Candidate]:
        """Every step with a checkpoint file or a manifest, newest first."""
        if not self.folder.is_dir():
            return []
        steps = {int(m.group(1)) for p in self.folder.iterdir() if (m := _NAME.match(p.name))}
        return [Candidate(s, self.path_for(s), self.manifest_path(self.path_for(s))) for s in sorted(steps, reverse=True)]

    def has_any(self) -> bool:
        return bool(self.candidates()) or (self.folder / LAST).is_symlink()

    def best_step(self) -> int | None:
        link = self.folder / BEST
        if not link.is_symlink():
            return None
        m = _NAME.match(os.readlink(link))
        return int(m.group(1)) if m else None

    def link_problem(self) -> str | None:
        """Why ``last.ckpt`` cannot be trusted (missing target, or not the newest complete one), or None."""
        link = self.folder / LAST
        if not link.is_symlink():
            return f"{link} is missing" if self.candidates() else None
        target = self.folder / os.readlink(link)
        if not target.is_file():
            return f"{link} points to {target.name}, which does not exist (dangling link)"
        return None

    def partial_files(self) -> list[Path]:
        """Temp files left by a save that was interrupted."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))

    def remove_partial_files(self) -> list[Path]:
        found = self.partial_files()
        for p in found:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return found

    def reject(self, candidate: Candidate, reason: str) -> Path:
        """Move a bad checkpoint (and its manifest) into ``rejected/`` with a note saying why."""
        folder = self.folder / REJECTED
        folder.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for p in (candidate.path, candidate.manifest_path):
            if p.exists():
                os.replace(p, folder / f"{p.name}.{stamp}")
        with atomic_write(folder / f"{candidate.path.name}.{stamp}.why.txt") as f:
            f.write(reason + "\n")
        fsync_dir(self.folder)
        return folder

    def repoint_last(self) -> None:
        """After rejections: ``last.ckpt`` -> the newest checkpoint that still has a manifest (or no link)."""
        complete = [c for c in self.candidates() if c.manifest_path.is_file() and c.path.is_file()]
        if complete:
            self._point(LAST, complete[0].path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.folder / LAST)


def _test_kill_in_save(folder: Path, step: int, stage: str, f=None) -> None:
    spec = os.environ.get("LIPSYNC_TEST_KILL_IN_SAVE_AT_STEP")
    if not spec:
        return
    at, _, want = spec.partition(":")
    if int(at) != step or (want or "write") != stage:
        return
    if fire_once(folder.parent, f"kill-in-save-{step}-{stage}"):
        if f is not None:  # leave a half-written temp file behind, as a real crash would
            f.truncate(max(1, f.tell() // 2))
            f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
