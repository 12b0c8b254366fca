from __future__ import annotations

from pathlib import Path

import pytest

from lipsync.data.manifest import ClipEntry, CorpusError, ManifestError, Problem, read_manifest, scan_manifest


def test_reads_entries_with_paths_relative_to_the_corpus(good_corpus: Path):
    entries = read_manifest(good_corpus)
    assert [e.id for e in entries] == ["a", "b", "c", "d"]
    a, b, c, d = entries
    assert a == ClipEntry("a", good_corpus / "audio/a.wav", good_corpus / "curves/a.csv", None, "s1", "train", 1)
    assert c.curves is None and c.alignment == good_corpus / "align/c.tsv" and c.split == "val"
    # The blank line 3 is skipped but still counted, so line numbers match an editor's.
    assert (b.line, c.line, d.line) == (2, 4, 5)
    assert d.speaker is None and d.split == "test"  # unknown key "notes" tolerated


def test_manifest_file_path_works_as_root(good_corpus: Path):
    assert read_manifest(good_corpus / "manifest.jsonl") == read_manifest(good_corpus)


def test_curves_and_alignment_together_and_no_split(tmp_path: Path, corpus_files):
    corpus_files.write_manifest(tmp_path, [{"id": "x", "audio": "x.wav", "curves": "x.csv", "alignment": "x.tsv", "extra": [1]}])
    (entry,) = read_manifest(tmp_path)
    assert entry.curves == tmp_path / "x.csv" and entry.alignment == tmp_path / "x.tsv"
    assert entry.split is None and entry.speaker is None


def test_missing_manifest_names_the_path(tmp_path: Path):
    with pytest.raises(ManifestError, match=r"manifest\.jsonl: no manifest"):
        read_manifest(tmp_path)


def test_empty_and_undecodable_manifests(tmp_path: Path):
    (tmp_path / "manifest.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="lists no clips"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_bytes(b'{"id": "\xff\xfe"}\n')
    with pytest.raises(ManifestError, match="cannot read manifest.*UTF-8"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "a", "audio": ', "not valid JSON"),
        ('"just a string"', "expected a JSON object, got str"),
        ({"audio": "a.wav", "curves": "a.csv"}, "missing 'id'"),
        ({"id": "a", "curves": "a.csv"}, "missing 'audio'"),
        ({"id": "", "audio": "a.wav", "curves": "a.csv"}, "'id' must be a non-empty string"),
        ({"id": "a", "audio": ["a.wav"], "curves": "a.csv"}, "'audio' must be a non-empty string"),
        ({"id": "a", "audio": "a.wav"}, "clip 'a' has neither 'curves' nor 'alignment'"),
        ({"id": "a", "audio": "a.wav", "curves": "a.csv", "split": "dev"}, "unknown split 'dev'"),
        ({"id": "a", "audio": "a.wav", "curves": "a.csv", "speaker": 3}, "'speaker' must be a non-empty string"),
        ({"id": "a", "audio": "a.wav", "curves": "a.csv", "reserved": True}, "clip 'a' is 'reserved' (a voice kept for "
         "the blind test) but its split is None"),
    ],
)
def test_each_bad_line_names_file_and_line(tmp_path: Path, corpus_files, line, message):
    good = {"id": "ok", "audio": "ok.wav", "curves": "ok.csv"}
    corpus_files.write_manifest(tmp_path, [good, line])
    with pytest.raises(ManifestError) as info:
        read_manifest(tmp_path)
    text = str(info.value)
    assert f"manifest.jsonl:2: {message}" in text
    assert "; fix: " in text  # every problem says how to fix it
    assert isinstance(info.value, CorpusError)  # callers catch one type for every data problem


def test_all_bad_lines_are_listed_at_once_and_good_ones_kept(tmp_path: Path, corpus_files):
    corpus_files.write_manifest(
        tmp_path,
        [
            {"id": "a", "audio": "a.wav", "curves": "a.csv"},
            {"id": "a", "audio": "b.wav", "curves": "b.csv"},
            {"id": "c", "audio": "c.wav", "curves": "c.csv", "split": "Train"},
            {"id": "d", "audio": "d.wav", "alignment": "d.tsv", "split": "val"},
        ],
    )
    with pytest.raises(ManifestError) as info:
        read_manifest(tmp_path)
    lines = str(info.value).splitlines()
    assert lines[0].endswith("manifest.jsonl: 2 bad line(s):")
    assert "manifest.jsonl:2: duplicate id 'a' (first on line 1)" in lines[1]
    assert "manifest.jsonl:3: unknown split 'Train'" in lines[2]
    entries, problems = scan_manifest(tmp_path)
    assert [e.id for e in entries] == ["a", "d"]
    assert [p.file.rsplit(":", 1)[1] for p in problems] == ["2", "3"]


def test_problem_prints_as_one_line():
    problem = Problem("x.wav", "something\nspanning lines", "do\tthis")
    assert str(problem) == "x.wav: something spanning lines; fix: do this"
