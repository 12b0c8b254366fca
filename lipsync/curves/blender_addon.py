"""Blender add-on: key a mesh's shape keys from lipsync's curves JSON (``convert.py --format json``,
or ``--format a2f``: Audio2Face's layout, which A2F's own exports share).

Install it in Blender (Edit > Preferences > Add-ons > Install from Disk, this
file), select the character's mesh and use File > Import > lipsync curves
(.json). It is self-contained (Blender's Python has no lipsync package) and
needs Blender 4.2 or newer.

Each channel keys the shape key named after it, matched without regard to case
and with the usual prefixes: ``aa``, ``vrc.v_aa`` (VRChat's visemes), ``viseme_aa``
(Ready Player Me) or a prefix you give; oculus15's ``ih``, ``oh`` and ``ou``
also match the Oculus SDK's ``I``, ``O`` and ``U``, and arkit52's names match
"Perfect Sync" shape keys such as ``JawOpen``. Keys go in a new action, linear
between frames, from the start frame on at the scene's frame rate (the scene's
end frame moves to cover the line), and the audio the curves were made from goes
in the sequencer at the same frame. An action the shape keys already had is kept
(with a fake user, so saving does not drop it).
"""

import json
from pathlib import Path

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

bl_info = {
    "name": "lipsync curves",
    "description": "Key shape keys from lipsync's curves JSON",
    "blender": (4, 2, 0),
    "version": (1, 0, 0),
    "location": "File > Import > lipsync curves (.json)",
    "category": "Import-Export",
}

FORMAT_ID = "lipsync.curves"  # lipsync.curves.writers.JSON_FORMAT_ID
PREFIXES = ("", "vrc.v_", "viseme_")
ALIASES = {"ih": "i", "oh": "o", "ou": "u"}  # oculus15's names -> the Oculus SDK's (viseme_I, viseme_O, viseme_U)
LINEAR = 1  # Blender's keyframe interpolation enum: CONSTANT 0, LINEAR 1, BEZIER 2


class CurvesFileError(ValueError):
    """A file that is not lipsync's curves JSON; the message says what to do."""


def load_curves(path: str | Path) -> dict:
    """lipsync's curves JSON, or an Audio2Face blendshape-weights JSON (``--format a2f``, or A2F's own
    export) in the same shape: ``fps``, ``channels``, ``frames`` and the audio as ``source.path``."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CurvesFileError(f"{path}: cannot read it as JSON ({e})") from e
    if isinstance(doc, dict) and {"exportFps", "facsNames", "weightMat"} <= set(doc):
        return {"format": FORMAT_ID, "fps": doc["exportFps"], "channels": doc["facsNames"],
                "frames": doc["weightMat"], "source": {"path": doc.get("trackPath", "")}}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_ID:
        raise CurvesFileError(f"{path}: neither lipsync curves (no \"format\": \"{FORMAT_ID}\") nor Audio2Face "
                              f"weights (no exportFps, facsNames, weightMat); write them with convert.py --format json")
    missing = [field for field in ("fps", "channels", "frames") if field not in doc]
    if missing:
        raise CurvesFileError(f"{path}: lipsync curves without {', '.join(missing)}; convert the audio again")
    return doc


def match_shape_keys(channels: list[str], shape_keys: list[str], prefix: str = "") -> dict[str, str]:
    """{channel: shape key name} for the channels some shape key matches (the first in this order wins:
    exact name, then the given prefix, the known prefixes, the Oculus SDK alias; case-insensitive after exact)."""
    by_lower = {}
    for name in shape_keys:
        by_lower.setdefault(name.lower(), name)
    matches = {}
    for channel in channels:
        if channel in shape_keys:
            matches[channel] = channel
            continue
        bases = [channel.lower()] + ([ALIASES[channel]] if channel in ALIASES else [])
        for p in dict.fromkeys((prefix.lower(), *PREFIXES)):
            found = next((by_lower[p + b] for b in bases if p + b in by_lower), None)
            if found:
                matches[channel] = found
                break
    return matches


def key_shape_keys(obj, doc: dict, start_frame: int, prefix: str = "", name: str = "lipsync") -> tuple[dict, list]:
    """Key ``obj``'s shape keys from curves ``doc``; returns ({channel: shape key}, unmatched channels)."""
    key = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    if key is None:
        raise CurvesFileError("select a mesh with shape keys (the character's face) first")
    channels, frames, fps = list(doc["channels"]), doc["frames"], float(doc["fps"])
    matches = match_shape_keys(channels, [kb.name for kb in key.key_blocks][1:], prefix)  # [0] is the basis
    if not matches:
        raise CurvesFileError(f"no shape key of {obj.name!r} is named after a channel "
                              f"({', '.join(channels[:6])}, ...); "
                              f"rename them or give their prefix")
    scene = bpy.context.scene
    step = scene.render.fps / scene.render.fps_base / fps  # scene frames per curves frame
    animation = key.animation_data or key.animation_data_create()
    if animation.action is not None:
        animation.action.use_fake_user = True  # the replaced action survives saving
    action = bpy.data.actions.new(name)
    animation.action = action
    for channel, shape_key in matches.items():
        column = channels.index(channel)
        path = f'key_blocks["{shape_key}"].value'
        if hasattr(action, "fcurve_ensure_for_datablock"):  # Blender 4.4+: layered actions with slots
            curve = action.fcurve_ensure_for_datablock(key, path)
        else:
            curve = action.fcurves.new(path)
        points = curve.keyframe_points
        points.add(len(frames))
        points.foreach_set("co", [v for i, row in enumerate(frames) for v in (start_frame + i * step, row[column])])
        points.foreach_set("interpolation", [LINEAR] * len(frames))
        curve.update()
    scene.frame_end = max(scene.frame_end, int(start_frame + len(frames) * step + 0.999))
    return matches, [c for c in channels if c not in matches]


