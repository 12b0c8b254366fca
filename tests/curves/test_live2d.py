"""Live2D Cubism motion output: the motion3.json layout and what the mouth does."""
import json

import numpy as np

from lipsync.curves import Curves
from lipsync.curves.writers import write_outputs
from lipsync.rigs import VISEMES, load_rig
from support import viseme_script

OCULUS = load_rig("oculus15")


def _curves_of(doc: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Parse each curve's flat Segments by the spec: a point, then (id, point) per linear segment."""
    out = {}
    for curve in doc["Curves"]:
        flat = curve["Segments"]
        assert curve["Target"] == "Parameter" and (len(flat) - 2) % 3 == 0
        assert all(kind == 0 for kind in flat[2::3])  # linear only
        points = np.array([flat[:2]] + [flat[i + 1:i + 3] for i in range(2, len(flat), 3)])
        out[curve["Id"]] = (points[:, 0], points[:, 1])
    return out


def test_motion_meta_counts_match_its_curves(tmp_path):
    curves = viseme_script(30.0, [("sil", 0.2), ("aa", 0.3), ("sil", 0.2)])
    (path,) = write_outputs(curves, tmp_path / "line_01", ["live2d"], OCULUS)
    assert path.name == "line_01.motion3.json"
    doc = json.loads(path.read_text())
    meta, parsed = doc["Meta"], _curves_of(doc)
    assert doc["Version"] == 3 and set(parsed) == {"ParamMouthOpenY", "ParamMouthForm"}
    assert meta["Duration"] == 0.7 and meta["Fps"] == 30.0 and meta["Loop"] is False
    assert meta["FadeInTime"] == 0.0 and meta["FadeOutTime"] == 0.0  # Cubism's default 1 s fade would damp speech
    assert meta["CurveCount"] == len(doc["Curves"]) == 2
    assert meta["TotalPointCount"] == sum(len(t) for t, _ in parsed.values()) == 2 * 21
    assert meta["TotalSegmentCount"] == sum(len(t) - 1 for t, _ in parsed.values())
    for times, _ in parsed.values():
        np.testing.assert_allclose(times, np.arange(21) / 30.0, atol=1e-4)


def test_the_mouth_opens_on_vowels_closes_on_lips_and_rounds_on_oo(tmp_path):
    curves = viseme_script(30.0, [("sil", 0.2), ("aa", 0.3), ("PP", 0.2), ("ih", 0.3), ("ou", 0.3), ("sil", 0.2)])
    write_outputs(curves, tmp_path / "m", ["live2d"], OCULUS)
    parsed = _curves_of(json.loads((tmp_path / "m.motion3.json").read_text()))
    (t, open_), (_, form) = parsed["ParamMouthOpenY"], parsed["ParamMouthForm"]
    at = {name: (t >= start + 0.05) & (t < end - 0.05) for name, start, end in
          [("sil", 0, 0.2), ("aa", 0.2, 0.5), ("PP", 0.5, 0.7), ("ih", 0.7, 1.0), ("ou", 1.0, 1.3)]}
    assert open_[at["aa"]].min() > 0.6 and open_[at["PP"]].max() < 0.1 and open_[at["sil"]].max() < 0.1
    assert open_[at["ih"]].max() < open_[at["aa"]].min()
    assert form[at["ih"]].min() > 0.5 and form[at["ou"]].max() < -0.5 and abs(form[at["aa"]]).max() < 0.2
    assert open_.min() >= 0 and open_.max() <= 1 and form.min() >= -1 and form.max() <= 1


def test_weak_frames_stay_near_rest_and_an_empty_clip_is_one_rest_point(tmp_path):
    faint = Curves(np.full((10, len(VISEMES)), 0.02, np.float32), VISEMES, 30.0)
    faint.values[:, VISEMES.index("aa")] = 0.2  # the strongest, but no viseme is sure
    half = Curves(np.zeros((10, len(VISEMES)), np.float32), VISEMES, 30.0)
    half.values[:, [VISEMES.index("aa"), VISEMES.index("oh")]] = 0.5  # a cross-fade between two open vowels
    write_outputs(faint, tmp_path / "faint", ["live2d"], OCULUS)
    write_outputs(half, tmp_path / "half", ["live2d"], OCULUS)
    open_faint, open_half = (_curves_of(json.loads((tmp_path / f"{n}.motion3.json").read_text()))["ParamMouthOpenY"][1]
                             for n in ("faint", "half"))
    assert open_faint.max() < 0.2  # divided by the squares' own sum it would open to 0.91
    np.testing.assert_allclose(open_half, 0.85)  # the mean of aa's 1.0 and oh's 0.7: no dip mid-fade
    empty = Curves(np.zeros((0, len(VISEMES)), np.float32), VISEMES, 30.0)
    write_outputs(empty, tmp_path / "empty", ["live2d"], OCULUS)
    doc = json.loads((tmp_path / "empty.motion3.json").read_text())
    assert [c["Segments"] for c in doc["Curves"]] == [[0.0, 0.0], [0.0, 0.0]]
    assert doc["Meta"]["TotalPointCount"] == 2 and doc["Meta"]["TotalSegmentCount"] == 0
