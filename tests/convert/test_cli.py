"""End to end: scripts/convert.py's main() over a realistic, messy folder."""
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from lipsync.audio import num_frames
from lipsync.convert.cli import EXIT_INPUT, EXIT_OK, EXIT_SOME_FAILED, main
from lipsync.curves.csv import read_curves_csv
from lipsync.rigs import VISEMES
from support import vrma_tracks

REPO = Path(__file__).resolve().parents[2]
GOOD = {  # relative path -> (sample rate, channels)
    "speech_48k_stereo.wav": (48000, 2),
    "nested/deeper/speech_8k.wav": (8000, 1),
    "nested/speech.flac": (16000, 1),
    "nested/speech_mp3.mp3": (44100, 1),
    "other/speech.ogg": (22050, 1),
}
BAD = {  # relative path -> expected reason
    "bad/corrupt.wav": "not readable audio",
    "bad/truncated.flac": "decoding failed",
    "bad/empty.wav": "empty file",
    "bad/zero_length.wav": "no samples",
    "bad/text.wav": "not readable audio",
    "bad/silence.wav": "silent",
}


@pytest.fixture
def library(tmp_path, speech) -> Path:
    wave, rate = speech
    root = tmp_path / "lib"
    for rel, (sr, channels) in GOOD.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        from scipy.signal import resample_poly

        resampled = resample_poly(wave, sr, rate).astype(np.float32)
        data = np.stack([resampled, 0.8 * resampled], axis=1) if channels == 2 else resampled
        sf.write(path, data, sr)
    sf.write(root / "existing.wav", wave, rate)
    (root / "bad").mkdir()
    ok = root / "bad" / "tmp.flac"
    sf.write(ok, wave, rate)
    (root / "bad/truncated.flac").write_bytes(ok.read_bytes()[:300])
    ok.unlink()
    (root / "bad/corrupt.wav").write_bytes(b"RIFF\x24\x08\x00\x00WAVE" + bytes(range(256)) * 20)
    (root / "bad/empty.wav").write_bytes(b"")
    sf.write(root / "bad/zero_length.wav", np.zeros(0, np.float32), 16000)
    (root / "bad/text.wav").write_text("this is a transcript, not audio\n")
    sf.write(root / "bad/silence.wav", np.zeros(48000, np.float32), 48000)
    return root


