"""Block-wise reading: same samples as resampling the whole file, bounded memory, clear errors."""
import math
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from lipsync.audio import AudioError, load_audio
from lipsync.convert.chunking import predict_chunked
from lipsync.convert.stream import AudioStream


@pytest.mark.parametrize("rate,channels", [(48000, 2), (44100, 1), (22050, 1), (8000, 1), (16000, 2)])
def test_blocks_equal_whole_file_resampling(tmp_path, make_speech, rate, channels):
    wave = make_speech(7.3, rate, seed=rate)
    data = np.stack([wave, 0.5 * wave], axis=1)[:, :channels]
    path = tmp_path / "a.flac"
    sf.write(path, data, rate, subtype="PCM_24")
    stream = AudioStream(path, block_seconds=1.3)
    got = np.concatenate(list(stream))
    source = sf.read(path, dtype="float32")[0]
    mono = source.mean(axis=1) if source.ndim == 2 else source
    g = math.gcd(rate, 16000)
    expected = resample_poly(mono, 16000 // g, rate // g) if rate != 16000 else mono
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert stream.source_rate == rate and stream.source_channels == channels
    # Same length as the training loader's, so frame counts agree with training targets.
    assert stream.n_samples == load_audio(path).size


def _peak_bytes_converting(path) -> tuple[int, np.ndarray]:
    tracemalloc.start()
    try:
        stream = AudioStream(path)
        frames = predict_chunked(stream, lambda w: np.full((round(w.size * 30 / 16000), 2), w.std(), np.float32),
                                 30.0, 2)
        return tracemalloc.get_traced_memory()[1], frames
    finally:
        tracemalloc.stop()


def test_memory_is_flat_in_file_length(tmp_path):
    """Reading + chunked prediction of 5 and 20 minutes (8 kHz) peak at the same few MB."""
    rate = 8000
    peaks = {}
    for minutes in (5, 20):
        path = tmp_path / f"{minutes}.wav"
        rng = np.random.default_rng(minutes)
        with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
            for _ in range(minutes):
                f.write((0.1 * rng.standard_normal(rate * 60)).astype(np.float32))
        peaks[minutes], frames = _peak_bytes_converting(path)
        assert frames.shape == (minutes * 60 * 30, 2)
    whole_20_min = 20 * 60 * 16000 * 4  # 77 MB if the file were loaded at once
    assert peaks[20] < 1.2 * peaks[5] + 1e6, peaks
    assert peaks[20] < whole_20_min / 4, peaks


def test_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        AudioStream(empty)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match="notes.wav: not readable audio"):
        AudioStream(text)
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no samples"):
        list(AudioStream(zero))
    with pytest.raises(AudioError, match="no such file"):
        AudioStream(tmp_path / "missing.wav")


def test_silence_is_flagged(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    stream = AudioStream(path)
    list(stream)
    assert stream.silent and stream.duration == 1.0
