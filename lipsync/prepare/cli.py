"""``scripts/prepare_data.py``: one subcommand per source, plus ``report`` for any corpus.

Exit codes: 0 done; 1 a problem with the inputs (each printed as one line:
file, problem, fix) and nothing written; ``report`` also exits 1 when the
corpus has problems that training would refuse.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lipsync.atomic import OutputExistsError
from lipsync.data.manifest import CorpusError
from lipsync.prepare.alignments import PHONESET_CHOICES
from lipsync.prepare.problems import CorpusRejected, PrepareError
from lipsync.rigs import RigError


def _common(p: argparse.ArgumentParser, rig: str, fps: float | None) -> None:
    p.add_argument("input", type=Path, help="folder with the inputs; each beside its audio file of the same name")
    p.add_argument("--out", type=Path, required=True, help="corpus folder to write")
    p.add_argument("--rig", default=rig, help=f"rig name or YAML file (default {rig})")
    p.add_argument("--fps", type=float, default=fps, help="frame rate of the curves written" + (f" (default {fps:g})" if fps else " (default: the capture rate)"))
    p.add_argument("--speaker", help="speaker name for every clip, or 'folder' to use each clip's first sub-folder")
    p.add_argument("--val-fraction", type=float, default=0.0, help="share of clips put in the val split (stable by id)")
    p.add_argument("--reference-audio", action="store_true", help="point the manifest at the audio instead of copying it")
    p.add_argument("--skip-bad", action="store_true", help="build the corpus without bad clips instead of refusing")
    p.add_argument("--overwrite", action="store_true", help="replace an existing corpus folder")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="prepare_data.py", description="Turn your recordings into a lipsync training corpus.")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("livelink", help="Live Link Face CSV + audio -> arkit52 curves")
    _common(p, "arkit52", None)
    p.add_argument("--capture-fps", type=float, help="capture rate, when the take is too short to read it")
    p.add_argument("--offset", type=float, default=0.0, help="audio time (s) of the take's first row (default 0)")
    p.add_argument("--audio-start-timecode", help="timecode (HH:MM:SS:FF) at which the audio starts; sets the offset")
    p.add_argument("--drop-extras", action="store_true", help="drop head/eye angle columns instead of writing extras/*.csv")
    p.add_argument("--fit-to-audio", action="store_true", help="cut or hold curves to the audio's length instead of refusing a mismatch")

    p = sub.add_parser("alignments", help="TextGrid / HTS .lab / TSV phone alignment + audio -> curves")
    _common(p, "oculus15", 30.0)
    p.add_argument("--phoneset", default="auto", choices=PHONESET_CHOICES,
                   help="label set (default: detected); festival:<name> reads a festvox voice database's labels")
    p.add_argument("--tier", help="TextGrid tier with the phones (default: 'phones' or the only interval tier)")
    p.add_argument("--fit-to-audio", action="store_true", help="accept phones that run past the audio's end")

    p = sub.add_parser("transcripts", help="audio + .txt transcript -> forced alignment (PocketSphinx) -> curves")
    _common(p, "oculus15", 30.0)
    p.add_argument("--oov", default="skip", choices=("skip", "espeak"),
                   help="words not in the dictionary: skip the clip, or guess with espeak-ng")

    p = sub.add_parser("report", help="validation report of any corpus folder")
    p.add_argument("corpus", type=Path)
    p.add_argument("--rig", help="rig (default: from the curves' channels, else oculus15)")
    p.add_argument("--fps", type=float, help="frame rate for alignment-only clips (default: the curves', else 30)")
    p.add_argument("--out", type=Path, help="folder for report.json and report.png (default: the corpus folder)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _run(args)
    except (PrepareError, CorpusRejected, OutputExistsError, RigError, CorpusError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "report":
        from lipsync.prepare.report import corpus_report, format_report, write_report

        report = corpus_report(args.corpus, args.rig, args.fps)
        out = args.out or args.corpus
        write_report(report, out / "report.json", out / "report.png")
        print(format_report(report))
        print(f"wrote {out / 'report.json'} and {out / 'report.png'}")
        return 1 if report["problems"] else 0

    common = dict(rig=args.rig, speaker=args.speaker, overwrite=args.overwrite, skip_bad=args.skip_bad,
                  copy_audio=not args.reference_audio, val_fraction=args.val_fraction)
    if args.command == "livelink":
        from lipsync.prepare.livelink import prepare_livelink

        result = prepare_livelink(args.input, args.out, fps=args.fps, capture_fps=args.capture_fps, offset=args.offset,
                                  audio_start_timecode=args.audio_start_timecode,
                                  extras="drop" if args.drop_extras else "keep", fit_to_audio=args.fit_to_audio, **common)
    elif args.command == "alignments":
        from lipsync.prepare.alignments import prepare_alignments

        result = prepare_alignments(args.input, args.out, fps=args.fps, phoneset=args.phoneset, tier=args.tier,
                                    fit_to_audio=args.fit_to_audio, **common)
    else:
        from lipsync.prepare.transcripts import prepare_transcripts

        result = prepare_transcripts(args.input, args.out, fps=args.fps, oov=args.oov, **common)
    print(f"wrote {result['clips']} clip(s) to {result['out']} (report.json, report.png, prepare_log.json inside)")
    return 0
