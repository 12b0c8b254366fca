"""Convert many files: one file at a time per worker, never stopping on a bad one.

Each file: skip if all requested outputs exist (unless overwriting), read it
in blocks, predict in overlapping windows, post-process, write every format
atomically. A file that fails (unreadable, empty, silent, too short, a model
error) becomes one ``FileResult`` with a one-line reason; the batch goes on.
``--jobs N`` runs N worker processes (spawned, so nothing is shared but the
file list), each with its own predictor and ``cores // N`` threads.

With one job, conversion is a pipeline: a reader thread opens and decodes
the next files, the model runs here, and writer threads format and fsync the
outputs. ONNX Runtime, libsndfile and fsync release the GIL, so the stages
overlap: on a folder of short clips (2 shared cores) the rate went from ~130
to 240-360 audio-s/s (``python scripts/benchmark.py convert``). Outputs and
results are the same as one file at a time, and come back in file order.
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

from lipsync.audio import SAMPLE_RATE, AudioError, num_frames
from lipsync.convert.chunking import OVERLAP_S, WINDOW_S, predict_chunked
from lipsync.convert.inputs import InputFile
from lipsync.convert.predictor import Predictor, load_predictors
from lipsync.convert.stream import AudioStream
from lipsync.convert.transcript import (LevelMeter, TranscriptError, read_transcript, transcript_curves,
                                       transcript_path)
from lipsync.curves import Curves
from lipsync.curves.postprocess import ONE_EURO_BETA, ONE_EURO_MIN_CUTOFF, SAVGOL_WINDOW_S, postprocess
from lipsync.curves.writers import output_path, write_outputs
from lipsync.rigs import Rig
from lipsync.rigs.coarticulation import Phone

CONVERTED, SKIPPED, FAILED = "converted", "skipped", "failed"


@dataclass(frozen=True)
class ConvertOptions:
    out_dir: Path
    formats: tuple[str, ...] = ("csv",)
    overwrite: bool = False
    fps: float | None = None  # None: the model's rate
    smooth: str = "none"
    clamp: bool = True
    one_euro_min_cutoff: float = ONE_EURO_MIN_CUTOFF
    one_euro_beta: float = ONE_EURO_BETA
    savgol_window_s: float = SAVGOL_WINDOW_S
    window_s: float = WINDOW_S
    overlap_s: float = OVERLAP_S
    text_voice: str | None = None  # time each file's dialogue text (<name>.txt beside it), spoken in this espeak-ng voice


@dataclass
class FileResult:
    rel: str
    status: str
    audio_s: float = 0.0
    seconds: float = 0.0
    message: str = ""
    outputs: list[str] = field(default_factory=list)


def convert_file(predictor: Predictor, item: InputFile, opts: ConvertOptions) -> FileResult:
    """Convert one file; every failure comes back as a result, never as an exception."""
    predicted = predict_stage(predictor, item, opts)
    return predicted if isinstance(predicted, FileResult) else predicted.write()


@dataclass
class Predicted:
    """A file's curves, ready to be written: the second half of ``convert_file``."""

    item: InputFile
    curves: Curves
    formats: list[str]
    rig: Rig
    metadata: dict[str, Any]
    duration: float
    overwrite: bool
    base: Path
    started: float
    phones: list[Phone] | None = None  # the dialogue text's, timed

    def write(self) -> FileResult:
        try:
            written = write_outputs(self.curves, self.base, self.formats, self.rig, overwrite=self.overwrite,
                                    metadata=self.metadata, phones=self.phones)
        except Exception as e:  # one bad file must not stop a batch of thousands: report it and go on
            return _failed(self.item, f"{self.item.path}: {type(e).__name__}: {e}", self.started)
        return FileResult(str(self.item.rel), CONVERTED, self.duration, time.perf_counter() - self.started,
                          outputs=[str(p) for p in written])


def formats_to_write(item: InputFile, opts: ConvertOptions) -> list[str]:
    base = opts.out_dir / item.stem_rel
    return [f for f in opts.formats if opts.overwrite or not output_path(base, f).exists()]


