"""Pick the checkpoint to resume from: newest first, each one verified before it is trusted.

A candidate is used when its manifest exists (the save finished), the file's
size and sha256 match the manifest, ``torch.load(weights_only=True)`` reads it,
and every parameter is finite. A bad one is reported with its reason, moved to
``checkpoints/rejected/``, and the previous one is tried. A folder that has
checkpoints but none usable is an error, never a silent fresh start.

The manifest records the config that decides the model and the data
(``watched``); resuming with a different one is refused unless allowed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lipsync.checkpointing import keys
from lipsync.checkpointing.store import Candidate, CheckpointStore, sha256_of


class ResumeRefused(ValueError):
    """Checkpoints exist but cannot be resumed from (all bad, or the config changed): says how to proceed."""


@dataclass
class ResumePoint:
    path: Path
    step: int
    manifest: dict
    checkpoint: dict          # already loaded and verified; handed to Lightning without a second read
    rejected: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def config_hash(watched: dict) -> str:
    return hashlib.sha256(json.dumps(watched, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts, as ``key: old -> new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += config_diff(old.get(k, "<absent>"), new.get(k, "<absent>"), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def verify(candidate: Candidate, map_location: str = "cpu") -> tuple[dict | None, dict | None, str | None]:
    """(manifest, checkpoint, None) for a sound candidate, else (None, None, why not)."""
    if not candidate.manifest_path.is_file():
        return None, None, "no manifest (the save did not finish)"
    try:
        manifest = candidate.manifest()
    except (OSError, ValueError) as e:
        return None, None, f"manifest unreadable ({e})"
    path = candidate.path
    if not path.is_file():
        return None, None, "checkpoint file is missing"
    size = path.stat().st_size
    if size == 0:
        return None, None, "empty file (0 bytes)"
    if size != manifest.get("bytes"):
        return None, None, f"size {size} bytes, manifest says {manifest.get('bytes')} (truncated or overwritten)"
    if sha256_of(path) != manifest.get("sha256"):
        return None, None, "sha256 does not match the manifest (corrupted)"
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a reason to fall back
        return None, None, f"cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
    for name, tensor in checkpoint.get(keys.STATE_DICT, {}).items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return None, None, f"parameter {name} has NaN or Inf values"
    return manifest, checkpoint, None


def find_resume_point(store: CheckpointStore, watched: dict, *, allow_config_change: bool = False,
                      map_location: str = "cpu") -> ResumePoint | None:
    """The newest sound checkpoint, or None when the folder has none at all (a fresh run).

    The caller reports ``rejected`` (path, reason) and ``notes``; rejected files are already in ``rejected/``.
    """
    notes = []
    for partial in store.remove_partial_files():
        notes.append(f"removed {partial.name}: left by a save that was interrupted")
    if (problem := store.link_problem()) is not None:
        notes.append(f"ignoring last.ckpt: {problem}")
    candidates = store.candidates()
    if not candidates:
        return None
    rejected: list[tuple[Path, str]] = []
    for candidate in candidates:
        manifest, checkpoint, why = verify(candidate, map_location)
        if why is not None:
            rejected.append((candidate.path, why))
            store.reject(candidate, why)
            continue
        _check_config(manifest, watched, candidate.path, allow_config_change, notes)
        if rejected or store.link_problem():
            store.repoint_last()
        return ResumePoint(candidate.path, int(manifest["step"]), manifest, checkpoint, rejected, notes)
    reasons = "; ".join(f"{p.name}: {why}" for p, why in rejected)
    raise ResumeRefused(f"{store.folder}: no usable checkpoint ({reasons}); the bad files are in "
                        f"{store.folder / 'rejected'}. Pass run.restart=true to start over "
                        "(the previous run's files are moved to <run dir>/archive/)")


def _check_config(manifest: dict, watched: dict, path: Path, allow: bool, notes: list[str]) -> None:
    if manifest.get("config_hash") == config_hash(watched):
        return
    changes = config_diff(manifest.get("config", {}), watched) or ["(config hash differs)"]
    if not allow:
        raise ResumeRefused(f"{path}: the model/data config changed since this checkpoint ({'; '.join(changes)}). "
                            "Use the old values, a new run.name, or run.allow_config_change=true to resume anyway")
    notes.append(f"resuming with a changed model/data config (run.allow_config_change=true): {'; '.join(changes)}")
