"""Every output format conversion writes, behind one dispatcher.

``write_outputs(curves, out_base, formats, rig)`` writes ``out_base`` plus the
format's suffix for each format, each file atomically:

- ``csv``          ``<base>.csv``: curves CSV (``time,<channels>``), readable as training targets
- ``json``         ``<base>.json``: fps, channels, rig, sample rate, source, model, frames
- ``a2f``          ``<base>.a2f.json``: NVIDIA Audio2Face's blendshape-weights JSON, which A2F importers read
- ``livelink``     ``<base>.livelink.csv``: Live Link Face CSV (arkit52 rigs)
- ``rhubarb-tsv``  ``<base>.rhubarb.tsv``: Rhubarb mouth cues, TSV (oculus15 rigs)
- ``rhubarb-json`` ``<base>.rhubarb.json``: Rhubarb mouth cues, JSON (oculus15 rigs)
- ``moho``         ``<base>.moho.dat``: the same cues as Moho / OpenToonz switch data, shapes A-H and X
- ``moho-preston-blair`` ``<base>.preston-blair.dat``: the same with Preston Blair's mouth names (MBP, AI, ...)
- ``live2d``       ``<base>.motion3.json``: Live2D Cubism motion, the mouth parameters of 2D models (oculus15 rigs)
- ``vrma``         ``<base>.vrma``: VRM Animation, expression tracks for VRM 1.0 avatars (VTuber tools)
- ``preview``      ``<base>.preview.mp4``: a drawn mouth the curves move, over the audio (oculus15 rigs)
- ``npz``          ``<base>.npz``: ``values`` [T, C] float32, ``channels``, ``fps``
- ``phones``       ``<base>.phones.tsv``: the dialogue text's timed IPA phones (``start end phone``,
  pauses as gaps; conversion with ``--text`` only), which ``prepare_data.py alignments`` reads back
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from lipsync.atomic import atomic_write
from lipsync.curves import Curves, CurvesError
from lipsync.curves.csv import write_curves_csv
from lipsync.curves.livelink import livelink_column_order, write_livelink_csv
from lipsync.curves.live2d import write_motion3_json
from lipsync.curves.rhubarb import write_moho_dat, write_rhubarb_json, write_rhubarb_tsv
from lipsync.curves.vrma import expression_names, write_vrma
from lipsync.data.alignment import write_alignment_tsv
from lipsync.rigs import VISEMES, Rig
from lipsync.rigs.coarticulation import Phone

FORMAT_SUFFIXES = {
    "csv": ".csv",
    "json": ".json",
    "a2f": ".a2f.json",
    "livelink": ".livelink.csv",
    "rhubarb-tsv": ".rhubarb.tsv",
    "rhubarb-json": ".rhubarb.json",
    "moho": ".moho.dat",
    "moho-preston-blair": ".preston-blair.dat",
    "live2d": ".motion3.json",
    "vrma": ".vrma",
    "preview": ".preview.mp4",
    "npz": ".npz",
    "phones": ".phones.tsv",
}
FORMATS = tuple(FORMAT_SUFFIXES)
# Formats drawn from the oculus15 visemes: oculus15 rigs only.
VISEME_FORMATS = frozenset({"rhubarb-tsv", "rhubarb-json", "moho", "moho-preston-blair", "live2d", "preview"})
JSON_FORMAT_ID = "lipsync.curves"
JSON_FORMAT_VERSION = 1


def parse_formats(text: str) -> tuple[str, ...]:
    """``"csv,json"`` -> ("csv", "json"); unknown names fail with the list of known ones."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in FORMAT_SUFFIXES]
    if unknown or not names:
        raise CurvesError(f"unknown output format(s) {unknown or [text]}; use a comma list of {', '.join(FORMATS)}")
    return names


def check_formats_fit_rig(formats: Iterable[str], rig: Rig) -> None:
    """Fail before any work when a format cannot be written for this rig's channels."""
    formats = set(formats)
    if "livelink" in formats:
        livelink_column_order(rig, rig.channels)
    if "vrma" in formats:
        expression_names(rig.channels)
    if formats & VISEME_FORMATS:
        missing = [v for v in VISEMES if v not in rig.channels]
        if missing:
            raise CurvesError(f"formats drawn from visemes ({', '.join(sorted(formats & VISEME_FORMATS))}) need an "
                              f"oculus15 model; rig {rig.name!r} lacks {missing[:5]}")


