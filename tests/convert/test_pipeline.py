"""The one-job pipeline (reader thread, model, writer threads) changes speed, never results."""
import os

import numpy as np
import pytest
import soundfile as sf

from lipsync.audio import AudioError
from lipsync.convert.inputs import find_audio_files
from lipsync.convert.predictor import load_predictor
from lipsync.convert.runner import (CONVERTED, FAILED, SKIPPED, ConvertOptions, convert_file, run_conversion,
                                    threads_per_job)
from lipsync.convert.stream import AudioStream


@pytest.mark.parametrize("rate,blocks", [(16000, 1), (48000, 1), (48000, 3), (22050, 50)])
def test_prefetch_yields_the_same_blocks(tmp_path, make_speech, rate, blocks):
    path = tmp_path / "a.flac"
    sf.write(path, make_speech(5.3, rate, seed=rate), rate)
    plain = list(AudioStream(path, block_seconds=1.1))
    stream = AudioStream(path, block_seconds=1.1)
    stream.prefetch(blocks)
    got = list(stream)
    assert len(got) == len(plain)
    for a, b in zip(got, plain):
        np.testing.assert_array_equal(a, b)
    assert stream.n_samples == sum(b.size for b in plain)


def test_prefetch_error_comes_after_the_blocks_before_it(tmp_path, make_speech):
    good = tmp_path / "good.flac"
    sf.write(good, make_speech(30.0, 16000), 16000)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    plain_blocks, plain_error = [], None
    try:
        for block in AudioStream(cut, block_seconds=2.0):
            plain_blocks.append(block)
    except AudioError as e:
        plain_error = str(e)
    stream = AudioStream(cut, block_seconds=2.0)
    stream.prefetch(100)  # reads into the damage; the error waits for the consumer
    got = []
    with pytest.raises(AudioError) as raised:
        for block in stream:
            got.append(block)
    assert plain_error is not None and str(raised.value) == plain_error
    assert len(got) == len(plain_blocks)


def test_pipelined_run_equals_one_file_at_a_time(tmp_path, tiny_onnx, make_speech):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        sf.write(src / f"c{i:02d}.wav", make_speech(0.5 + 0.4 * i, 48000 if i % 3 else 16000, seed=i),
                 48000 if i % 3 else 16000)
    (src / "c05.wav").write_text("not audio")  # a failure in the middle
    (src / "zz.wav").write_bytes(b"")
    files = find_audio_files([str(src)])
    predictor = load_predictor(tiny_onnx, 1)
    one = ConvertOptions(tmp_path / "one", formats=("csv", "npz"))
    expected = [convert_file(predictor, item, one) for item in files]
    piped = ConvertOptions(tmp_path / "piped", formats=("csv", "npz"))
    (tmp_path / "piped").mkdir()
    (tmp_path / "piped" / "c07.csv").write_text("keep me")  # csv exists: only npz is written
    seen = []
    results = run_conversion(files, [tiny_onnx], piped, predictor=predictor, on_result=lambda r: seen.append(r.rel))
    assert [r.rel for r in results] == [str(f.rel) for f in files] == seen
    assert [r.status for r in results] == [r.status for r in expected]
    assert [r.message for r in results] == [r.message for r in expected]
    assert sum(r.status == FAILED for r in results) == 2 and CONVERTED in {r.status for r in results}
    assert (tmp_path / "piped" / "c07.csv").read_text() == "keep me"
    for r in expected:
        for out in r.outputs:
            name = os.path.basename(out)
            if name == "c07.csv":
                continue
            if name.endswith(".csv"):
                assert (tmp_path / "piped" / name).read_text() == (tmp_path / "one" / name).read_text()
            else:
                a, b = np.load(tmp_path / "piped" / name), np.load(tmp_path / "one" / name)
                np.testing.assert_array_equal(a["values"], b["values"])
    again = run_conversion(files, [tiny_onnx], piped, predictor=predictor)
    assert {r.status for r in again} == {SKIPPED, FAILED}


def test_threads_follow_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert threads_per_job(1) == 4 and threads_per_job(2) == 2 and threads_per_job(8) == 1
