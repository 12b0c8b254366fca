from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from lipsync.audio import load_audio, num_frames
from lipsync.data.alignment import read_alignment_tsv
from lipsync.data.validate import Clip, CorpusError, ManifestError, Problem, load_clips, validate_corpus
from lipsync.rigs import load_rig
from lipsync.rigs.coarticulation import phones_to_curves

RIG = load_rig("oculus15")


@pytest.mark.parametrize("fps", [24, 25, 30, 60])
def test_good_corpus_loads_with_frames_matching_audio(good_corpus: Path, fps):
    clips = load_clips(good_corpus, RIG, fps, progress=False)
    assert [c.id for c in clips] == ["a", "b", "c", "d"]
    for clip in clips:
        assert isinstance(clip, Clip)
        assert clip.audio.dtype == np.float32 and clip.audio.ndim == 1
        assert clip.curves.dtype == np.float32
        assert clip.curves.shape == (num_frames(len(clip.audio), fps), len(RIG))
        assert np.all(np.isfinite(clip.curves)) and clip.curves.min() >= 0 and clip.curves.max() <= 1
    by_id = {c.id: c for c in clips}
    assert len(by_id["b"].audio) == 14400  # 0.9 s FLAC at 22.05 kHz, resampled to 16 kHz
    assert (by_id["a"].speaker, by_id["a"].split, by_id["d"].speaker) == ("s1", "train", None)


def test_channels_are_put_in_rig_order(good_corpus: Path, corpus_files):
    (clip,) = [c for c in load_clips(good_corpus, RIG, 30, progress=False) if c.id == "a"]
    # a.csv was written with channels reversed (column k = channel 14 - k); at its own fps it must
    # come back exactly, in rig order.
    written = corpus_files.ramp_curves(round(1.3 * 30), 30, channels=RIG.channels[::-1])
    np.testing.assert_allclose(clip.curves, written.values[:, ::-1], atol=1e-4)
    assert not np.allclose(clip.curves, written.values, atol=1e-2)  # the order did change


def test_curves_are_resampled_to_the_training_fps(good_corpus: Path, corpus_files):
    (clip,) = [c for c in load_clips(good_corpus, RIG, 30, progress=False) if c.id == "b"]
    source = corpus_files.ramp_curves(round(0.9 * 60), 60)  # b.csv: 60 fps linear ramps
    # Frame i at 30 fps is frame 2i at 60 fps.
    np.testing.assert_allclose(clip.curves, source.values[::2][: clip.curves.shape[0]], atol=1e-4)


def test_one_frame_long_curves_are_trimmed_to_the_audio(good_corpus: Path, corpus_files):
    (clip,) = [c for c in load_clips(good_corpus, RIG, 25, progress=False) if c.id == "d"]
    written = corpus_files.ramp_curves(round(0.75 * 25) + 1, 25).values
    assert clip.curves.shape[0] == round(0.75 * 25) == written.shape[0] - 1
    np.testing.assert_allclose(clip.curves, written[:-1], atol=1e-4)


def test_alignment_clips_get_coarticulated_curves(good_corpus: Path):
    (clip,) = load_clips(good_corpus, RIG, 30, splits=["val"], progress=False)
    phones = read_alignment_tsv(good_corpus / "align/c.tsv")
    np.testing.assert_array_equal(clip.curves, phones_to_curves(phones, RIG, 30, n_frames=30))
    assert clip.curves[round(0.22 * 30), RIG.channels.index("PP")] == pytest.approx(1.0)
    np.testing.assert_array_equal(clip.audio, load_audio(good_corpus / "audio/c.wav"))


def test_splits_select_clips(good_corpus: Path):
    assert [c.id for c in load_clips(good_corpus, RIG, 30, splits=["train"], progress=False)] == ["a", "b"]
    assert [c.id for c in load_clips(good_corpus, RIG, 30, splits=("val", "test"), progress=False)] == ["c", "d"]
    with pytest.raises(ValueError, match=r"unknown split\(s\) \['dev'\]"):
        load_clips(good_corpus, RIG, 30, splits=["dev"], progress=False)


def test_arkit_rig_drives_alignment_clips(good_corpus: Path):
    clips = load_clips(good_corpus, "arkit52", 30, splits=["val"], progress=False)
    assert clips[0].curves.shape == (30, 52)


def test_broken_corpus_refuses_with_one_line_per_problem(broken_corpus):
    root, expected = broken_corpus
    with pytest.raises(CorpusError) as info:
        load_clips(root, RIG, 30, progress=False)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{root}: {len(expected)} problem(s) in the corpus:"
    assert lines[-1] == "fix them, or set data.skip_bad_clips=true to train without the bad clips"
    problem_lines = lines[1:-1]
    assert len(problem_lines) == len(expected)
    for file, text in expected.items():
        matching = [line for line in problem_lines if line.startswith(f"{file}: ")]
        assert len(matching) == 1, f"no single problem line for {file}"
        assert text in matching[0], matching[0]
        assert "; fix: " in matching[0]
    # Clip problems say which manifest line to remove.
    assert any("clip 'nan' (manifest line 13)" in line and "remove manifest line 13" in line for line in problem_lines)


