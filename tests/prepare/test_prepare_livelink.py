"""Live Link Face CSV -> arkit52 corpus, on takes written in the app's published layout."""
from __future__ import annotations

import json

import numpy as np
import pytest
from prepare_inputs import jaw_motion, leftovers, write_livelink_csv, write_tone

from lipsync.curves.csv import read_curves_csv
from lipsync.data.validate import load_clips
from lipsync.prepare.livelink import parse_timecode, prepare_livelink, read_livelink_csv, take_to_curves
from lipsync.prepare.problems import CorpusRejected, PrepareError
from lipsync.rigs import load_rig

RIG = load_rig("arkit52")


def test_timecode_fraction_is_part_of_a_frame_not_milliseconds():
    assert parse_timecode("19:55:16:26.689", 60) == (19, 55, 16, pytest.approx(26.689))
    with pytest.raises(ValueError):
        parse_timecode("19:55:16.689", 60)


def test_take_gives_fps_order_and_known_motion(tmp_path):
    take = read_livelink_csv(write_livelink_csv(tmp_path / "t.csv"), RIG)
    assert take.capture_fps == 60 and take.timecode_rate == 60
    assert take.dropped_frames == 0 and take.duplicate_rows == []
    curves, extras = take_to_curves(take)
    assert curves.channels == RIG.channels and curves.fps == 60 and curves.n_frames == 120
    jaw = curves.values[:, RIG.index("jawOpen")]
    assert np.abs(jaw - jaw_motion(curves.times)).max() < 0.01  # drift of 2e-4 frame/frame stays sub-frame
    # Live Link writes JawRight before JawLeft: mapped by name, not position.
    assert curves.values[:, RIG.index("jawLeft")] == pytest.approx(0.1)
    assert curves.values[:, RIG.index("jawRight")] == pytest.approx(0.3)
    assert curves.values[:, RIG.index("mouthRight")] == pytest.approx(0.25)
    assert extras.channels == RIG.livelink_extra_columns
    assert extras.values[:, 0] == pytest.approx(-0.2)  # HeadYaw kept signed


def test_30fps_take_and_other_header_spelling(tmp_path):
    path = write_livelink_csv(tmp_path / "t.csv", fps=30, start_frames=3600 * 30 + 7.25, count_header="BlendShapeCount")
    take = read_livelink_csv(path, RIG)
    assert take.capture_fps == 30 and take.timecode_rate == 30
    curves, _ = take_to_curves(take, fps=60)
    assert curves.fps == 60 and curves.n_frames == 120
    inside = curves.times <= take.times[-1]  # after the last row the last value is held
    assert np.abs(curves.values[inside, RIG.index("jawOpen")] - jaw_motion(curves.times[inside])).max() < 0.02


def test_dropped_frames_and_duplicate_timecodes_are_reported_and_bridged(tmp_path):
    path = write_livelink_csv(tmp_path / "t.csv", drop_rows=(40, 41, 42, 90), duplicate_rows=(10,))
    take = read_livelink_csv(path, RIG)
    assert take.dropped_frames == 4 and [n for _, n in take.gaps] == [3, 1]
    assert take.duplicate_rows == [13]  # file line of the repeated row
    curves, _ = take_to_curves(take)
    assert np.abs(curves.values[:, RIG.index("jawOpen")] - jaw_motion(curves.times)).max() < 0.02


def test_offset_places_the_take_on_the_audio_timeline(tmp_path):
    take = read_livelink_csv(write_livelink_csv(tmp_path / "t.csv"), RIG)
    curves, _ = take_to_curves(take, offset=0.5, n_frames=150)
    t = curves.times[40:140]
    assert np.abs(curves.values[40:140, RIG.index("jawOpen")] - jaw_motion(t - 0.5)).max() < 0.01


def test_prepare_writes_a_corpus_that_training_loads(livelink_take, tmp_path):
    out = tmp_path / "corpus"
    result = prepare_livelink(livelink_take, out, print_report=False)
    assert result["clips"] == 1
    entry = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert entry["id"] == "take1" and entry["curves"] == "curves/take1.csv" and entry["extras"] == "extras/take1.csv"
    assert read_curves_csv(out / entry["curves"]).channels == RIG.channels
    assert {"report.json", "report.png", "prepare_log.json"} <= {p.name for p in out.iterdir()}
    log = json.loads((out / "prepare_log.json").read_text())
    assert log["clips"]["take1"]["capture_fps"] == 60
    clips = load_clips(out, "arkit52", 30, progress=False)
    assert np.abs(clips[0].curves[:, RIG.index("jawOpen")] - jaw_motion(np.arange(60) / 30)).max() < 0.02


def test_audio_start_timecode_sets_the_offset(livelink_take, tmp_path):
    write_tone(livelink_take / "take1.wav", 2.5)  # audio started half a second before the take
    out = tmp_path / "corpus"
    prepare_livelink(livelink_take, out, audio_start_timecode="19:55:15:56.689", extras="drop", print_report=False)
    log = json.loads((out / "prepare_log.json").read_text())
    assert log["clips"]["take1"]["offset_s"] == pytest.approx(0.5, abs=1e-3)
    assert not (out / "extras").exists()


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: write_livelink_csv(d / "take1_iPhone.csv", rename={"JawOpen": "Jaw_Open"}), "missing 1 blendshape column(s): JawOpen"),
        (lambda d: _swap_rows(write_livelink_csv(d / "take1_iPhone.csv"), 30, 31), "timecode goes backwards at line 33"),
        (lambda d: write_tone(d / "take1.wav", 1.0), "audio (1.000 s) is shorter than its face capture (2.000 s)"),
    ],
    ids=["wrong column names", "non-monotonic timecode", "audio shorter than curves"],
)
def test_malformed_take_gives_one_line_and_writes_nothing(livelink_take, tmp_path, make, words):
    make(livelink_take)
    out = tmp_path / "corpus"
    with pytest.raises(CorpusRejected) as caught:
        prepare_livelink(livelink_take, out, print_report=False)
    (line,) = [str(p) for p in caught.value.problems]
    assert "take1" in line and words in line and "; fix: " in line and "\n" not in line
    assert not out.exists() and leftovers(tmp_path) == []


def test_too_short_take_asks_for_the_rate(tmp_path):
    path = write_livelink_csv(tmp_path / "t.csv", seconds=0.2, start_frames=3600 * 60 + 5.5)
    with pytest.raises(PrepareError, match="--capture-fps"):
        read_livelink_csv(path, RIG)
    assert read_livelink_csv(path, RIG, capture_fps=60).capture_fps == 60


def _swap_rows(path, a, b):
    lines = path.read_text().splitlines()
    lines[a + 1], lines[b + 1] = lines[b + 1], lines[a + 1]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_projects_own_livelink_export_imports_back_unchanged(tmp_path):
    from lipsync.curves import Curves
    from lipsync.curves.livelink import write_livelink_csv as export_livelink

    t = np.arange(90) / 60
    values = np.zeros((90, len(RIG)), np.float32)
    values[:, RIG.index("jawOpen")] = jaw_motion(t)
    values[:, RIG.index("jawLeft")] = 0.1
    export_livelink(Curves(values, RIG.channels, 60), tmp_path / "out.csv", RIG)
    take = read_livelink_csv(tmp_path / "out.csv", RIG)
    curves, _ = take_to_curves(take)
    assert take.capture_fps == 60 and curves.n_frames == 90
    assert np.abs(curves.values - values).max() < 1e-5