def test_messy_folder_converts_every_good_file_and_lists_every_bad_one(tmp_path, library, tiny_onnx, capsys):
    out = tmp_path / "out"
    (out).mkdir()
    sentinel = out / "existing.csv"
    sentinel.write_text("time,sil\n0,0.5\n0.033333,0.5\n")
    before = sentinel.stat().st_mtime_ns

    rc = main([str(library), "--model", str(tiny_onnx), "--out", str(out), "--format", "csv,json", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == EXIT_SOME_FAILED

    for rel, (sr, channels) in GOOD.items():
        base = out / rel[: rel.rindex(".")]
        curves = read_curves_csv(base.with_name(base.name + ".csv"))
        duration = sf.info(str(library / rel)).frames / sr
        assert curves.channels == VISEMES and curves.fps == 30.0
        assert abs(curves.n_frames - num_frames(round(duration * 16000), 30.0)) <= 1, rel
        doc = json.loads(base.with_name(base.name + ".json").read_text())
        assert doc["source"]["sample_rate"] == sr and doc["source"]["channels"] == channels
    assert sentinel.stat().st_mtime_ns == before and sentinel.read_text().startswith("time,sil\n0,0.5")
    assert (out / "existing.json").exists()  # only the missing format of a half-done file is written

    for rel, reason in BAD.items():
        failure_lines = [line for line in captured.err.splitlines() if line.startswith(f"FAILED {rel}:")]
        assert len(failure_lines) == 1 and reason in failure_lines[0], (rel, captured.err)
        summary_line = [line for line in captured.out.splitlines() if line.strip().startswith(rel)]
        assert len(summary_line) == 1 and reason in summary_line[0], (rel, captured.out)
        assert not list(out.glob(rel[: rel.rindex(".")] + ".*")), rel  # nothing written for a bad file
    assert "converted        6" in captured.out and "failed           6" in captured.out  # 5 + existing.json
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temp files left

    # A second run has nothing left to do but the failures; --overwrite redoes everything.
    assert main([str(library), "--model", str(tiny_onnx), "--out", str(out), "--format", "csv,json",
                 "--no-progress"]) == EXIT_SOME_FAILED
    assert "skipped          6" in capsys.readouterr().out
    main([str(library), "--model", str(tiny_onnx), "--out", str(out), "--overwrite", "--no-progress"])
    assert read_curves_csv(sentinel).n_frames > 2


def test_shards_split_the_work_without_overlap(tmp_path, library, tiny_onnx, capsys):
    converted = []
    for i in range(3):
        out = tmp_path / f"out{i}"
        main([str(library), "--model", str(tiny_onnx), "--out", str(out), "--shard", f"{i}/3", "--no-progress"])
        capsys.readouterr()
        converted.append({p.relative_to(out).as_posix() for p in out.rglob("*.csv")})
    all_good = {rel[: rel.rindex(".")] + ".csv" for rel in [*GOOD, "existing.wav"]}
    assert set().union(*converted) == all_good
    assert sum(len(c) for c in converted) == len(all_good)


def test_parallel_jobs_give_the_same_curves(tmp_path, library, tiny_onnx, capsys):
    for jobs in (1, 2):
        rc = main([str(library / "nested"), "--model", str(tiny_onnx), "--out", str(tmp_path / f"j{jobs}"),
                   "--jobs", str(jobs), "--format", "npz", "--no-progress"])
        assert rc == EXIT_OK
    capsys.readouterr()
    for path in (tmp_path / "j1").rglob("*.npz"):
        with np.load(path) as a, np.load(tmp_path / "j2" / path.relative_to(tmp_path / "j1")) as b:
            np.testing.assert_allclose(a["values"], b["values"], atol=1e-6)  # thread counts differ: float order


def test_real_speech_all_formats_with_postprocessing(tmp_path, tiny_onnx, tiny_onnx_arkit, capsys):
    alsa = sorted(Path("/usr/share/sounds/alsa").glob("*.wav"))
    if not alsa:
        pytest.skip("/usr/share/sounds/alsa missing: install Debian alsa-utils for real speech samples")
    out = tmp_path / "out"
    rc = main([*map(str, alsa), "--model", str(tiny_onnx), "--out", str(out), "--fps", "24", "--smooth", "savgol",
               "--format", "csv,json,rhubarb-tsv,rhubarb-json,moho,live2d,vrma,npz", "--no-progress"])
    assert rc == EXIT_OK, capsys.readouterr()
    for wav in alsa:
        curves = read_curves_csv(out / f"{wav.stem}.csv")
        assert curves.fps == 24.0 and curves.n_frames == num_frames(round(sf.info(str(wav)).duration * 16000), 24.0)
        tsv = (out / f"{wav.stem}.rhubarb.tsv").read_text()
        assert tsv.endswith("\tX\n")
        dat = (out / f"{wav.stem}.moho.dat").read_text().splitlines()
        assert dat[0] == "MohoSwitch1" and dat[-1].endswith(" X")  # Moho keys at --fps, from frame 1
        cues = [line.split("\t") for line in tsv.splitlines()[:-1]]
        assert dat[1:len(cues) + 1] == [f"{round(float(t) * 24) + 1} {shape}" for t, shape in cues]
        motion = json.loads((out / f"{wav.stem}.motion3.json").read_text())  # a point per frame, per parameter
        assert [c["Id"] for c in motion["Curves"]] == ["ParamMouthOpenY", "ParamMouthForm"]
        assert motion["Meta"]["TotalPointCount"] == 2 * curves.n_frames and motion["Meta"]["Fps"] == 24.0
        assert all(len(c["Segments"]) == 3 * curves.n_frames - 1 for c in motion["Curves"])
        times, tracks = vrma_tracks(out / f"{wav.stem}.vrma")  # the open-mouth preset keys the CSV's aa
        np.testing.assert_allclose(times, curves.times, atol=1e-6)
        np.testing.assert_allclose(tracks["preset:aa"][:, 0], curves.values[:, VISEMES.index("aa")], atol=5e-5)
    rc = main([str(alsa[0]), "--model", str(tiny_onnx), "--out", str(out / "preview"), "--format", "preview",
               "--no-progress"])  # the video is slow to encode: one file
    assert rc == EXIT_OK
    with av.open(str(out / "preview" / f"{alsa[0].stem}.preview.mp4")) as container:
        assert container.streams.video[0].frames == num_frames(round(sf.info(str(alsa[0])).duration * 16000), 30.0)
        assert container.streams.audio[0].codec_context.name == "aac"
    rc = main([*map(str, alsa[:2]), "--model", str(tiny_onnx_arkit), "--out", str(out / "arkit"),
               "--format", "livelink,a2f", "--smooth", "one-euro", "--no-progress"])
    assert rc == EXIT_OK
    header = (out / "arkit" / f"{alsa[0].stem}.livelink.csv").read_text().splitlines()[0]
    assert header.startswith("Timecode,BlendshapeCount,EyeBlinkLeft,")
    a2f = json.loads((out / "arkit" / f"{alsa[0].stem}.a2f.json").read_text())
    assert a2f["trackPath"] == str(alsa[0]) and a2f["numPoses"] == 52 and a2f["exportFps"] == 60  # the model's rate
    assert a2f["numFrames"] == len(a2f["weightMat"]) == num_frames(round(sf.info(str(alsa[0])).duration * 16000), 60.0)


def test_bad_options_exit_1_before_any_work(tmp_path, library, tiny_onnx, tiny_onnx_arkit, capsys):
    out = tmp_path / "out"
    cases = [
        (["--model", str(tiny_onnx_arkit), "--format", "rhubarb-json"], "oculus15"),
        (["--model", str(tiny_onnx), "--format", "livelink"], "arkit52"),
        (["--model", str(tmp_path / "missing.onnx")], "no such model"),
        (["--model", str(tiny_onnx), "--format", "fbx"], "unknown output format"),
        (["--model", str(tiny_onnx), "--shard", "3/3"], "shard"),
    ]
    for extra, message in cases:
        assert main([str(library), "--out", str(out), "--no-progress", *extra]) == EXIT_INPUT
        assert message in capsys.readouterr().err
    assert main([str(tmp_path / "nothing_here"), "--model", str(tiny_onnx), "--out", str(out)]) == EXIT_INPUT
    assert not out.exists()


def test_onnx_path_starts_fast_without_torch(tmp_path, tiny_onnx, speech):
    """The ONNX path imports neither torch nor Lightning (torch alone costs ~2.5 s here)."""
    wave, rate = speech
    sf.write(tmp_path / "a.wav", wave, 16000)  # 16 kHz input: no resampler import either
    code = (
        "import sys, time; t = time.perf_counter(); from lipsync.convert.cli import main; "
        f"rc = main([{str(tmp_path / 'a.wav')!r}, '--model', {str(tiny_onnx)!r}, '--out', {str(tmp_path / 'o')!r}, "
        "'--no-progress']); "
        "print(rc, 'torch' in sys.modules, 'lightning' in sys.modules, round(time.perf_counter() - t, 2))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=60)
    rc, torch_loaded, lightning_loaded, seconds = result.stdout.split()[-4:]
    assert (rc, torch_loaded, lightning_loaded) == ("0", "False", "False"), result.stdout + result.stderr
    assert float(seconds) < 3.0
