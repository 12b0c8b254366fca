import csv
import json
import re
import time

import numpy as np
import pytest

from lipsync.atomic import OutputExistsError
from lipsync.curves import Curves, CurvesError
from lipsync.curves.csv import read_curves_csv
from lipsync.curves.livelink import livelink_timecode
from lipsync.curves.rhubarb import MIN_CUE_S, SHAPES, mouth_cues
from lipsync.curves.writers import FORMATS, check_formats_fit_rig, output_path, parse_formats, write_outputs
from lipsync.rigs import VISEMES, load_rig
from support import viseme_script

OCULUS = load_rig("oculus15")
ARKIT = load_rig("arkit52")


def _random_curves(channels, n=90, fps=30.0, seed=0) -> Curves:
    return Curves(np.random.default_rng(seed).random((n, len(channels))).astype(np.float32), tuple(channels), fps)


def test_csv_output_reads_back_as_training_targets(tmp_path):
    curves = _random_curves(OCULUS.channels)
    (path,) = write_outputs(curves, tmp_path / "sub" / "take.01", ["csv"], OCULUS)
    assert path == tmp_path / "sub" / "take.01.csv"
    back = read_curves_csv(path)
    assert back.channels == OCULUS.channels and back.fps == 30.0 and back.n_frames == 90
    assert np.allclose(back.values, curves.values, atol=5e-5)


def test_json_and_npz_carry_fps_channels_and_frames(tmp_path):
    curves = _random_curves(OCULUS.channels, n=45, fps=25.0)
    meta = {"sample_rate": 16000, "source": {"path": "/x/take.wav", "duration": 1.8}}
    write_outputs(curves, tmp_path / "take", ["json", "npz"], OCULUS, metadata=meta)
    doc = json.loads((tmp_path / "take.json").read_text())
    assert doc["fps"] == 25.0 and doc["channels"] == list(OCULUS.channels) and doc["rig"] == "oculus15"
    assert doc["sample_rate"] == 16000 and doc["source"]["path"] == "/x/take.wav" and doc["n_frames"] == 45
    assert np.allclose(np.array(doc["frames"]), curves.values, atol=5e-5)
    with np.load(tmp_path / "take.npz") as npz:
        assert np.array_equal(npz["values"], curves.values)
        assert tuple(npz["channels"].tolist()) == OCULUS.channels and float(npz["fps"]) == 25.0


def test_audio2face_json_has_its_export_layout(tmp_path):
    curves = _random_curves(ARKIT.channels, n=37, fps=60.0)
    (path,) = write_outputs(curves, tmp_path / "take", ["a2f"], ARKIT, metadata={"source": {"path": "/x/take.wav"}})
    assert path.name == "take.a2f.json"
    doc = json.loads(path.read_text())
    assert list(doc) == ["exportFps", "trackPath", "numPoses", "numFrames", "facsNames", "weightMat"]
    assert doc["exportFps"] == 60 and isinstance(doc["exportFps"], int) and doc["trackPath"] == "/x/take.wav"
    assert doc["numPoses"] == 52 and doc["facsNames"] == list(ARKIT.channels)
    assert doc["numFrames"] == 37 and np.allclose(doc["weightMat"], curves.values, atol=5e-5)
    odd = _random_curves(OCULUS.channels, n=3, fps=29.97)  # any rig's channels; a fractional rate stays one
    write_outputs(odd, tmp_path / "odd", ["a2f"], OCULUS)
    doc = json.loads((tmp_path / "odd.a2f.json").read_text())
    assert doc["exportFps"] == 29.97 and doc["facsNames"] == list(OCULUS.channels) and doc["trackPath"] == ""


def test_livelink_csv_has_the_app_layout(tmp_path):
    curves = _random_curves(ARKIT.channels, n=130, fps=60.0)
    (path,) = write_outputs(curves, tmp_path / "take", ["livelink"], ARKIT)
    assert path.name == "take.livelink.csv"
    rows = list(csv.reader(path.read_text().splitlines()))
    header = rows[0]
    assert header[:2] == ["Timecode", "BlendshapeCount"]
    assert header[2:54] == list(ARKIT.livelink_columns) and len(header) == 2 + 61
    assert header[54:] == ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                           "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    body = rows[1:]
    assert len(body) == 130 and all(r[1] == "61" and len(r) == 63 for r in body)
    assert [r[0] for r in body[:2]] == ["00:00:00:00.000", "00:00:00:01.000"]
    assert body[61][0] == "00:00:01:01.000"
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d:\d\d\.\d{3}", r[0]) for r in body)
    # Live Link's order differs from ARKit's (JawRight before JawLeft): values must follow the names.
    table = np.array([[float(v) for v in r[2:54]] for r in body])
    for name in ("JawLeft", "JawRight", "MouthLeft", "MouthRight", "JawOpen", "TongueOut"):
        arkit_index = [c.lower() for c in ARKIT.channels].index(name.lower())
        assert np.allclose(table[:, header.index(name) - 2], curves.values[:, arkit_index], atol=1e-6)
    assert all(float(v) == 0.0 for r in body for v in r[54:])