def output_path(out_base: str | Path, fmt: str) -> Path:
    """``out/dir/take_01`` + ``livelink`` -> ``out/dir/take_01.livelink.csv`` (dots in names are kept)."""
    out_base = Path(out_base)
    return out_base.with_name(out_base.name + FORMAT_SUFFIXES[fmt])


def write_json(curves: Curves, path: str | Path, overwrite: bool = True, metadata: Mapping[str, Any] | None = None,
               decimals: int = 4) -> None:
    doc = {
        "format": JSON_FORMAT_ID,
        "version": JSON_FORMAT_VERSION,
        "fps": curves.fps,
        "n_frames": curves.n_frames,
        "duration": round(curves.duration, 6),
        "channels": list(curves.channels),
        **(metadata or {}),
        "frames": np.round(curves.values.astype(np.float64), decimals).tolist(),
    }
    with atomic_write(path, "w", overwrite=overwrite, encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def write_a2f_json(curves: Curves, path: str | Path, overwrite: bool = True, track_path: str = "",
                   decimals: int = 4) -> None:
    """Audio2Face's export layout: ``exportFps``, ``trackPath``, ``numPoses``, ``numFrames``, ``facsNames``
    (the channels) and ``weightMat`` [frames][poses]."""
    fps = int(curves.fps) if float(curves.fps).is_integer() else curves.fps  # A2F writes whole rates as integers
    doc = {
        "exportFps": fps,
        "trackPath": track_path,
        "numPoses": len(curves.channels),
        "numFrames": curves.n_frames,
        "facsNames": list(curves.channels),
        "weightMat": np.round(curves.values.astype(np.float64), decimals).tolist(),
    }
    with atomic_write(path, "w", overwrite=overwrite, encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def write_npz(curves: Curves, path: str | Path, overwrite: bool = True) -> None:
    with atomic_write(path, "wb", overwrite=overwrite) as f:
        np.savez(f, values=curves.values.astype(np.float32), channels=np.array(curves.channels), fps=np.float64(curves.fps))


def write_outputs(
    curves: Curves,
    out_base_path: str | Path,
    formats: Iterable[str],
    rig: Rig,
    overwrite: bool = False,
    metadata: Mapping[str, Any] | None = None,
    phones: Sequence[Phone] | None = None,
) -> list[Path]:
    """Write each format beside ``out_base_path``; returns the paths written.

    ``phones``: the timed phones of the dialogue text, for the ``phones`` format.

    ``metadata`` (JSON-able: sample rate, source file, model) goes into the JSON
    output; its ``source.path`` is Rhubarb's ``soundFile``. Without
    ``overwrite`` an existing file raises ``OutputExistsError`` and is untouched.
    """
    written = []
    metadata = dict(metadata or {})
    sound_file = str((metadata.get("source") or {}).get("path", ""))
    for fmt in formats:
        path = output_path(out_base_path, fmt)
        if fmt == "csv":
            write_curves_csv(curves, path, overwrite=overwrite)
        elif fmt == "json":
            write_json(curves, path, overwrite=overwrite, metadata={"rig": rig.name, **metadata})
        elif fmt == "a2f":
            write_a2f_json(curves, path, overwrite=overwrite, track_path=sound_file)
        elif fmt == "livelink":
            write_livelink_csv(curves, path, rig, overwrite=overwrite)
        elif fmt == "rhubarb-tsv":
            write_rhubarb_tsv(curves, path, overwrite=overwrite)
        elif fmt == "rhubarb-json":
            write_rhubarb_json(curves, path, sound_file=sound_file, overwrite=overwrite)
        elif fmt in ("moho", "moho-preston-blair"):
            write_moho_dat(curves, path, overwrite=overwrite, preston_blair=fmt == "moho-preston-blair")
        elif fmt == "live2d":
            write_motion3_json(curves, path, overwrite=overwrite)
        elif fmt == "vrma":
            write_vrma(curves, path, overwrite=overwrite, clip_name=Path(sound_file).stem or Path(out_base_path).name)
        elif fmt == "preview":
            from lipsync.curves.preview import write_preview  # PIL and PyAV: not on every conversion's start-up

            write_preview(curves, path, sound_file, overwrite=overwrite)
        elif fmt == "npz":
            write_npz(curves, path, overwrite=overwrite)
        elif fmt == "phones":
            if phones is None:
                raise CurvesError("the phones format needs the dialogue text's phones (convert with --text VOICE)")
            write_alignment_tsv(phones, path, overwrite=overwrite)
        else:
            raise CurvesError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
        written.append(path)
    return written
