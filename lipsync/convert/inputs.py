"""Which files to convert, where their outputs go, and which shard owns each.

Folders are walked recursively for wav/flac/ogg/mp3 (any case; hidden files
and folders are skipped); a file named on the command line is taken as given,
whatever its extension. Each file has a relative path: below its folder
argument, or its bare name for a file argument. The output tree mirrors it.

Sharding (``--shard i/n``, 0 <= i < n) assigns each file by a hash of its
relative path, so a file's shard depends on nothing but its own path: every
machine computes the same split, every file lands in exactly one shard, and
adding files to a library never moves the others between shards.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

from lipsync.audio import AUDIO_EXTENSIONS


class ConvertInputError(ValueError):
    """Inputs or options that cannot be used; nothing is converted."""


@dataclass(frozen=True, order=True)
class InputFile:
    rel: PurePosixPath  # mirrored below the output folder; sort and shard key
    path: Path

    @property
    def stem_rel(self) -> PurePosixPath:
        """The relative path without its audio extension: ``dir/take.01.wav`` -> ``dir/take.01``."""
        return self.rel.with_name(self.rel.name[: -len(self.rel.suffix)] if self.rel.suffix else self.rel.name)


def find_audio_files(inputs: Sequence[str | Path]) -> list[InputFile]:
    found: list[InputFile] = []
    for item in inputs:
        root = Path(item)
        if root.is_dir():
            found.extend(_walk(root))
        elif root.exists():
            found.append(InputFile(PurePosixPath(root.name), root))
        else:
            raise ConvertInputError(f"{root}: no such file or folder; give audio files or folders of them")
    return sorted(set(found))


def _walk(root: Path) -> Iterable[InputFile]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                continue
            path = Path(folder) / name
            yield InputFile(PurePosixPath(path.relative_to(root).as_posix()), path)


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> (2, 8): shard 2 of 8, numbered from 0."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConvertInputError(f"--shard {text!r}: write i/n, e.g. 0/4 (shards are numbered 0 to n-1)") from None
    if count < 1 or not 0 <= index < count:
        raise ConvertInputError(f"--shard {text!r}: need 0 <= i < n (shards are numbered 0 to n-1)")
    return index, count


def shard_of(rel: PurePosixPath, count: int) -> int:
    digest = hashlib.sha1(rel.as_posix().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(files: Sequence[InputFile], index: int, count: int) -> list[InputFile]:
    return [f for f in files if shard_of(f.rel, count) == index]


def output_collisions(files: Sequence[InputFile]) -> dict[InputFile, InputFile]:
    """Files whose outputs would overwrite an earlier file's (``a.wav`` and ``a.mp3``), mapped to that file.

    Decided on the full sorted list before sharding, so every shard agrees.
    """
    first: dict[PurePosixPath, InputFile] = {}
    clashes = {}
    for f in sorted(files):
        key = f.stem_rel
        if key in first:
            clashes[f] = first[key]
        else:
            first[key] = f
    return clashes