def test_livelink_output_reads_back_through_the_livelink_importer(tmp_path):
    from lipsync.prepare.livelink import read_livelink_csv

    curves = _random_curves(ARKIT.channels, n=90, fps=30.0)
    (path,) = write_outputs(curves, tmp_path / "take", ["livelink"], ARKIT)
    take = read_livelink_csv(path, ARKIT)
    assert take.capture_fps == 30.0 and take.values.shape == (90, 52)
    assert np.allclose(take.values, curves.values, atol=1e-5)


def test_livelink_timecodes():
    assert livelink_timecode(0, 30) == "00:00:00:00.000"
    assert livelink_timecode(29, 30) == "00:00:00:29.000"
    assert livelink_timecode(30, 30) == "00:00:01:00.000"
    assert livelink_timecode(24 * 3661 + 5, 24.0) == "01:01:01:05.000"
    # Non-integer rates: frame within the second plus the fraction of a frame.
    assert livelink_timecode(30, 29.97) == "00:00:01:00.030"


def test_livelink_needs_an_arkit_rig(tmp_path):
    with pytest.raises(CurvesError, match="arkit52"):
        write_outputs(_random_curves(OCULUS.channels), tmp_path / "t", ["livelink"], OCULUS)
    with pytest.raises(CurvesError, match="arkit52"):
        check_formats_fit_rig(["csv", "livelink"], OCULUS)


def test_rhubarb_cues_follow_the_visemes_and_merge_a_blip():
    fps = 30.0
    curves = viseme_script(fps, [("sil", 0.3), ("PP", 0.2), ("aa", 0.3), ("FF", 1 / fps), ("ou", 0.2),
                                  ("E", 0.2), ("FF", 0.2), ("nn", 0.2), ("SS", 0.2), ("oh", 0.2), ("sil", 0.3)])
    cues = mouth_cues(curves)
    assert [c.value for c in cues] == ["X", "A", "D", "F", "C", "G", "H", "B", "E", "X"]
    assert cues[0].start == 0.0 and abs(cues[-1].end - curves.duration) < 1e-9
    assert all(a.end == b.start for a, b in zip(cues, cues[1:]))
    assert all(c.end - c.start >= MIN_CUE_S for c in cues)
    assert abs(cues[1].start - 0.3) < 1e-9 and abs(cues[2].start - 0.5) < 1e-9


def test_rhubarb_low_activity_is_rest():
    curves = Curves(np.full((30, 15), 0.05, np.float32), VISEMES, 30.0)
    assert [c.value for c in mouth_cues(curves)] == ["X"]


def test_rhubarb_tsv_and_json_layouts(tmp_path):
    curves = viseme_script(30.0, [("sil", 0.2), ("aa", 0.4), ("PP", 0.1), ("ih", 0.3), ("sil", 0.25)])
    meta = {"source": {"path": "/audio/line 1.wav"}}
    write_outputs(curves, tmp_path / "line", ["rhubarb-tsv", "rhubarb-json"], OCULUS, metadata=meta)
    lines = (tmp_path / "line.rhubarb.tsv").read_text().splitlines()
    assert all(re.fullmatch(r"\d+\.\d\d\t[A-HX]", line) for line in lines)
    times = [float(line.split("\t")[0]) for line in lines]
    assert times[0] == 0.0 and times == sorted(times) and len(set(times)) == len(times)
    assert lines[-1] == f"{curves.duration:.2f}\tX"
    assert [line.split("\t")[1] for line in lines] == ["X", "D", "A", "C", "X", "X"]

    text = (tmp_path / "line.rhubarb.json").read_text()
    assert '"start": 0.00' in text  # Rhubarb writes two decimals
    doc = json.loads(text)
    assert set(doc) == {"metadata", "mouthCues"}
    assert doc["metadata"] == {"soundFile": "/audio/line 1.wav", "duration": round(curves.duration, 2)}
    cues = doc["mouthCues"]
    assert all(set(c) == {"start", "end", "value"} and c["value"] in SHAPES for c in cues)
    assert [c["value"] for c in cues] == ["X", "D", "A", "C", "X"]
    assert cues[0]["start"] == 0.0 and cues[-1]["end"] == doc["metadata"]["duration"]
    assert all(a["end"] == b["start"] for a, b in zip(cues, cues[1:]))
    assert [c["start"] for c in cues] == times[:-1]