def add_audio(scene, doc: dict, start_frame: int, name: str):
    """Put the converted audio (the JSON's ``source.path``) in the sequencer at the start frame, on a free
    channel, so the line plays while scrubbing. Returns the strip."""
    path = Path(str((doc.get("source") or {}).get("path", "")))
    if not path.is_file():
        raise CurvesFileError(f"the audio {str(path)!r} named in the curves file is not there; "
                              f"keys were set without it")
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # renamed in Blender 4.4
    channel = 1 + max((strip.channel for strip in strips), default=0)
    try:
        return strips.new_sound(name, str(path), channel=channel, frame_start=start_frame)
    except RuntimeError as e:  # e.g. a Blender build without audio
        raise CurvesFileError(f"could not add the audio {str(path)!r}: {e}") from e


class ImportLipsyncCurves(bpy.types.Operator, ImportHelper):
    """Key the selected mesh's shape keys from lipsync curves"""

    bl_idname = "import_anim.lipsync_curves"
    bl_label = "Import lipsync curves"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})  # .json and .a2f.json
    start_frame: IntProperty(name="Start frame", description="Scene frame of the audio's start", default=1)
    prefix: StringProperty(name="Shape key prefix", description="e.g. 'mouth_' for shape keys named mouth_aa",
                           default="")
    with_audio: BoolProperty(name="Add the audio", description="Put the converted audio file in the sequencer",
                             default=True)

    def invoke(self, context, event):
        self.start_frame = context.scene.frame_current
        return ImportHelper.invoke(self, context, event)

    def execute(self, context):
        try:
            doc = load_curves(self.filepath)
            matches, unmatched = key_shape_keys(context.active_object, doc, self.start_frame, self.prefix,
                                                name=Path(self.filepath).stem)
        except CurvesFileError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        if unmatched:
            self.report({"WARNING"}, f"no shape key for {len(unmatched)} channel(s): {', '.join(unmatched)}")
        if self.with_audio:
            try:
                add_audio(context.scene, doc, self.start_frame, Path(self.filepath).stem)
            except CurvesFileError as e:
                self.report({"WARNING"}, str(e))
        self.report({"INFO"}, f"keyed {len(matches)} shape keys, {len(doc['frames'])} frames at {doc['fps']} fps")
        return {"FINISHED"}


def _menu(self, context):
    self.layout.operator(ImportLipsyncCurves.bl_idname, text="lipsync curves (.json)")


def register():
    bpy.utils.register_class(ImportLipsyncCurves)
    bpy.types.TOPBAR_MT_file_import.append(_menu)


def unregister():
    bpy.types.TOPBAR_MT_file_import.remove(_menu)
    bpy.utils.unregister_class(ImportLipsyncCurves)
