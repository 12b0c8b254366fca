"""``python scripts/benchmark.py convert [--quick] [--checkpoint CKPT] [--cores 2] [--workdir DIR]``

Prints a table (this is a measurement, not a test) of conversion speed and
memory on ``--cores`` CPU cores (the process and its children are pinned to
them), with the machine it ran on:

- model real-time factor (seconds of compute per second of audio) for the
  scratch model (log-mel + TCN, from ``configs/experiment/scratch.yaml`` with
  random weights, or ``--checkpoint``) and a wav2vec2-base-size model (random
  init, hidden 768, 12 layers; nothing downloaded), eager torch vs ONNX
  Runtime, batch 1 and a batch of equal-length clips;
- end-to-end ``scripts/convert.py`` over a folder of short real-speech clips
  (RTF from the converter's own loop wall time: file I/O in, process start-up
  out), with --jobs 1 and 2;
- peak RSS converting a long file and a file a sixth as long (flat = memory
  does not grow with length), read from ``wait4`` on the converter process;
- 1,000 short files (16 kHz flac and some 48 kHz wav) end to end;
- start-up: a whole ``convert.py`` process on one short file.

Speech comes from /usr/share/sounds/alsa (a human voice, 48 kHz) and the demo
corpus (data/demo, 16 kHz flac), copied or tiled. Other work on the machine
slows every number: the load average is printed; end-to-end runs are repeated
and judged on the best run (the median is shown beside it).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
CONVERT = REPO / "scripts" / "convert.py"
DEMO_AUDIO = REPO / "data" / "demo" / "audio"
ALSA = Path("/usr/share/sounds/alsa")

TARGET_RTF = 0.003
TARGET_STARTUP_S = 3.0
TARGET_RSS_MB = 1500.0
FLAT_RSS_MB = 64.0  # "flat": the long file may take at most this much more than the one a sixth as long


@dataclass(frozen=True)
class Sizes:
    folder_clips: int
    many_files: int
    long_s: float
    model_repeats: int
    e2e_repeats: int


FULL = Sizes(folder_clips=300, many_files=1000, long_s=3600.0, model_repeats=10, e2e_repeats=3)
QUICK = Sizes(folder_clips=100, many_files=200, long_s=600.0, model_repeats=3, e2e_repeats=2)


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def section(self, title: str) -> None:
        self.rows.append((f"[{title}]", "", "", ""))

    def add(self, measure: str, value: str, target: str = "", passed: bool | None = None) -> None:
        self.rows.append((measure, value, target, "" if passed is None else ("PASS" if passed else "MISS")))
        print(f"  {measure}: {value} {target} {self.rows[-1][3]}".rstrip(), file=sys.stderr, flush=True)

    def render(self) -> str:
        widths = [max(len(r[i]) for r in self.rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in self.rows)


# --- machine -------------------------------------------------------------------------------------

def pin_cores(cores: int) -> list[int]:
    """Pin this process (and so its children) to the first ``cores`` CPUs it may use."""
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[:cores]
    os.sched_setaffinity(0, chosen)
    return chosen


def machine_lines(cpus: list[int]) -> list[str]:
    import onnxruntime
    import torch

    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {model}; {len(cpus)} of {os.cpu_count()} cores used (CPUs {cpus}); {platform.platform()}",
        f"python {platform.python_version()}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"numpy {np.__version__}; load average at start {load}",
    ]


# --- models --------------------------------------------------------------------------------------

def scratch_config() -> dict:
    """The ``model`` config of ``experiment=scratch``, composed as training composes it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base=None):
        cfg = compose("train", overrides=["experiment=scratch"])
    return OmegaConf.to_container(cfg.model, resolve=True)


def wav2vec2_base_config(scratch: dict) -> dict:
    """The scratch config with a randomly initialised wav2vec2-base-size encoder (Wav2Vec2Config defaults)."""
    encoder = {"_target_": "lipsync.model.encoders.HFEncoder", "pretrained": None, "freeze": "cnn",
               "config": {"model_type": "wav2vec2", "hidden_size": 768, "num_hidden_layers": 12,
                          "num_attention_heads": 12, "intermediate_size": 3072}}
    return {**scratch, "encoder": encoder}