def test_moho_switch_data_keys_each_cue_on_its_frame(tmp_path):
    curves = viseme_script(30.0, [("sil", 0.2), ("aa", 0.4), ("PP", 0.1), ("ih", 0.3), ("sil", 0.25)])
    write_outputs(curves, tmp_path / "line", ["moho", "moho-preston-blair", "rhubarb-tsv"], OCULUS)
    assert (tmp_path / "line.moho.dat").read_text() == "MohoSwitch1\n1 X\n7 D\n19 A\n22 C\n31 X\n"
    assert (tmp_path / "line.preston-blair.dat").read_text() == "MohoSwitch1\n1 rest\n7 AI\n19 MBP\n22 E\n31 rest\n"
    # the same cues as the Rhubarb TSV: frame = time x fps + 1 (Moho counts frames from 1)
    tsv = [line.split("\t") for line in (tmp_path / "line.rhubarb.tsv").read_text().splitlines()[:-1]]
    dat = [line.split() for line in (tmp_path / "line.moho.dat").read_text().splitlines()[1:]]
    assert dat == [[str(round(float(t) * 30) + 1), shape] for t, shape in tsv]


def test_moho_switch_data_rests_where_the_audio_ends_mid_word(tmp_path):
    curves = viseme_script(24.0, [("sil", 0.1), ("ou", 0.3)])  # 2 + 7 frames at 24 fps, no silence at the end
    write_outputs(curves, tmp_path / "cut", ["moho", "moho-preston-blair"], OCULUS)
    assert (tmp_path / "cut.moho.dat").read_text() == "MohoSwitch1\n1 X\n3 F\n10 X\n"
    assert (tmp_path / "cut.preston-blair.dat").read_text() == "MohoSwitch1\n1 rest\n3 U\n10 rest\n"


@pytest.mark.parametrize("fmt", ["rhubarb-json", "moho", "moho-preston-blair", "live2d", "preview"])
def test_viseme_formats_need_oculus15_curves(tmp_path, fmt):
    with pytest.raises(CurvesError, match="oculus15"):
        write_outputs(_random_curves(ARKIT.channels), tmp_path / "t", [fmt], ARKIT)
    with pytest.raises(CurvesError, match=f"{fmt}.*oculus15"):
        check_formats_fit_rig(["csv", fmt], ARKIT)


def test_rhubarb_merging_is_fast_and_complete_on_long_noisy_curves():
    curves = _random_curves(VISEMES, n=30 * 600, seed=3)  # 10 minutes of flicker
    started = time.perf_counter()
    cues = mouth_cues(curves)
    assert time.perf_counter() - started < 5.0
    assert all(c.end - c.start >= MIN_CUE_S for c in cues)
    assert all(a.end == b.start and a.value != b.value for a, b in zip(cues, cues[1:]))


def test_existing_output_is_refused_and_untouched(tmp_path):
    target = tmp_path / "take.csv"
    target.write_text("keep me")
    with pytest.raises(OutputExistsError):
        write_outputs(_random_curves(OCULUS.channels), tmp_path / "take", ["csv"], OCULUS, overwrite=False)
    assert target.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["take.csv"]  # no temp file left behind


def test_format_names():
    assert parse_formats("csv, JSON,csv") == ("csv", "json")
    with pytest.raises(CurvesError, match="rhubarb-tsv"):
        parse_formats("csv,fbx")
    assert {output_path("o/a.b", f).name for f in FORMATS} == {
        "a.b.csv", "a.b.json", "a.b.a2f.json", "a.b.livelink.csv", "a.b.rhubarb.tsv", "a.b.rhubarb.json",
        "a.b.moho.dat", "a.b.preston-blair.dat", "a.b.motion3.json", "a.b.vrma", "a.b.preview.mp4", "a.b.npz",
        "a.b.phones.tsv"}
