"""VRM Animation (``.vrma``): the curves as expression tracks that VRM 1.0 avatars play.

VTuber tools and viewers (UniVRM, three-vrm, VRoid Hub, ...) load a ``.vrma``
onto any VRM 1.0 avatar. The file is binary glTF 2.0 (GLB) with the root
extension ``VRMC_vrm_animation`` (spec 1.0), which ties glTF nodes to the
avatar's expressions: each expression is a node, and the x component of its
animated translation is the expression's weight in [0, 1].

Which channel drives which expression:

- a channel named like a VRM preset drives that preset (oculus15's ``aa``,
  ``ih``, ``oh`` and ``ou``), and oculus15's ``E`` (the vowel of "bed") drives
  ``ee``: the five mouth presets every VRM avatar has;
- every other channel is a custom expression of its own name (oculus15's
  consonants; arkit52's 52, which "Perfect Sync" avatars define). An avatar
  without such an expression ignores its track.

The spec requires a humanoid, so the file also holds the required bones in a
T-pose with no tracks on them: players that apply the file move only the
expressions, and ones that look up the hips find them.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from lipsync import __version__
from lipsync.atomic import atomic_write
from lipsync.curves import Curves, CurvesError

SPEC_VERSION = "1.0"
PRESETS = ("happy", "angry", "sad", "relaxed", "surprised", "aa", "ih", "ou", "ee", "oh",
           "blink", "blinkLeft", "blinkRight", "neutral")
LOOK_PRESETS = ("lookUp", "lookDown", "lookLeft", "lookRight")  # the spec keeps these for lookAt, not tracks
PRESET_ALIASES = {"E": "ee"}  # oculus15's names for the mouth presets, where they differ

# Required humanoid bones (parent, local translation in metres): a 1.6 m figure in the VRM T-pose, facing +Z,
# its left on +X.
_BONES = {
    "hips": (None, (0.0, 0.95, 0.0)),
    "spine": ("hips", (0.0, 0.1, 0.0)),
    "head": ("spine", (0.0, 0.55, 0.0)),
    "leftUpperArm": ("spine", (0.18, 0.4, 0.0)),
    "leftLowerArm": ("leftUpperArm", (0.28, 0.0, 0.0)),
    "leftHand": ("leftLowerArm", (0.25, 0.0, 0.0)),
    "rightUpperArm": ("spine", (-0.18, 0.4, 0.0)),
    "rightLowerArm": ("rightUpperArm", (-0.28, 0.0, 0.0)),
    "rightHand": ("rightLowerArm", (-0.25, 0.0, 0.0)),
    "leftUpperLeg": ("hips", (0.09, -0.05, 0.0)),
    "leftLowerLeg": ("leftUpperLeg", (0.0, -0.42, 0.0)),
    "leftFoot": ("leftLowerLeg", (0.0, -0.42, 0.0)),
    "rightUpperLeg": ("hips", (-0.09, -0.05, 0.0)),
    "rightLowerLeg": ("rightUpperLeg", (0.0, -0.42, 0.0)),
    "rightFoot": ("rightLowerLeg", (0.0, -0.42, 0.0)),
}
_FLOAT = 5126  # glTF componentType for float32
_GLB_MAGIC, _GLB_VERSION, _JSON_CHUNK, _BIN_CHUNK = 0x46546C67, 2, 0x4E4F534A, 0x004E4942


def expression_names(channels: tuple[str, ...]) -> list[tuple[str, str]]:
    """[(kind, name)] per channel: ("preset", "ee") for oculus15's E, ("custom", "PP") for a consonant."""
    out, taken = [], {}
    for channel in channels:
        if channel in LOOK_PRESETS:
            raise CurvesError(f"channel {channel!r} cannot be a VRM Animation track: the spec reserves the look "
                              f"expressions ({', '.join(LOOK_PRESETS)}) for lookAt; rename it in the rig")
        preset = PRESET_ALIASES.get(channel, channel)
        kind, name = ("preset", preset) if preset in PRESETS else ("custom", channel)
        if (kind, name) in taken:
            raise CurvesError(f"channels {taken[(kind, name)]!r} and {channel!r} would both drive the VRM "
                              f"{kind} expression {name!r}; rename one in the rig")
        taken[(kind, name)] = channel
        out.append((kind, name))
    return out


