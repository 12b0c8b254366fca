"""Alignment TSV: one phone a line, ``start<TAB>end<TAB>phone`` in seconds.

A first line ``start end phone`` is a header and is skipped. This is the
format the corpus generator writes and the manifest's ``alignment`` field reads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lipsync.atomic import atomic_write
from lipsync.rigs.coarticulation import Phone


class AlignmentError(ValueError):
    """An alignment file that cannot be used; the message names file and line."""


def read_alignment_tsv(path: str | Path) -> list[Phone]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AlignmentError(f"{path}: cannot read alignment ({e})") from e
    phones: list[Phone] = []
    for number, line in enumerate(lines, start=1):
        fields = line.rstrip("\n").split("\t") if "\t" in line else line.split()
        if not fields or not line.strip():
            continue
        if number == 1 and [f.strip().lower() for f in fields[:3]] == ["start", "end", "phone"]:
            continue
        if len(fields) < 2 or len(fields) > 3:
            raise AlignmentError(f"{path}:{number}: expected 'start end phone', got {line!r}")
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            raise AlignmentError(f"{path}:{number}: start and end must be numbers (seconds), got {line!r}") from None
        label = fields[2].strip() if len(fields) == 3 else ""
        if end < start:
            raise AlignmentError(f"{path}:{number}: phone {label!r} ends ({end}) before it starts ({start})")
        if phones and start < phones[-1].end - 1e-6:
            raise AlignmentError(
                f"{path}:{number}: phone {label!r} starts at {start} before the previous one ends "
                f"({phones[-1].end}); intervals must not overlap"
            )
        phones.append(Phone(start, end, label))
    if not phones:
        raise AlignmentError(f"{path}: no phones")
    return phones


def write_alignment_tsv(phones: Sequence[Phone], path: str | Path, overwrite: bool = True) -> None:
    with atomic_write(path, "w", overwrite=overwrite, encoding="utf-8") as f:
        f.write("start\tend\tphone\n")
        for p in phones:
            f.write(f"{p.start:.4f}\t{p.end:.4f}\t{p.label}\n")
