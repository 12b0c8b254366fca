"""The corpus manifest: ``manifest.jsonl`` in the corpus folder, one clip a line.

``{"id": "...", "audio": "rel/path.flac", "curves": "rel/path.csv"}`` or with
``"alignment": "rel/path.tsv"`` instead of (or beside) ``curves``; optional
``"speaker"`` and ``"split"`` (train/val/test; a clip with ``"reserved": true``,
of the blind test, must be test). Paths are relative to the
corpus folder; keys we do not know are kept out of the way, not refused, so
corpora can carry their own bookkeeping.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lipsync.data.alignment import read_alignment_tsv

MANIFEST_NAME = "manifest.jsonl"
SPLITS = ("train", "val", "test")
CORPUS_FIELD = "corpus"
RESERVED_FIELD = "reserved"  # true on the blind test's clips (make_corpus.py --engines blind): test split only


class CorpusError(ValueError):
    """A corpus that cannot be trained on; the message lists every problem, one a line."""


class ManifestError(CorpusError):
    """A manifest that is missing, unreadable, or has bad lines (each named file:line)."""


@dataclass(frozen=True)
class Problem:
    """One bad file or manifest line: what is wrong and how to fix it."""

    file: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return " ".join(f"{self.file}: {self.problem}; fix: {self.fix}".split())


@dataclass(frozen=True)
class ClipEntry:
    id: str
    audio: Path
    curves: Path | None
    alignment: Path | None
    speaker: str | None
    split: str | None
    line: int  # 1-based line in the manifest, for messages


def corpus_roots(root) -> list[Path]:
    """One corpus folder, or a list of them (``data.root=[corpora/multi3,corpora/takes]``), as a list."""
    roots = [root] if isinstance(root, (str, Path)) else list(root)
    if not roots:
        raise ValueError("data.root is an empty list; give a corpus folder or a list of them")
    return [Path(r) for r in roots]


def manifest_path(root: str | Path) -> Path:
    """The manifest of a corpus folder (a path to the .jsonl file itself also works)."""
    root = Path(root)
    return root if root.suffix == ".jsonl" else root / MANIFEST_NAME


def read_manifest(root: str | Path) -> list[ClipEntry]:
    """Every clip of the manifest; raises ManifestError listing all bad lines."""
    entries, problems = scan_manifest(root)
    if problems:
        raise ManifestError(
            f"{manifest_path(root)}: {len(problems)} bad line(s):\n" + "\n".join(str(p) for p in problems)
        )
    return entries


def scan_manifest(root: str | Path) -> tuple[list[ClipEntry], list[Problem]]:
    """The good entries and one Problem per bad line, so a caller can report or skip them.

    A manifest that is missing or unreadable as a whole still raises ManifestError.
    """
    path = manifest_path(root)
    folder = path.parent
    if not path.is_file():
        raise ManifestError(
            f"{path}: no manifest; a corpus folder needs {MANIFEST_NAME} with one JSON object per clip "
            "(see data/README.md)"
        )
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read manifest ({e}); it must be UTF-8 JSON lines") from e

    entries: list[ClipEntry] = []
    problems: list[Problem] = []
    first_line_of: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = _parse_line(text, folder, number)
        except _BadLine as bad:
            problems.append(Problem(where, bad.problem, bad.fix))
            continue
        if entry.id in first_line_of:
            problems.append(
                Problem(
                    where,
                    f"duplicate id {entry.id!r} (first on line {first_line_of[entry.id]})",
                    "give every clip a unique id, or remove the repeated line",
                )
            )
            continue
        first_line_of[entry.id] = number
        entries.append(entry)
    if not entries and not problems:
        raise ManifestError(f"{path}: manifest lists no clips; add one JSON object per clip")
    return entries, problems


class _BadLine(Exception):
    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


def _parse_line(text: str, folder: Path, number: int) -> ClipEntry:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise _BadLine(f"not valid JSON ({e.msg} at column {e.colno})", "write one JSON object per line") from None
    if not isinstance(record, dict):
        raise _BadLine(f"expected a JSON object, got {type(record).__name__}", 'write {"id": ..., "audio": ...}')
    clip_id = _required_string(record, "id")
    audio = _required_string(record, "audio")
    curves = _optional_string(record, "curves")
    alignment = _optional_string(record, "alignment")
    if curves is None and alignment is None:
        raise _BadLine(
            f"clip {clip_id!r} has neither 'curves' nor 'alignment'",
            "add a curves CSV ('curves') or a phone alignment ('alignment') for the clip",
        )
    split = _optional_string(record, "split")
    if split is not None and split not in SPLITS:
        raise _BadLine(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}, or leave 'split' out")
    if record.get(RESERVED_FIELD) and split != "test":
        raise _BadLine(
            f"clip {clip_id!r} is {RESERVED_FIELD!r} (a voice kept for the blind test) but its split is {split!r}",
            'reserved clips are test-only and never trained on: set "split": "test", or rebuild the blind test '
            "with make_corpus.py --engines blind",
        )
    return ClipEntry(
        id=clip_id,
        audio=folder / audio,
        curves=folder / curves if curves else None,
        alignment=folder / alignment if alignment else None,
        speaker=_optional_string(record, "speaker"),
        split=split,
        line=number,
    )


def _required_string(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        raise _BadLine(f"missing {key!r}", f"add \"{key}\": \"...\" to the line")
    if not isinstance(value, str) or not value.strip():
        raise _BadLine(f"{key!r} must be a non-empty string, got {value!r}", f"write {key!r} as a quoted string")
    return value


def _optional_string(record: dict, key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        fix = f"write {key!r} as a quoted string or leave it out"
        raise _BadLine(f"{key!r} must be a non-empty string, got {value!r}", fix)
    return value


def manifest_field(root, field: str, missing: str | None = "?") -> dict[str, str]:
    """clip id -> the value of any manifest field (e.g. engine, speaker); ``missing`` where a line lacks it
    (``None``: such clips are left out). ``root`` may be a list of corpora.

    Every clip also has ``corpus``, the ``data.root`` entry it comes from (unless its line sets its own), so
    ``data.balance_by=corpus`` weighs a few takes up against a large built corpus that shares no field with them.
    """
    entries = [(str(r), json.loads(line)) for r in corpus_roots(root)
               for line in manifest_path(r).read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    entries = [{CORPUS_FIELD: r, **e} for r, e in entries if isinstance(e, dict) and "id" in e]
    return {str(e["id"]): str(e.get(field, missing)) for e in entries if missing is not None or field in e}


def clip_alignments(clips, data) -> dict[str, list]:
    """Clip id -> phones, for the clips whose manifest line (in the corpus ``data``, or a list) names an alignment."""
    paths = {e.id: e.alignment for root in corpus_roots(data) for e in read_manifest(root) if e.alignment}
    return {c.id: read_alignment_tsv(paths[c.id]) for c in clips if c.id in paths}


def reserved_ids(root) -> set[str]:
    """Ids of the blind test's clips (``"reserved": true``) in a corpus or a list of them."""
    return {clip_id for clip_id, value in manifest_field(root, RESERVED_FIELD, None).items() if value == "True"}
