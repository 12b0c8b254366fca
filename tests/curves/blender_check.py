"""Run inside Blender's Python (``python blender_check.py ADDON CURVES_JSON A2F_JSON OTHER_JSON``, or through
``blender --background --python blender_check.py -- ...``): install the add-on, import curves onto a
mesh through its operator, and print what the shape keys do as JSON for test_blender_addon.py."""
import importlib.util
import json
import os
import sys

import bpy

args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
addon_path, curves_path, a2f_path, not_curves_path = args
spec = importlib.util.spec_from_file_location("lipsync_blender_addon", addon_path)
addon = importlib.util.module_from_spec(spec)
spec.loader.exec_module(addon)
addon.register()

bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = 24, 1.0
mesh = bpy.data.meshes.new("face")
mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
face = bpy.data.objects.new("face", mesh)
scene.collection.objects.link(face)
bpy.context.view_layer.objects.active = face
shape_keys = ["Basis", "vrc.v_aa", "VRC.V_PP", "viseme_I", "sil", "unrelated"]
for name in shape_keys:
    face.shape_key_add(name=name).value = 0.3 if name == "unrelated" else 0.0
key = face.data.shape_keys
old = bpy.data.actions.new("earlier_take")
key.animation_data_create().action = old

result = {"version": bpy.app.version_string, "has_audio": bpy.app.build_options.audaspace}
result["import"] = sorted(bpy.ops.import_anim.lipsync_curves(filepath=curves_path, start_frame=10))
result["action"] = key.animation_data.action.name
editor = scene.sequence_editor
strips = [] if editor is None else list(editor.strips if hasattr(editor, "strips") else editor.sequences)
result["audio"] = [(strip.sound.filepath, strip.frame_start) for strip in strips]
result["old_action_kept"] = old.use_fake_user
result["frame_end"] = scene.frame_end
result["values"] = {}  # scene frame -> {shape key: value}
for frame in range(8, scene.frame_end + 2):
    scene.frame_set(frame)
    result["values"][frame] = {kb.name: kb.value for kb in key.key_blocks[1:]}
result["refused"] = []
for path in (not_curves_path, curves_path + ".cut"):
    try:  # an ERROR report comes back as RuntimeError when Blender runs without a window
        result["refused"].append(sorted(bpy.ops.import_anim.lipsync_curves(filepath=path)))
    except RuntimeError as e:
        result["refused"].append(str(e))
# the same curves as Audio2Face weights (--format a2f), onto the face again from frame 1
result["a2f_import"] = sorted(bpy.ops.import_anim.lipsync_curves(filepath=a2f_path, start_frame=1))
scene.frame_set(1 + 6)  # 0.25 s at 24 fps
result["a2f_values"] = {kb.name: kb.value for kb in key.key_blocks[1:]}
editor = scene.sequence_editor
strips = [] if editor is None else list(editor.strips if hasattr(editor, "strips") else editor.sequences)
result["a2f_audio"] = [strip.sound.filepath for strip in strips]

bare = bpy.data.objects.new("bare", bpy.data.meshes.new("bare"))  # no shape keys at all
scene.collection.objects.link(bare)
bpy.context.view_layer.objects.active = bare
try:
    result["no_shape_keys"] = sorted(bpy.ops.import_anim.lipsync_curves(filepath=curves_path))
except RuntimeError as e:
    result["no_shape_keys"] = str(e)
bare.shape_key_add(name="Basis")
bare.shape_key_add(name="smile")
try:
    result["no_match"] = sorted(bpy.ops.import_anim.lipsync_curves(filepath=curves_path))
except RuntimeError as e:
    result["no_match"] = str(e)
result["match"] = addon.match_shape_keys(["aa", "ih", "oh", "ou", "jawOpen", "PP"],
                                         ["vrc.v_aa", "viseme_I", "O", "mouth_ou", "JawOpen", "pp", "PP"], "mouth_")
print("RESULT " + json.dumps(result), flush=True)
os._exit(0)  # the bpy 4.2 module crashes in its own exit handlers (SIGSEGV) after all work is done
