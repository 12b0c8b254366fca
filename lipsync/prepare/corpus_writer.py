"""Write a corpus folder so that a reader sees all of it or none of it.

Everything goes into a hidden staging folder beside the target; the manifest
is written after every file it names, and the folder is renamed into place
only when the whole corpus (and its report) is complete. A failure anywhere
removes the staging folder and leaves any previous corpus untouched.
"""
from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Sequence

from lipsync.atomic import OutputExistsError, atomic_write, fsync_dir
from lipsync.curves import Curves
from lipsync.curves.csv import write_curves_csv
from lipsync.data.alignment import write_alignment_tsv
from lipsync.rigs.coarticulation import Phone

MANIFEST = "manifest.jsonl"


def assign_split(clip_id: str, val_fraction: float) -> str:
    """A stable train/val choice from the id alone, so re-running gives the same split."""
    if val_fraction <= 0:
        return "train"
    return "val" if (zlib.crc32(clip_id.encode("utf-8")) % 10_000) / 10_000 < val_fraction else "train"


class CorpusWriter:
    def __init__(self, out: str | Path, overwrite: bool = False, copy_audio: bool = True):
        self.out = Path(out).resolve()
        if self.out.exists() and not overwrite:
            raise OutputExistsError(f"{self.out} exists; pass --overwrite to replace it or choose another --out")
        self.copy_audio = copy_audio
        self.stage = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"
        if self.stage.exists():
            shutil.rmtree(self.stage)
        self.stage.mkdir(parents=True)
        self.entries: list[dict] = []

    def __enter__(self) -> "CorpusWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def add_clip(
        self,
        clip_id: str,
        audio: Path,
        curves: Curves | None = None,
        phones: Sequence[Phone] | None = None,
        extras: Curves | None = None,
        speaker: str | None = None,
        split: str | None = None,
    ) -> dict:
        if any(e["id"] == clip_id for e in self.entries):
            raise ValueError(f"two inputs give the clip id {clip_id!r}; rename one of them")
        entry: dict = {"id": clip_id, "audio": self._audio_path(clip_id, Path(audio))}
        if curves is not None:
            entry["curves"] = f"curves/{clip_id}.csv"
            write_curves_csv(curves, self.stage / entry["curves"])
        if phones is not None:
            entry["alignment"] = f"alignments/{clip_id}.tsv"
            write_alignment_tsv(phones, self.stage / entry["alignment"])
        if extras is not None:
            # Head and eye angles: signed radians, not rig channels, so kept beside the curves.
            entry["extras"] = f"extras/{clip_id}.csv"
            write_curves_csv(extras, self.stage / entry["extras"])
        if speaker:
            entry["speaker"] = speaker
        if split:
            entry["split"] = split
        self.entries.append(entry)
        return entry

    def _audio_path(self, clip_id: str, audio: Path) -> str:
        if not self.copy_audio:
            return Path(os.path.relpath(audio.resolve(), self.out)).as_posix()
        rel = f"audio/{clip_id}{audio.suffix.lower()}"
        target = self.stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, "wb") as f, open(audio, "rb") as src:
            shutil.copyfileobj(src, f)
        return rel

    def write_json(self, name: str, obj) -> Path:
        path = self.stage / name
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
        return path

    def write_manifest(self) -> Path:
        """Written after every file it names exists."""
        path = self.stage / MANIFEST
        with atomic_write(path, "w", encoding="utf-8") as f:
            for entry in self.entries:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return path

    def commit(self) -> Path:
        """Rename the finished staging folder over ``out`` (an old corpus is moved aside first)."""
        if not (self.stage / MANIFEST).exists():
            self.write_manifest()
        old = None
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.replace(self.out, old)
        os.replace(self.stage, self.out)
        fsync_dir(self.out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)