def predict_stage(predictor: Predictor, item: InputFile, opts: ConvertOptions,
                  opened: Callable[[], AudioStream | None] | None = None) -> Predicted | FileResult:
    """Read and predict one file: ``Predicted`` to write, or the final result (skipped or failed).

    ``opened``: gives the file's stream, already opened (and its start decoded) by a reader thread;
    it raises what opening raised.
    """
    started = time.perf_counter()
    base = opts.out_dir / item.stem_rel
    todo = formats_to_write(item, opts)
    if not todo:
        return FileResult(str(item.rel), SKIPPED, message="outputs exist (--overwrite to redo)")
    try:
        curves, stream, phones = predict_file(predictor, item.path, opts, opened() if opened else None)
        metadata = {
            "sample_rate": SAMPLE_RATE,
            "source": {
                "path": str(item.path.resolve()),
                "duration": round(stream.duration, 6),
                "sample_rate": stream.source_rate,
                "channels": stream.source_channels,
            },
            "model": predictor.describe(),
        }
        if phones is not None:
            metadata["transcript"] = {"path": str(transcript_path(item.path).resolve()), "voice": opts.text_voice,
                                      "phones": len(phones)}
    except (AudioError, TranscriptError) as e:
        return _failed(item, str(e), started)
    except Exception as e:  # one bad file must not stop a batch of thousands: report it and go on
        return _failed(item, f"{item.path}: {type(e).__name__}: {e}", started)
    return Predicted(item, curves, todo, predictor.rig, metadata, stream.duration, opts.overwrite, base, started,
                     phones)


def predict_file(predictor: Predictor, path: Path, opts: ConvertOptions,
                 stream: AudioStream | None = None) -> tuple[Curves, AudioStream, list[Phone] | None]:
    """Curves at the output rate, the stream read, and the timed phones of the dialogue text (None without)."""
    stream = stream or AudioStream(path, predictor.sample_rate)
    meter = LevelMeter(predictor.sample_rate)  # the dialogue text's aligner also reads the audio's level
    values = predict_chunked(
        map(meter.feed, stream) if opts.text_voice else stream,
        lambda wave: predictor.predict(wave).values, predictor.fps, len(predictor.rig),
        sample_rate=predictor.sample_rate, window_s=opts.window_s, overlap_s=opts.overlap_s,
    )
    if stream.silent:
        level = "digital silence" if stream.peak == 0 else "peak below -60 dBFS"
        raise AudioError(f"{path}: silent ({level}); there is no speech to animate")
    out_fps = opts.fps or predictor.fps
    n_out = num_frames(stream.n_samples, out_fps, predictor.sample_rate)
    if n_out < 2:
        raise AudioError(f"{path}: too short ({stream.duration:.3f} s) for 2 frames at {out_fps:g} fps")
    predicted, phones = Curves(values, predictor.rig.channels, predictor.fps), None
    if opts.text_voice:
        predicted, phones = transcript_curves(predicted, read_transcript(path), opts.text_voice, predictor.rig,
                                              meter.db())
    curves = postprocess(
        predicted, smooth=opts.smooth, fps=out_fps,
        clamp_values=opts.clamp, one_euro_min_cutoff=opts.one_euro_min_cutoff, one_euro_beta=opts.one_euro_beta,
        savgol_window_s=opts.savgol_window_s, n_frames=n_out,
    )
    return curves, stream, phones


def _failed(item: InputFile, message: str, started: float) -> FileResult:
    message = message.removeprefix(f"{item.path}: ")  # the table already names the file
    one_line = " ".join(message.split())[:400]
    return FileResult(str(item.rel), FAILED, seconds=time.perf_counter() - started, message=one_line)


# --- worker processes -------------------------------------------------------------------------

_worker_predictor: Predictor | None = None


def _init_worker(models: list[str], threads: int) -> None:
    global _worker_predictor
    _worker_predictor = load_predictors(models, threads)


def _worker_convert(item: InputFile, opts: ConvertOptions) -> FileResult:
    assert _worker_predictor is not None, "worker used before _init_worker"
    return convert_file(_worker_predictor, item, opts)


def threads_per_job(jobs: int) -> int:
    # The CPUs this process may run on (taskset, container limits), not all the machine's cores.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, jobs))