def test_validate_corpus_reports_the_same_problems(broken_corpus, good_corpus):
    root, expected = broken_corpus
    problems = validate_corpus(root, RIG, 30)
    assert all(isinstance(p, Problem) for p in problems)
    assert sorted(p.file for p in problems) == sorted(expected)
    assert all("\n" not in str(p) for p in problems)
    assert validate_corpus(good_corpus, RIG, 30) == []


def test_skip_bad_drops_bad_clips_and_warns(broken_corpus, caplog):
    root, expected = broken_corpus
    with caplog.at_level(logging.WARNING, logger="lipsync.data.validate"):
        clips = load_clips(root, RIG, 30, skip_bad=True, progress=False)
    assert [c.id for c in clips] == ["good1", "good2"]
    (record,) = caplog.records
    assert f"skipping {len(expected)} bad clip(s)/line(s)" in record.getMessage()
    for file in expected:
        assert f"{file}: " in record.getMessage()


def test_nothing_left_is_an_error(tmp_path: Path, corpus_files):
    root = tmp_path / "allbad"
    corpus_files.write_wave(root / "x.wav", 0.5)
    corpus_files.write_ramp_csv(root / "x.csv", 40, 30)  # 1.33 s of curves for 0.5 s of audio
    corpus_files.write_manifest(root, [{"id": "x", "audio": "x.wav", "curves": "x.csv", "split": "train"}])
    with pytest.raises(CorpusError, match="no usable clips"):
        load_clips(root, RIG, 30, skip_bad=True, progress=False)
    with pytest.raises(CorpusError, match=r"no usable clips in split\(s\) val"):
        load_clips(root, RIG, 30, splits=["val"], progress=False)


def test_missing_manifest(tmp_path: Path):
    with pytest.raises(ManifestError, match="no manifest"):
        load_clips(tmp_path, RIG, 30, progress=False)
    (problem,) = validate_corpus(tmp_path, RIG, 30)
    assert problem.file.endswith("manifest.jsonl") and "no manifest" in problem.problem


def test_rig_without_viseme_table_refuses_alignment_only_clips(good_corpus: Path, tmp_path: Path):
    rig_file = tmp_path / "jaw.yaml"
    rig_file.write_text("name: jaw\nchannels: [jawOpen, mouthClose]\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="rig 'jaw' cannot be driven from phone alignments"):
        load_clips(good_corpus, load_rig(rig_file), 30, progress=False)


def test_other_alignment_formats_point_to_prepare(tmp_path: Path, corpus_files):
    root = tmp_path / "tg"
    corpus_files.write_wave(root / "x.wav", 0.5)
    (root / "x.TextGrid").write_text("File type = \"ooTextFile\"\n", encoding="utf-8")
    corpus_files.write_manifest(root, [{"id": "x", "audio": "x.wav", "alignment": "x.TextGrid"}])
    (problem,) = validate_corpus(root, RIG, 30)
    assert "'.TextGrid' is not read at training time" in problem.problem and "prepare_data" in problem.fix


def test_progress_bar_is_shown(good_corpus: Path, capsys):
    load_clips(good_corpus, RIG, 30, splits=["val"], progress=True)
    assert "checking corpus" in capsys.readouterr().err
    load_clips(good_corpus, RIG, 30, splits=["val"], progress=False)
    assert "checking corpus" not in capsys.readouterr().err


def test_half_frame_ties_round_up_like_the_model(good_corpus: Path):
    # d.wav is 0.75 s: 22.5 frames at 30 fps. Python's round() would give 22; the project's rule gives 23.
    (clip,) = load_clips(good_corpus, RIG, 30, splits=["test"], progress=False)
    assert len(clip.audio) == 12000 and clip.curves.shape[0] == num_frames(12000, 30) == 23


def test_several_corpora_load_in_order_with_unique_ids(good_corpus: Path, tmp_path: Path):
    from lipsync.data.manifest import manifest_field

    # A second corpus: clip "a" under a new id and speaker, its files referenced from the first corpus.
    takes = tmp_path / "takes"
    takes.mkdir()
    line = {"id": "take1", "audio": str(good_corpus / "audio/a.wav"), "curves": str(good_corpus / "curves/a.csv"),
            "speaker": "studio", "split": "train"}
    (takes / "manifest.jsonl").write_text(json.dumps(line) + "\n")
    clips = load_clips([good_corpus, takes], RIG, 30, splits=("train",), progress=False)
    assert [c.id for c in clips] == ["a", "b", "take1"]
    np.testing.assert_array_equal(clips[2].curves, clips[0].curves)
    assert manifest_field([good_corpus, takes], "speaker") == {"a": "s1", "b": "s2", "c": "s3", "d": "?",
                                                               "take1": "studio"}
    # The same id in two corpora is refused, naming both manifests.
    (takes / "manifest.jsonl").write_text(json.dumps({**line, "id": "b"}) + "\n")
    with pytest.raises(CorpusError, match="clip id 'b' is in both .*good.manifest.jsonl and .*takes.manifest.jsonl"):
        load_clips([good_corpus, takes], RIG, 30, progress=False)
    with pytest.raises(ValueError, match="empty list"):
        load_clips([], RIG, 30, progress=False)
