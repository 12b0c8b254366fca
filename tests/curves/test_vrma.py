"""VRM Animation output, read back with an independent glTF reader (pygltflib)."""
import struct

import numpy as np
import pytest
from pygltflib import GLTF2

from lipsync.curves import Curves, CurvesError
from lipsync.curves.vrma import LOOK_PRESETS
from lipsync.curves.writers import check_formats_fit_rig, write_outputs
from lipsync.rigs import load_rig
from support import vrma_tracks

OCULUS = load_rig("oculus15")
ARKIT = load_rig("arkit52")
REQUIRED_BONES = {  # VRM 1.0 humanoid: required bone -> its nearest required ancestor
    "hips": None, "spine": "hips", "head": "spine",
    "leftUpperArm": "spine", "leftLowerArm": "leftUpperArm", "leftHand": "leftLowerArm",
    "rightUpperArm": "spine", "rightLowerArm": "rightUpperArm", "rightHand": "rightLowerArm",
    "leftUpperLeg": "hips", "leftLowerLeg": "leftUpperLeg", "leftFoot": "leftLowerLeg",
    "rightUpperLeg": "hips", "rightLowerLeg": "rightUpperLeg", "rightFoot": "rightLowerLeg",
}


def _curves(channels, n=50, fps=30.0, seed=0) -> Curves:
    values = np.random.default_rng(seed).uniform(-0.1, 1.1, (n, len(channels))).astype(np.float32)  # some out of range
    return Curves(values, tuple(channels), fps)


def test_oculus15_curves_drive_the_five_mouth_presets(tmp_path):
    curves = _curves(OCULUS.channels)
    (path,) = write_outputs(curves, tmp_path / "take.01", ["vrma"], OCULUS,
                            metadata={"source": {"path": "/in/take.01.wav"}})
    assert path.name == "take.01.vrma"
    raw = path.read_bytes()
    magic, version, length = struct.unpack("<4sII", raw[:12])
    assert (magic, version, length) == (b"glTF", 2, len(raw)) and length % 4 == 0

    gltf = GLTF2().load_binary(str(path))
    ext = gltf.extensions["VRMC_vrm_animation"]
    assert gltf.asset.version == "2.0" and gltf.extensionsUsed == ["VRMC_vrm_animation"]
    assert ext["specVersion"] == "1.0" and gltf.animations[0].name == "take.01"
    assert set(ext["expressions"]["preset"]) == {"aa", "ee", "ih", "oh", "ou"}
    assert set(ext["expressions"]["custom"]) == {"sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR"}

    times, tracks = vrma_tracks(path)
    np.testing.assert_allclose(times, np.arange(50) / 30.0, atol=1e-6)
    acc = gltf.accessors[gltf.animations[0].samplers[0].input]
    assert acc.min == [0.0] and acc.max[0] == pytest.approx(49 / 30)
    weights = np.clip(curves.values, 0, 1)
    for channel, expression in [("aa", "preset:aa"), ("E", "preset:ee"), ("ih", "preset:ih"),
                                ("PP", "custom:PP"), ("sil", "custom:sil")]:
        key = tracks[expression]
        np.testing.assert_allclose(key[:, 0], weights[:, OCULUS.channels.index(channel)], atol=1e-7)
        assert not key[:, 1:].any()  # only x is the weight
    assert len(tracks) == 15


def test_required_humanoid_bones_stand_in_t_pose_without_tracks(tmp_path):
    write_outputs(_curves(OCULUS.channels), tmp_path / "t", ["vrma"], OCULUS)
    gltf = GLTF2().load_binary(str(tmp_path / "t.vrma"))
    bones = gltf.extensions["VRMC_vrm_animation"]["humanoid"]["humanBones"]
    assert set(bones) == set(REQUIRED_BONES)
    parent = {child: i for i, node in enumerate(gltf.nodes) for child in (node.children or [])}
    for bone, ancestor in REQUIRED_BONES.items():
        node = bones[bone]["node"]
        assert gltf.nodes[node].rotation is None and gltf.nodes[node].scale is None  # identity: the T-pose
        assert parent.get(node) == (None if ancestor is None else bones[ancestor]["node"])
    assert bones["hips"]["node"] in gltf.scenes[gltf.scene].nodes
    animated = {c.target.node for c in gltf.animations[0].channels}
    assert not animated & {b["node"] for b in bones.values()}
    expression_nodes = {e["node"] for table in gltf.extensions["VRMC_vrm_animation"]["expressions"].values()
                        for e in table.values()}
    assert animated == expression_nodes and expression_nodes <= set(gltf.scenes[0].nodes)


def test_arkit52_curves_become_perfect_sync_custom_expressions(tmp_path):
    curves = _curves(ARKIT.channels, n=7, fps=60.0)
    write_outputs(curves, tmp_path / "a", ["vrma"], ARKIT)
    gltf = GLTF2().load_binary(str(tmp_path / "a.vrma"))
    expressions = gltf.extensions["VRMC_vrm_animation"]["expressions"]
    assert set(expressions) == {"custom"} and list(expressions["custom"]) == list(ARKIT.channels)
    times, tracks = vrma_tracks(tmp_path / "a.vrma")
    np.testing.assert_allclose(times, np.arange(7) / 60.0, atol=1e-6)
    jaw = ARKIT.channels.index("jawOpen")
    np.testing.assert_allclose(tracks["custom:jawOpen"][:, 0], np.clip(curves.values[:, jaw], 0, 1), atol=1e-7)


def test_an_empty_clip_holds_every_expression_at_rest(tmp_path):
    curves = Curves(np.zeros((0, len(OCULUS.channels)), np.float32), OCULUS.channels, 30.0)
    write_outputs(curves, tmp_path / "e", ["vrma"], OCULUS)
    times, tracks = vrma_tracks(tmp_path / "e.vrma")
    assert times.tolist() == [0.0] and all(t.tolist() == [[0.0, 0.0, 0.0]] for t in tracks.values())


@pytest.mark.parametrize("channels, message", [
    (("aa", LOOK_PRESETS[0]), "lookAt"),
    (("E", "ee", "PP"), "'E' and 'ee' would both drive the VRM preset expression 'ee'"),
])
def test_channels_that_cannot_be_tracks_are_refused_before_any_work(tmp_path, channels, message):
    rig_file = tmp_path / "face.yaml"
    rig_file.write_text(f"channels: [{', '.join(channels)}]\n")
    rig = load_rig(rig_file)
    with pytest.raises(CurvesError, match=message):
        check_formats_fit_rig(["csv", "vrma"], rig)
    with pytest.raises(CurvesError, match=message):
        write_outputs(_curves(channels), tmp_path / "x", ["vrma"], rig)
    assert not (tmp_path / "x.vrma").exists()