def build(cfg: dict):
    import torch

    from lipsync.model import build_model

    torch.manual_seed(0)
    return build_model(cfg).eval(), {"model_config": cfg}


def export(model, info: dict, folder: Path, speech: np.ndarray) -> tuple[Path, float]:
    """model.onnx + model.json in ``folder`` through lipsync.export; returns (path, parity max diff)."""
    from lipsync.export.card import build_model_card, write_model_card
    from lipsync.export.onnx_export import OPSET, export_onnx_bytes
    from lipsync.export.parity import PARITY_TOLERANCE, check_parity, parity_waves

    folder.mkdir(parents=True, exist_ok=True)
    data = export_onnx_bytes(model, opset=OPSET)
    parity = check_parity(model, data, parity_waves([speech], (0.3, 4.7)))
    path = folder / "model.onnx"
    path.write_bytes(data)
    write_model_card(build_model_card(model, [info], path.name, OPSET, parity, PARITY_TOLERANCE), folder / "model.json")
    return path, max(r.max_abs_diff for r in parity)


def time_calls(call: Callable[[], object], repeats: int) -> list[float]:
    call()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def model_rtf_rows(table: Table, name: str, model, onnx_path: Path, speech: np.ndarray, clip_s: float,
                   batch: int, repeats: int, threads: int) -> None:
    import torch

    from lipsync.convert.predictor import INPUT_LENGTHS, INPUT_WAVEFORM, OnnxPredictor

    session = OnnxPredictor(onnx_path, threads).session  # the converter's own session options
    torch.set_num_threads(threads)
    n = int(clip_s * 16000)
    clips = np.stack([np.roll(speech, i * 7919)[:n] for i in range(batch)]).astype(np.float32)
    for size in (1, batch):
        x, lengths = clips[:size], np.full(size, n, dtype=np.int64)
        tx, tl = torch.from_numpy(x), torch.from_numpy(lengths)

        def eager() -> object:
            with torch.inference_mode():
                return model(tx, tl)

        def onnx() -> object:
            return session.run(None, {INPUT_WAVEFORM: x, INPUT_LENGTHS: lengths})

        for backend, call in (("eager torch", eager), ("onnxruntime", onnx)):
            times = time_calls(call, repeats)
            audio = size * clip_s
            table.add(f"{name}, {backend}, batch {size} x {clip_s:g} s",
                      f"RTF {min(times) / audio:.4f} best, {statistics.median(times) / audio:.4f} median")


# --- audio files ---------------------------------------------------------------------------------

def real_speech() -> tuple[list[Path], list[Path]]:
    """(16 kHz demo flacs, 48 kHz human recordings); either may be empty, not both."""
    demo = sorted(DEMO_AUDIO.glob("*.flac"))
    human = sorted(p for p in ALSA.glob("*.wav") if p.stem != "Noise")
    if not demo and not human:
        raise SystemExit(f"error: no speech in {DEMO_AUDIO} or {ALSA}; install alsa-utils or restore data/demo")
    return demo, human


def speech_16k(demo: Sequence[Path], human: Sequence[Path]) -> np.ndarray:
    from lipsync.audio import load_audio

    return np.concatenate([load_audio(p) for p in (list(demo[:20]) or list(human))])


def make_clip_folder(folder: Path, n: int, demo: Sequence[Path], human: Sequence[Path], wav48_every: int) -> None:
    """``n`` copies of real clips; every ``wav48_every``-th one a 48 kHz wav (0: none)."""
    if folder.is_dir() and sum(1 for _ in folder.iterdir()) == n:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(n):
        use_human = human and (not demo or (wav48_every and i % wav48_every == wav48_every - 1))
        source = human[i % len(human)] if use_human else demo[i % len(demo)]
        shutil.copyfile(source, folder / f"clip{i:05d}{source.suffix}")


