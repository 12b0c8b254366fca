"""Audio in and out: any wav/flac/ogg/mp3 -> mono float32 at 16 kHz.

soundfile (libsndfile) reads every format we accept with no system package;
torchaudio resamples. Every failure names the file and says what is wrong.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
# A file whose loudest sample is below this (-60 dBFS) has no speech to animate.
SILENCE_PEAK = 10 ** (-60 / 20)


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the problem."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, allow_silent: bool = False) -> np.ndarray:
    """Mono float32 samples at ``sample_rate`` (channels averaged)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not readable audio ({e}); use wav, flac, ogg or mp3") from e
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no samples")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    peak = float(np.max(np.abs(wave)))
    if peak < SILENCE_PEAK and not allow_silent:
        level = "digital silence" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        raise AudioError(f"{path}: silent ({level}); there is no speech to animate")
    return resample(np.ascontiguousarray(wave, dtype=np.float32), rate, sample_rate)


def resample(wave: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return wave
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(wave), int(from_rate), int(to_rate))
    return out.numpy().astype(np.float32, copy=False)


def audio_duration(path: str | Path) -> float:
    """Seconds of audio, read from the header only."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: not readable audio ({e})") from e
    return info.frames / info.samplerate


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono audio; the format follows the extension (.wav, .flac, .ogg)."""
    from lipsync.atomic import atomic_write

    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path}: cannot write {path.suffix!r} audio; use .wav, .flac or .ogg")
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    with atomic_write(path, "wb") as f:
        sf.write(f, np.clip(wave, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype)


def num_frames(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Animation frames for a clip: round(duration * fps), halves rounded up.

    The one definition used everywhere (targets, model output, conversion), so
    frame counts never disagree by one on a tie.
    """
    return int(np.floor(num_samples * float(fps) / sample_rate + 0.5))
