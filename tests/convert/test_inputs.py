from pathlib import Path, PurePosixPath

import pytest

from lipsync.convert.inputs import (ConvertInputError, InputFile, find_audio_files, output_collisions, parse_shard,
                                    select_shard, shard_of)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folders_are_walked_recursively_and_files_taken_as_given(tmp_path):
    root = tmp_path / "lib"
    for rel in ["a.wav", "b/c.FLAC", "b/d/e.mp3", "b/d/f.ogg", "b/notes.txt", ".hidden/g.wav", "b/.h.wav"]:
        _touch(root / rel)
    extra = _touch(tmp_path / "single" / "take.txt")
    files = find_audio_files([root, extra])
    assert [f.rel.as_posix() for f in files] == ["a.wav", "b/c.FLAC", "b/d/e.mp3", "b/d/f.ogg", "take.txt"]
    assert files[-1].path == extra
    assert files[1].stem_rel == PurePosixPath("b/c")
    with pytest.raises(ConvertInputError, match="no such file"):
        find_audio_files([tmp_path / "nope"])


def test_shards_cover_every_file_exactly_once():
    files = [InputFile(PurePosixPath(f"spk{i % 7}/line_{i:04d}.wav"), Path(f"/x/{i}.wav")) for i in range(500)]
    for count in (1, 2, 3, 8):
        shards = [select_shard(files, i, count) for i in range(count)]
        seen = [f for shard in shards for f in shard]
        assert sorted(seen) == sorted(files) and len(seen) == len(set(seen))
        if count > 1:
            assert min(len(s) for s in shards) > 0.6 * len(files) / count  # roughly balanced


def test_a_files_shard_depends_only_on_its_path():
    rel = PurePosixPath("spk1/line_0001.wav")
    assert shard_of(rel, 4) == shard_of(PurePosixPath("spk1/line_0001.wav"), 4)
    few = [InputFile(PurePosixPath(f"{i}.wav"), Path(f"{i}.wav")) for i in range(20)]
    more = few + [InputFile(PurePosixPath(f"new{i}.wav"), Path(f"new{i}.wav")) for i in range(20)]
    for i in range(3):
        assert set(select_shard(few, i, 3)) <= set(select_shard(more, i, 3))


def test_parse_shard():
    assert parse_shard("0/1") == (0, 1) and parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "-1/3", "1", "a/b", "1/0"):
        with pytest.raises(ConvertInputError, match="shard"):
            parse_shard(bad)


def test_outputs_that_would_collide_are_found():
    a_wav = InputFile(PurePosixPath("d/a.wav"), Path("d/a.wav"))
    a_mp3 = InputFile(PurePosixPath("d/a.mp3"), Path("d/a.mp3"))
    b = InputFile(PurePosixPath("d/b.wav"), Path("d/b.wav"))
    assert output_collisions([a_wav, b, a_mp3]) == {a_wav: a_mp3}