def make_long_file(path: Path, seconds: float, sources: Sequence[Path]) -> None:
    """Real speech joined end to end to ``seconds``, written block by block (wav, the sources' rate)."""
    if path.is_file():
        return
    data = [sf.read(str(p), dtype="float32", always_2d=True) for p in sources]
    rate = data[0][1]
    joined = np.concatenate([d.mean(axis=1) for d, r in data if r == rate])
    total, written = int(seconds * rate), 0
    tmp = path.with_suffix(".tmp.wav")
    with sf.SoundFile(str(tmp), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        while written < total:
            block = joined[: total - written]
            f.write(block)
            written += block.size
    tmp.rename(path)


# --- the converter as a user runs it --------------------------------------------------------------

@dataclass
class ConvertRun:
    process_s: float  # the whole process, start-up included
    loop_s: float  # the converter's own wall time for the files (no start-up)
    startup_s: float
    audio_s: float
    converted: int
    peak_rss_mb: float


def run_convert(inputs: Sequence[Path], model: Path, out: Path, extra: Sequence[str] = ()) -> ConvertRun:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(CONVERT), *map(str, inputs), "--model", str(model), "--out", str(out),
           "--no-progress", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        log, rss_file = Path(tmp) / "log.txt", Path(tmp) / "rss_kb"
        # Through a small launcher: a child forked from this big process inherits its peak RSS (Linux
        # keeps the pre-exec high-water mark), while the launcher's children start from its few MB.
        rc = subprocess.call([sys.executable, "-c", _LAUNCHER, str(log), str(rss_file), *cmd], env=env, cwd=REPO)
        text = log.read_text(errors="replace")
        rss_kb, process_s = map(float, rss_file.read_text().split()) if rss_file.is_file() else (0.0, 0.0)
    shutil.rmtree(out, ignore_errors=True)
    converted = re.search(r"^converted\s+(\d+)\s+([\d.]+)", text, re.M)
    wall = re.search(r"^wall ([\d.]+) s.*start-up ([\d.]+) s", text, re.M)
    if rc != 0 or not converted or not wall:
        raise SystemExit(f"error: {' '.join(cmd)} exited {rc}:\n{text[-2000:]}")
    return ConvertRun(process_s, float(wall[1]), float(wall[2]), float(converted[2]), int(converted[1]), rss_kb / 1024)


_LAUNCHER = """
import resource, subprocess, sys, time
log, rss_file, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
started = time.perf_counter()
with open(log, "w") as out:
    rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
elapsed = time.perf_counter() - started
open(rss_file, "w").write(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {elapsed}")
sys.exit(rc)
"""


def best_and_median(runs: Sequence[ConvertRun], key: Callable[[ConvertRun], float]) -> tuple[float, float]:
    values = [key(r) for r in runs]
    return min(values), statistics.median(values)


# --- main ----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmark.py convert", description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true", help="smaller sizes (10-min long file, 100/200 clips), two runs of each end-to-end case")
    p.add_argument("--checkpoint", type=Path, default=None, help="a trained scratch checkpoint instead of random init")
    p.add_argument("--cores", type=int, default=2, help="CPU cores to pin to (default %(default)s)")
    p.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) models and audio here")
    p.add_argument("--skip-wav2vec2", action="store_true", help="leave out the wav2vec2-base-size model (~20 s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    cpus = pin_cores(args.cores)
    threads = len(cpus)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lipsync-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the converter runs torch (see predictor.py)
    header = machine_lines(cpus)
    print("\n".join(header), file=sys.stderr)
    table = Table()
    try:
        demo, human = real_speech()
        speech = speech_16k(demo, human)

        table.section("model RTF (compute s per audio s; lower is faster)")
        if args.checkpoint:
            from lipsync.model.checkpoint import load_model

            scratch, info = load_model(args.checkpoint)
            scratch_name = f"scratch ({args.checkpoint.name})"
        else:
            scratch, info = build(scratch_config())
            scratch_name = "scratch (random init)"
        scratch_onnx, diff = export(scratch, info, work / "scratch", speech)
        table.add(f"{scratch_name}: parameters, export parity",
                  f"{sum(p.numel() for p in scratch.parameters()) / 1e6:.1f} M, max |diff| {diff:.1e}")
        model_rtf_rows(table, "scratch", scratch, scratch_onnx, speech, 4.0, 8, sizes.model_repeats * 3, threads)
        if not args.skip_wav2vec2:
            w2v, w2v_info = build(wav2vec2_base_config(scratch_config()))
            w2v_onnx, w2v_diff = export(w2v, w2v_info, work / "wav2vec2_base", speech)
            table.add("wav2vec2-base size (random init): parameters, export parity",
                      f"{sum(p.numel() for p in w2v.parameters()) / 1e6:.1f} M, max |diff| {w2v_diff:.1e}")
            model_rtf_rows(table, "wav2vec2-base", w2v, w2v_onnx, speech, 4.0, 4, max(1, sizes.model_repeats // 3), threads)
            del w2v

        table.section(f"scripts/convert.py, scratch ONNX model, {threads} cores (judged on the best run)")
        folder = work / f"clips_{sizes.folder_clips}"
        make_clip_folder(folder, sizes.folder_clips, demo, human, wav48_every=0)
        for jobs in (1, 2):
            runs = [run_convert([folder], scratch_onnx, work / "out", ["--jobs", str(jobs)])
                    for _ in range(sizes.e2e_repeats)]
            best, median = best_and_median(runs, lambda r: r.loop_s / r.audio_s)
            table.add(f"folder of {runs[0].converted} clips ({runs[0].audio_s:.0f} s audio), --jobs {jobs}: RTF incl. file I/O",
                      f"{best:.4f} best, {median:.4f} median ({1 / best:.0f}x real time)",
                      f"<= {TARGET_RTF}", best <= TARGET_RTF if jobs == 1 else None)

        first = folder / next(iter(sorted(os.listdir(folder))))
        for label, file in (("16 kHz flac", first), ("48 kHz wav", human[0] if human else None)):
            if file is None:
                continue
            runs = [run_convert([file], scratch_onnx, work / "out") for _ in range(max(3, sizes.e2e_repeats))]
            best, median = best_and_median(runs, lambda r: r.process_s)
            table.add(f"start-up: whole process, one {label} file (converter's own start-up {runs[0].startup_s:.2f} s)",
                      f"{best:.2f} s best, {median:.2f} s median", f"< {TARGET_STARTUP_S:g} s", best < TARGET_STARTUP_S)
        short_rss = runs[0].peak_rss_mb

        many = work / f"many_{sizes.many_files}"
        make_clip_folder(many, sizes.many_files, demo, human, wav48_every=10)
        run = run_convert([many], scratch_onnx, work / "out")
        table.add(f"{run.converted} short files (9 in 10 flac 16 kHz, 1 in 10 wav 48 kHz; {run.audio_s:.0f} s audio)",
                  f"{run.process_s:.1f} s whole process, {run.loop_s:.1f} s converting "
                  f"({run.converted / run.loop_s:.0f} files/s, RTF {run.loop_s / run.audio_s:.4f})")

        long_sources = human or demo
        rss = {}
        for seconds in (sizes.long_s / 6, sizes.long_s):
            path = work / f"long_{seconds:.0f}s.wav"
            make_long_file(path, seconds, long_sources)
            run = run_convert([path], scratch_onnx, work / "out")
            rss[seconds] = run.peak_rss_mb
            rate = sf.info(str(path)).samplerate
            target = f"< {TARGET_RSS_MB:g} MB" if seconds == sizes.long_s else ""
            table.add(f"peak RSS, one {seconds / 60:.0f}-min file ({rate / 1000:g} kHz wav)",
                      f"{run.peak_rss_mb:.0f} MB (RTF {run.loop_s / run.audio_s:.4f})",
                      target, run.peak_rss_mb < TARGET_RSS_MB if target else None)
        growth = rss[sizes.long_s] - rss[sizes.long_s / 6]
        table.add(f"peak RSS growth {sizes.long_s / 360:.0f} -> {sizes.long_s / 60:.0f} min (short file: {short_rss:.0f} MB)",
                  f"{growth:+.0f} MB", f"flat (< {FLAT_RSS_MB:g} MB)", growth < FLAT_RSS_MB)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print("\n".join([*header, f"load average at end {load}", "", table.render()]))
    return 0