def run_conversion(
    files: Sequence[InputFile],
    models: Sequence[str | Path],
    opts: ConvertOptions,
    jobs: int = 1,
    predictor: Predictor | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Convert ``files`` with ``models`` (several: their mean); results in the order of ``files``.

    ``predictor`` is reused when ``jobs == 1``.
    """
    if jobs <= 1:
        return _run_pipelined(files, predictor or load_predictors(models, threads_per_job(1)), opts, on_result)
    by_rel: dict[str, FileResult] = {}
    ctx = get_context("spawn")  # no fork of a process that may hold ORT/torch threads
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=([str(m) for m in models], threads_per_job(jobs))) as pool:
        futures = [pool.submit(_worker_convert, item, opts) for item in files]
        for future in as_completed(futures):
            result = future.result()
            by_rel[result.rel] = result
            if on_result:
                on_result(result)
    return [by_rel[str(item.rel)] for item in files]


READ_AHEAD = 4  # files opened and decoded ahead of the model (one block each: bounded memory)
WRITER_THREADS = 2  # two, so one file's fsync never holds up the next file's writes
MAX_PENDING_WRITES = 8  # bounds the curves held in memory while writers catch up


def _run_pipelined(files: Sequence[InputFile], predictor: Predictor, opts: ConvertOptions,
                   on_result: Callable[[FileResult], None] | None) -> list[FileResult]:
    """Read ahead on a reader thread, predict here, write on writer threads; results in file order."""
    results: list[FileResult] = []
    pending: deque[Future | FileResult] = deque()

    def settle(keep: int) -> None:
        while len(pending) > keep or (pending and _done(pending[0])):
            head = pending.popleft()
            results.append(head.result() if isinstance(head, Future) else head)
            if on_result:
                on_result(results[-1])

    with ThreadPoolExecutor(1, thread_name_prefix="lipsync-read") as reader, \
            ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="lipsync-write") as writers:
        ahead = deque(reader.submit(_open_ahead, item, opts, predictor.sample_rate) for item in files[:READ_AHEAD])
        for i, item in enumerate(files):
            opened = ahead.popleft()
            if i + READ_AHEAD < len(files):
                ahead.append(reader.submit(_open_ahead, files[i + READ_AHEAD], opts, predictor.sample_rate))
            predicted = predict_stage(predictor, item, opts, opened.result)
            pending.append(predicted if isinstance(predicted, FileResult) else writers.submit(predicted.write))
            settle(MAX_PENDING_WRITES)
        settle(0)
    return results


def _open_ahead(item: InputFile, opts: ConvertOptions, sample_rate: int) -> AudioStream | None:
    """The file's stream with its first block decoded; None when it will be skipped (outputs exist)."""
    if not formats_to_write(item, opts):
        return None
    stream = AudioStream(item.path, sample_rate)
    stream.prefetch()
    return stream


def _done(entry: Future | FileResult) -> bool:
    return not isinstance(entry, Future) or entry.done()


class Progress:
    """tqdm bar of files with audio-seconds per wall-second; failures printed above it as they happen."""

    def __init__(self, total: int, enabled: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="file", disable=not enabled, file=sys.stderr, dynamic_ncols=True)
        self.started = time.perf_counter()
        self.audio_s = 0.0

    def __call__(self, result: FileResult) -> None:
        if result.status == FAILED:
            self.bar.write(f"FAILED {result.rel}: {result.message}", file=sys.stderr)
        self.audio_s += result.audio_s
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{self.audio_s / elapsed:.1f} audio-s/s", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def summary_table(results: Sequence[FileResult], wall_s: float, jobs: int, extra: dict[str, Any] | None = None) -> str:
    counts = {s: [r for r in results if r.status == s] for s in (CONVERTED, SKIPPED, FAILED)}
    audio = sum(r.audio_s for r in counts[CONVERTED])
    lines = [
        f"{'status':<10} {'files':>7} {'audio s':>10}",
        f"{CONVERTED:<10} {len(counts[CONVERTED]):>7} {audio:>10.1f}",
        f"{SKIPPED:<10} {len(counts[SKIPPED]):>7} {'-':>10}   outputs already there (--overwrite to redo)",
        f"{FAILED:<10} {len(counts[FAILED]):>7} {'-':>10}",
        f"{'total':<10} {len(results):>7}",
        f"wall {wall_s:.2f} s, {audio / max(wall_s, 1e-9):.1f} audio-s/s"
        + (f" (RTF {wall_s / audio:.4f})" if audio else "") + f", jobs {jobs}"
        + "".join(f", {k} {v}" for k, v in (extra or {}).items()),
    ]
    if counts[FAILED]:
        width = max(len(r.rel) for r in counts[FAILED])
        lines.append("failed files:")
        lines.extend(f"  {r.rel:<{width}}  {r.message}" for r in counts[FAILED])
    return "\n".join(lines)
