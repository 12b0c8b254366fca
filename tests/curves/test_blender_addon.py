"""The Blender add-on, run in Blender's own Python on curves the converter writes."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lipsync.curves import Curves
from lipsync.curves.writers import write_outputs
from lipsync.rigs import VISEMES, load_rig
from support import REPO

ADDON = REPO / "lipsync" / "curves" / "blender_addon.py"
CHECK = Path(__file__).with_name("blender_check.py")


def _blender_command() -> list[str]:
    """Blender, or a Python with the bpy module: $LIPSYNC_BLENDER, .venv-blender (as .ci/run makes it), PATH."""
    found = os.environ.get("LIPSYNC_BLENDER") or next(
        (str(p) for p in [REPO / ".venv-blender" / "bin" / "python"] if p.exists()), None) or shutil.which("blender")
    if not found:
        pytest.skip("no Blender: set LIPSYNC_BLENDER to a blender executable or a Python with bpy, or make "
                    ".venv-blender as .ci/run does (python3.11 -m venv .venv-blender && "
                    ".venv-blender/bin/pip install bpy==5.0.1)")
    if Path(found).name.startswith("blender"):
        return [found, "--background", "--factory-startup", "--python", str(CHECK), "--"]
    return [found, str(CHECK)]


def test_shape_keys_follow_the_curves_from_the_start_frame(tmp_path):
    rows = np.zeros((15, len(VISEMES)), np.float32)  # half a second at 30 fps: rest, open "aa", closed lips
    rows[:, VISEMES.index("sil")] = np.r_[np.ones(5), np.zeros(10)]
    rows[:, VISEMES.index("aa")] = np.r_[np.zeros(5), np.linspace(0.2, 1.0, 5), np.zeros(5)]
    rows[:, VISEMES.index("PP")] = np.r_[np.zeros(10), np.ones(5)]
    rows[:, VISEMES.index("ih")] = 0.25
    curves = Curves(rows, VISEMES, 30.0)
    audio = tmp_path / "line.wav"
    sf.write(audio, np.zeros(8000, np.float32), 16000)
    write_outputs(curves, tmp_path / "line", ["json", "a2f"], load_rig("oculus15"),
                  metadata={"source": {"path": str(audio)}})
    (tmp_path / "other.json").write_text('{"frames": []}')
    (tmp_path / "line.json.cut").write_text('{"format": "lipsync.curves", "fps": 30}')  # curves without channels

    run = subprocess.run([*_blender_command(), str(ADDON), str(tmp_path / "line.json"), str(tmp_path / "line.a2f.json"),
                          str(tmp_path / "other.json")], capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT "):])

    assert result["import"] == ["FINISHED"] and result["action"] == "line"
    if result["has_audio"]:  # Blender and the bpy 5.0.1 module have audio; the bpy 4.2 module is built without
        assert result["audio"] == [[str(audio), 10.0]]  # the line's audio, in the sequencer at the start frame
    else:
        assert result["audio"] == []
    assert result["old_action_kept"]  # the replaced action gets a fake user, so saving keeps it
    not_curves, cut = result["refused"]
    assert "neither lipsync curves" in not_curves and "--format json" in not_curves
    assert "lipsync curves without channels, frames" in cut
    assert "select a mesh with shape keys" in result["no_shape_keys"]
    assert "no shape key of 'bare' is named after a channel (sil, PP" in result["no_match"]
    # 15 frames at 30 fps are 12 scene frames at 24 fps, from frame 10: the scene is extended to cover them
    assert result["frame_end"] >= 22
    values = {int(f): v for f, v in result["values"].items()}
    for frame, keyed in values.items():
        t = (frame - 10) / 24  # seconds into the line
        expect = {name: float(np.interp(t, curves.times, rows[:, VISEMES.index(channel)]))
                  for name, channel in [("vrc.v_aa", "aa"), ("VRC.V_PP", "PP"), ("viseme_I", "ih"), ("sil", "sil")]}
        for name, value in expect.items():
            assert keyed[name] == pytest.approx(value, abs=1e-5), (frame, name)
        assert keyed["unrelated"] == pytest.approx(0.3)  # a shape key no channel names keeps its value
    assert values[13]["vrc.v_aa"] == 0.0 and values[19]["VRC.V_PP"] == 1.0  # t = 0.125 s: rest; 0.375 s: closed
    # the a2f file keys the same values (its 4 decimals), its trackPath's audio joins the sequencer once more
    assert result["a2f_import"] == ["FINISHED"]
    for name, channel in [("vrc.v_aa", "aa"), ("VRC.V_PP", "PP"), ("viseme_I", "ih")]:
        expect = float(np.interp(0.25, curves.times, rows[:, VISEMES.index(channel)]))
        assert result["a2f_values"][name] == pytest.approx(expect, abs=1e-4)
    if result["has_audio"]:
        assert result["a2f_audio"] == [str(audio), str(audio)]
    assert result["match"] == {"aa": "vrc.v_aa", "ih": "viseme_I", "oh": "O", "ou": "mouth_ou", "jawOpen": "JawOpen",
                               "PP": "PP"}
