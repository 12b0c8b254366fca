"""``python scripts/convert.py INPUT... [--model M [--model M2 ...]] --out DIR [--format csv,json,...]``

Exit codes: 0 every file converted or already done; 1 bad inputs or options
(nothing converted; the message says what to fix); 2 command-line usage
(argparse); 3 the batch finished but at least one file failed (each listed
in the summary).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from lipsync.convert.chunking import OVERLAP_S, WINDOW_S
from lipsync.convert.inputs import (ConvertInputError, find_audio_files, output_collisions, parse_shard,
                                    select_shard)
from lipsync.convert.predictor import ModelLoadError, is_onnx_model, load_predictors, resolve_model, shipped_models
from lipsync.convert.runner import (FAILED, ConvertOptions, FileResult, Progress, run_conversion, summary_table,
                                    threads_per_job)
from lipsync.convert.transcript import TranscriptError, check_text_voice
from lipsync.curves import CurvesError
from lipsync.curves.postprocess import ONE_EURO_BETA, ONE_EURO_MIN_CUTOFF, SAVGOL_WINDOW_S, SMOOTHERS
from lipsync.curves.writers import FORMATS, check_formats_fit_rig, parse_formats

EXIT_OK, EXIT_INPUT, EXIT_SOME_FAILED = 0, 1, 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convert.py",
        description="Convert speech audio (files and folders, wav/flac/ogg/mp3) to mouth animation curves.",
        epilog="Exit codes: 0 all done, 1 bad inputs/options, 2 usage, 3 some files failed (listed at the end).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders (searched recursively)")
    p.add_argument("--model", action="append", default=None,
                   help="exported model.onnx (fast start), a checkpoint, a run dir, or a shipped model's name: "
                        f"{', '.join(shipped_models())} (default: default); given more than once, the models' "
                        "mean curves (an ensemble of one rig and frame rate)")
    p.add_argument("--out", required=True, type=Path, help="output folder; mirrors the input tree")
    p.add_argument("--text", metavar="VOICE", default=None,
                   help="time the dialogue text in NAME.txt beside each audio file onto its audio (what is said "
                        "comes from the text, when from the model); VOICE is the espeak-ng voice of its language: "
                        "en-us, en-gb, de, fr, es, ru, ... (espeak-ng --voices)")
    p.add_argument("--format", default="csv", help=f"comma list of {','.join(FORMATS)} (default csv)")
    p.add_argument("--fps", type=float, default=None, help="output frame rate (default: the model's)")
    p.add_argument("--smooth", choices=SMOOTHERS, default="none", help="smoothing before resampling (default none)")
    p.add_argument("--one-euro-min-cutoff", type=float, default=ONE_EURO_MIN_CUTOFF, help="Hz (default %(default)s)")
    p.add_argument("--one-euro-beta", type=float, default=ONE_EURO_BETA, help="speed coefficient (default %(default)s)")
    p.add_argument("--savgol-window", type=float, default=SAVGOL_WINDOW_S, help="seconds (default %(default)s)")
    p.add_argument("--no-clamp", action="store_true", help="keep values outside [0, 1] after smoothing")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--shard", default=None, help="i/n: convert only shard i of n (0-based), for many machines")
    p.add_argument("--chunk-seconds", type=float, default=WINDOW_S, help="model window for long files (default %(default)s)")
    p.add_argument("--chunk-overlap", type=float, default=OVERLAP_S, help="overlap of windows (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        formats = parse_formats(args.format)
        if args.jobs < 1:
            raise ConvertInputError(f"--jobs {args.jobs}: need at least 1")
        if not 0 <= args.chunk_overlap < args.chunk_seconds:
            raise ConvertInputError(f"--chunk-overlap {args.chunk_overlap} must be >= 0 and below --chunk-seconds {args.chunk_seconds}")
        if args.fps is not None and args.fps <= 0:
            raise ConvertInputError(f"--fps {args.fps}: need a positive frame rate")
        files = find_audio_files(args.inputs)
        if not files:
            raise ConvertInputError(f"no wav/flac/ogg/mp3 files found in {' '.join(args.inputs)}")
        clashes = output_collisions(files)
        if args.shard:
            files = select_shard(files, *parse_shard(args.shard))
        models = [resolve_model(m) for m in args.model or [None]]
        # With several jobs the workers load the models; here only check them (cheap for ONNX).
        all_onnx = all(is_onnx_model(m) for m in models)
        predictor = load_predictors(models, threads_per_job(1 if args.jobs == 1 or all_onnx else args.jobs))
        check_formats_fit_rig(formats, predictor.rig)
        if args.text:
            check_text_voice(args.text, predictor.rig)
        elif "phones" in formats:
            raise ConvertInputError("--format phones writes the dialogue text's timed phones: add --text VOICE "
                                    "(and NAME.txt beside each audio file)")
    except (ConvertInputError, ModelLoadError, CurvesError, TranscriptError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT

    opts = ConvertOptions(
        out_dir=args.out, formats=formats, overwrite=args.overwrite, fps=args.fps, smooth=args.smooth,
        clamp=not args.no_clamp, one_euro_min_cutoff=args.one_euro_min_cutoff, one_euro_beta=args.one_euro_beta,
        savgol_window_s=args.savgol_window, window_s=args.chunk_seconds, overlap_s=args.chunk_overlap,
        text_voice=args.text,
    )
    todo = [f for f in files if f not in clashes]
    clash_results = [
        FileResult(str(f.rel), FAILED, message=f"writes the same outputs as {clashes[f].rel}; rename one of them")
        for f in files if f in clashes
    ]
    progress = Progress(len(files), enabled=not args.no_progress)
    for result in clash_results:
        progress(result)
    loop_started = time.perf_counter()
    try:
        results = run_conversion(todo, models, opts, jobs=args.jobs,
                                 predictor=predictor if args.jobs == 1 else None, on_result=progress)
    finally:
        progress.close()
    wall = time.perf_counter() - loop_started
    extra = {"start-up": f"{loop_started - started:.2f} s"}
    if args.shard:
        extra["shard"] = args.shard
    print(summary_table(clash_results + results, wall, args.jobs, extra))
    return EXIT_SOME_FAILED if any(r.status == FAILED for r in clash_results + results) else EXIT_OK
