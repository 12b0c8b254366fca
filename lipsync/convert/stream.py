"""Read any audio file as 16 kHz mono blocks in bounded memory.

``lipsync.audio.load_audio`` reads a whole file at once (fine for training
clips); conversion must handle hours-long files, so this reads the source in
blocks of ~10 s, mixes to mono and resamples each block with a polyphase
filter (scipy's ``resample_poly``). Blocks start on multiples of the
resampling ratio's denominator and carry enough neighbouring samples to cover
the filter, so the blocks joined equal resampling the whole file at once (to
float rounding). Memory is one block plus filter context, whatever the length.

torch is not imported here: an ONNX conversion starts in well under a second.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from lipsync.audio import SAMPLE_RATE, SILENCE_PEAK, AudioError

BLOCK_SECONDS = 10.0
# resample_poly's default filter reaches 10 * max(up, down) samples at the upsampled rate either side.
_FILTER_HALF_WIDTH = 10


class AudioStream:
    """``for block in AudioStream(path): ...`` yields float32 mono blocks at ``sample_rate``.

    After iterating: ``n_samples`` (output samples), ``peak`` (largest |sample|),
    ``source_rate`` and ``source_channels``. Problems raise ``AudioError`` naming the file.
    """

    def __init__(self, path: str | Path, sample_rate: int = SAMPLE_RATE, block_seconds: float = BLOCK_SECONDS):
        self.path = Path(path)
        if not self.path.is_file():
            raise AudioError(f"{self.path}: no such file")
        if self.path.stat().st_size == 0:
            raise AudioError(f"{self.path}: empty file (0 bytes)")
        try:
            # Opened once here and read from by the first iteration (opening costs ~0.5 ms a file, a
            # tenth of converting a short clip); closed when that iteration ends or the stream is dropped.
            self._file: sf.SoundFile | None = sf.SoundFile(str(self.path))
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            raise AudioError(f"{self.path}: not readable audio ({e}); use wav, flac, ogg or mp3") from e
        self.source_rate = int(self._file.samplerate)
        self.source_channels = int(self._file.channels)
        self.sample_rate = int(sample_rate)
        g = math.gcd(self.source_rate, self.sample_rate)
        self.up, self.down = self.sample_rate // g, self.source_rate // g
        # Filter context in source samples, rounded up to whole resampling periods.
        context = math.ceil(_FILTER_HALF_WIDTH * max(self.up, self.down) / self.up) + 2
        self.context = self.down * math.ceil(context / self.down)
        self.block = self.down * max(1, round(block_seconds * self.source_rate / self.down))
        self.n_samples = 0
        self.peak = 0.0
        self._ahead: list[np.ndarray] | None = None  # blocks decoded by prefetch(), not yet yielded
        self._ahead_error: BaseException | None = None
        self._rest: Iterator[np.ndarray] | None = None

    @property
    def duration(self) -> float:
        """Seconds read so far (the whole file once iteration has finished)."""
        return self.n_samples / self.sample_rate

    @property
    def silent(self) -> bool:
        return self.peak < SILENCE_PEAK

    def prefetch(self, blocks: int = 1) -> None:
        """Decode the first ``blocks`` blocks now (a short file: all of it), e.g. on a reader thread.

        Iterating later yields exactly what it would have without this (an
        error met while prefetching is raised after the blocks before it),
        then goes on reading; memory stays at most ``blocks`` blocks more.
        """
        self._rest, self._ahead = self._iter_blocks(), []
        try:
            for _ in range(blocks):
                block = next(self._rest, None)
                if block is None:
                    break
                self._ahead.append(block)
        except Exception as e:  # kept for the consumer, who reports it for this file
            self._ahead_error, self._rest = e, iter(())

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._rest is None:
            return self._iter_blocks()
        return self._iter_prefetched()

    def _iter_prefetched(self) -> Iterator[np.ndarray]:
        ahead, error, rest = self._ahead or [], self._ahead_error, self._rest
        self._ahead, self._ahead_error, self._rest = None, None, None
        yield from ahead
        if error is not None:
            raise error
        yield from rest

    def _iter_blocks(self) -> Iterator[np.ndarray]:
        opened, self._file = self._file, None
        try:
            with opened if opened is not None and not opened.closed else sf.SoundFile(str(self.path)) as f:
                yield from self._blocks(f)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{self.path}: decoding failed after {self.duration:.1f} s ({e})") from e
        if self.n_samples == 0:
            raise AudioError(f"{self.path}: contains no samples")

    def _read(self, f: sf.SoundFile, n: int) -> np.ndarray:
        data = f.read(n, dtype="float32", always_2d=True)
        mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
        if not np.all(np.isfinite(mono)):
            raise AudioError(f"{self.path}: contains NaN or infinite samples")
        if mono.size:
            self.peak = max(self.peak, float(np.max(np.abs(mono))))
        return mono

    def _blocks(self, f: sf.SoundFile) -> Iterator[np.ndarray]:
        if self.up == self.down:  # already at the target rate
            while True:
                block = self._read(f, self.block)
                if block.size == 0:
                    return
                self.n_samples += block.size
                yield np.ascontiguousarray(block)
        from scipy.signal import resample_poly  # ~1 s import, only for files that need it

        buf = np.zeros(0, dtype=np.float32)
        buf_start = 0  # source index of buf[0]
        total = None  # source length, known at end of file
        b0 = 0
        while total is None or b0 < total:
            want = b0 + self.block + self.context
            while total is None and buf_start + buf.size < want:
                got = self._read(f, want - buf_start - buf.size)
                buf = np.concatenate([buf, got])
                if got.size == 0:
                    total = buf_start + buf.size
            end = buf_start + buf.size
            b1 = b0 + self.block
            last = total is not None and b1 >= total
            if last:
                b1 = total
            if b1 <= b0:
                return
            lo, hi = max(0, b0 - self.context), min(end, b1 + self.context)
            out = resample_poly(buf[lo - buf_start : hi - buf_start], self.up, self.down)
            first = b0 * self.up // self.down  # exact: b0 is a multiple of down
            stop = -(-b1 * self.up // self.down) if last else b1 * self.up // self.down
            skip = first - lo * self.up // self.down
            block = out[skip : skip + stop - first].astype(np.float32)
            self.n_samples += block.size
            yield block
            keep_from = max(0, b1 - self.context)
            buf, buf_start = buf[keep_from - buf_start :], keep_from
            b0 = b1
