"""Live2D Cubism motion (``.motion3.json``): oculus15 curves as the mouth parameters of a 2D model.

Cubism models (VTube Studio avatars, visual-novel and mobile-game characters)
move the mouth with two standard parameters: ``ParamMouthOpenY`` (0 closed to 1
open) and ``ParamMouthForm`` (-1 narrow and rounded, as for "oo", to 1 wide, as
for "ee"). Each frame's values are a weighted mean of each viseme's mouth
(``VISEME_MOUTH``). The weights are the visemes' curves squared, so the
dominant viseme decides and the faint rest (a model's curves are seldom exactly
0) do not blur a closure open; a cross-fade of two visemes still moves evenly.
The squares are divided by their sum, or by ``UNCERTAIN`` if that is larger, so
frames where no viseme passes 0.5 stay near rest. One linear segment joins each
pair of frames.

The motion sets no fades (``FadeInTime`` 0): Cubism's default fade-in of one
second would damp the first words.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lipsync.atomic import atomic_write
from lipsync.curves import Curves, viseme_columns

OPEN_PARAMETER, FORM_PARAMETER = "ParamMouthOpenY", "ParamMouthForm"
UNCERTAIN = 0.25  # one viseme at 0.5, squared
VISEME_MOUTH = {  # viseme: (mouth open 0..1, mouth form -1 rounded .. 1 spread)
    "sil": (0.0, 0.0), "PP": (0.0, 0.0), "FF": (0.1, 0.0), "TH": (0.2, 0.2), "DD": (0.2, 0.3),
    "kk": (0.3, 0.2), "CH": (0.2, -0.3), "SS": (0.1, 0.5), "nn": (0.2, 0.2), "RR": (0.3, -0.5),
    "aa": (1.0, 0.0), "E": (0.6, 0.5), "ih": (0.35, 1.0), "oh": (0.7, -0.5), "ou": (0.3, -1.0),
}


def mouth_parameters(curves: Curves) -> tuple[np.ndarray, np.ndarray]:
    """[frames] mouth open in [0, 1] and mouth form in [-1, 1]."""
    weights = np.clip(curves.values[:, viseme_columns(curves, VISEME_MOUTH, "Live2D mouth parameters")], 0.0, 1.0)
    shapes = np.array(list(VISEME_MOUTH.values()), np.float32)  # [visemes, 2]
    weights = weights ** 2
    mouth = weights @ shapes / np.maximum(weights.sum(axis=1, keepdims=True), UNCERTAIN)
    return mouth[:, 0], mouth[:, 1]


def _segments(times: np.ndarray, values: np.ndarray) -> list[float]:
    """Cubism's flat curve: the first point, then ``0`` (linear) and the next point per segment."""
    flat = [round(float(times[0]), 4), round(float(values[0]), 3)]
    for t, v in zip(times[1:], values[1:]):
        flat += [0, round(float(t), 4), round(float(v), 3)]
    return flat


def motion3_document(curves: Curves) -> dict:
    open_, form = mouth_parameters(curves)
    times = curves.times
    if curves.n_frames == 0:  # Cubism curves cannot be empty: hold the rest pose
        times, open_, form = np.zeros(1), np.zeros(1), np.zeros(1)
    keys = len(times)
    return {
        "Version": 3,
        "Meta": {
            "Duration": round(curves.duration, 4),
            "Fps": curves.fps,
            "Loop": False,
            "AreBeziersRestricted": True,
            "FadeInTime": 0.0,
            "FadeOutTime": 0.0,
            "CurveCount": 2,
            "TotalSegmentCount": 2 * (keys - 1),
            "TotalPointCount": 2 * keys,
            "UserDataCount": 0,
            "TotalUserDataSize": 0,
        },
        "Curves": [
            {"Target": "Parameter", "Id": OPEN_PARAMETER, "Segments": _segments(times, open_)},
            {"Target": "Parameter", "Id": FORM_PARAMETER, "Segments": _segments(times, form)},
        ],
    }


def write_motion3_json(curves: Curves, path: str | Path, overwrite: bool = True) -> None:
    doc = motion3_document(curves)
    with atomic_write(path, "w", overwrite=overwrite, encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