def vrma_document(curves: Curves, clip_name: str = "lipsync") -> tuple[dict, bytes]:
    """The glTF JSON and its binary buffer: one LINEAR track per channel, a key per frame."""
    targets = expression_names(curves.channels)
    n_keys = max(curves.n_frames, 1)  # glTF samplers need a key; an empty clip holds every weight at 0
    times = curves.times.astype(np.float32) if curves.n_frames else np.zeros(1, np.float32)
    weights = np.clip(curves.values, 0.0, 1.0) if curves.n_frames else np.zeros((1, len(curves.channels)))
    translations = np.zeros((len(curves.channels), n_keys, 3), np.float32)
    translations[:, :, 0] = weights.T
    binary = times.tobytes() + translations.tobytes()  # float32 throughout, so every view is 4-byte aligned

    nodes, bone_index = [], {}
    for bone, (parent, translation) in _BONES.items():
        bone_index[bone] = len(nodes)
        nodes.append({"name": bone, "translation": list(translation)})
        if parent is not None:
            nodes[bone_index[parent]].setdefault("children", []).append(bone_index[bone])
    first_expression = len(nodes)
    nodes += [{"name": f"expression_{name}"} for _, name in targets]

    accessors = [{"bufferView": 0, "componentType": _FLOAT, "count": n_keys, "type": "SCALAR",
                  "min": [float(times[0])], "max": [float(times[-1])]}]
    samplers, channels = [], []
    for i in range(len(targets)):
        accessors.append({"bufferView": 1, "byteOffset": i * n_keys * 12, "componentType": _FLOAT,
                          "count": n_keys, "type": "VEC3"})
        samplers.append({"input": 0, "output": i + 1, "interpolation": "LINEAR"})
        channels.append({"sampler": i, "target": {"node": first_expression + i, "path": "translation"}})

    expressions: dict[str, dict] = {}
    for i, (kind, name) in enumerate(targets):
        expressions.setdefault(kind, {})[name] = {"node": first_expression + i}
    doc = {
        "asset": {"version": "2.0", "generator": f"lipsync {__version__}"},
        "extensionsUsed": ["VRMC_vrm_animation"],
        "extensions": {"VRMC_vrm_animation": {
            "specVersion": SPEC_VERSION,
            "humanoid": {"humanBones": {bone: {"node": i} for bone, i in bone_index.items()}},
            "expressions": expressions,
        }},
        "scene": 0,
        "scenes": [{"nodes": [bone_index["hips"], *range(first_expression, len(nodes))]}],
        "nodes": nodes,
        "animations": [{"name": clip_name, "samplers": samplers, "channels": channels}],
        "accessors": accessors,
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": times.nbytes},
                        {"buffer": 0, "byteOffset": times.nbytes, "byteLength": translations.nbytes}],
        "buffers": [{"byteLength": len(binary)}],
    }
    return doc, binary


def glb_bytes(doc: dict, binary: bytes) -> bytes:
    """GLB container: 12-byte header, JSON chunk padded with spaces, BIN chunk padded with zeros."""
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    chunks = struct.pack("<II", len(text), _JSON_CHUNK) + text + struct.pack("<II", len(binary), _BIN_CHUNK) + binary
    return struct.pack("<III", _GLB_MAGIC, _GLB_VERSION, 12 + len(chunks)) + chunks


def write_vrma(curves: Curves, path: str | Path, overwrite: bool = True, clip_name: str = "lipsync") -> None:
    doc, binary = vrma_document(curves, clip_name)
    with atomic_write(path, "wb", overwrite=overwrite) as f:
        f.write(glb_bytes(doc, binary))
