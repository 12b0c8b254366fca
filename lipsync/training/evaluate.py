"""python scripts/evaluate.py --model <ckpt | run dir | model.onnx | shipped name> --data <corpus> --split test [--out DIR]

Runs the model on every clip of a split (one clip at a time, so no padding),
prints the metrics table and per-channel MAE, and writes metrics.json and plots.
The model is loaded as conversion loads it, so an exported or shipped model is
scored exactly as it will run. ``--text VOICE`` scores conversion with dialogue
text (``convert.py --text``): each clip's text from the manifest's ``text``
field, or from ``--texts FILE`` (``id<TAB>text`` lines, or festvox ``txt.done.data``).
Where the clips have phone alignments, it also names the phones under the false
and the missed closure, f/v and rounding events.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lipsync.atomic import atomic_write
from lipsync.data.manifest import clip_alignments, corpus_roots, manifest_field, reserved_ids
from lipsync.data.validate import load_clips
from lipsync.convert.predictor import ModelLoadError, Predictor, load_predictors, resolve_model
from lipsync.convert.transcript import TranscriptError, check_text_voice, level_db, transcript_curves
from lipsync.model.checkpoint import CheckpointError
from lipsync.training.metrics import CurveMetrics
from lipsync.training.plots import curves_figure, save_figure


def evaluate(model: Predictor, clips, plot_count: int = 4, groups: dict[str, str] | None = None,
             texts: dict[str, str] | None = None, voice: str = "en-us", alignments: dict | None = None):
    """Metrics over all clips, and per group (clip id -> group name) when ``groups`` is given.

    ``texts`` (clip id -> dialogue text): score the curves timed from each clip's text, as ``convert.py --text``.
    ``alignments`` (clip id -> phones): count the phones under false and missed events (``errors_by_phone``).
    """
    alignments = alignments or {}
    channels = list(model.rig.channels)
    overall = CurveMetrics(channels, model.fps, model.rig.name)
    per_group: dict[str, CurveMetrics] = {}
    samples = []
    for clip in tqdm(clips, desc="evaluating", unit="clip", file=sys.stderr):
        pred = model.predict(clip.audio)
        if texts is not None:
            try:
                level = level_db(clip.audio, model.sample_rate)
                pred = transcript_curves(pred, texts[clip.id], voice, model.rig, level)[0]
            except TranscriptError as e:
                raise TranscriptError(f"clip {clip.id}: {e}") from e
        pred = pred.values
        overall.update(pred, clip.curves, alignments.get(clip.id))
        if groups is not None:
            name = groups.get(clip.id, "?")
            if name not in per_group:
                per_group[name] = CurveMetrics(channels, model.fps, model.rig.name)
            per_group[name].update(pred, clip.curves, alignments.get(clip.id))
        if len(samples) < plot_count:
            samples.append((clip.id, pred, clip.curves))
    return overall, per_group, samples


def select_clips(clips, data, where: str):
    """The clips whose manifest field (in the corpus ``data``, or a list of them) has the value ``FIELD=VALUE``
    names; raises if none do."""
    field, sep, value = where.partition("=")
    if not sep or not field:
        raise ValueError(f"--where {where!r}: write FIELD=VALUE, e.g. engine=flite")
    values = manifest_field(data, field)
    chosen = [c for c in clips if values.get(c.id) == value]
    if not chosen:
        seen = sorted({values.get(c.id, "?") for c in clips})
        raise ValueError(f"--where {where}: no clip of this split has {field}={value}; it has {', '.join(seen[:10])}")
    return chosen


def format_errors_by_phone(errors: dict, note: str = "", top: int = 8) -> str:
    """One line per event group and kind: the phones under its false (missed) events, most frequent first."""
    lines = [f"false and missed events by the phone under them{note}:"]
    for name, kinds in errors.items():
        for kind, counts in kinds.items():
            total = sum(counts.values())
            shown = ", ".join(f"{p} {n} ({n / total:.0%})" for p, n in list(counts.items())[:top])
            lines.append(f"  {name:<12}{kind:>7} {total:>5}: {shown or '-'}")
    return "\n".join(lines)


def read_texts(path: str | Path) -> dict[str, str]:
    """Clip id -> text from ``id<TAB>text`` lines or a festvox ``txt.done.data`` (``( id "text" )`` lines)."""
    content = Path(path).read_text(encoding="utf-8")
    festvox = dict(re.findall(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$', content, flags=re.M))
    if festvox:
        return festvox
    texts = dict(line.split("\t", 1) for line in content.splitlines() if "\t" in line)
    if not texts:
        raise ValueError(f"{path}: no texts found; write one 'id<TAB>text' line per clip")
    return texts


def clip_texts(clips, data, texts_file: str | None) -> dict[str, str]:
    """Each clip's dialogue text (from the corpus ``data``, or a list of them); raises naming clips without one."""
    if texts_file:
        texts = read_texts(texts_file)
    else:
        texts = {k: v for k, v in manifest_field(data, "text", missing=None).items() if v.strip()}
    missing = [c.id for c in clips if c.id not in texts]
    if missing:
        where = texts_file or " or ".join(f"{r}/manifest.jsonl" for r in corpus_roots(data)) + " (field 'text')"
        raise ValueError(f"--text: {len(missing)} of {len(clips)} clips have no text in {where}, e.g. "
                         f"{', '.join(missing[:3])}; add them or pass --texts FILE")
    return texts


def format_groups(per_group: dict[str, CurveMetrics], field: str) -> str:
    rows = {name: m.compute() for name, m in sorted(per_group.items())}
    # one line per group stays readable: F1s, onsets and accuracy here, precision and recall in metrics.json
    keys = [k for k in next(iter(rows.values())) if not k.endswith(("_precision", "_recall"))]
    width = max(len(field), *(len(n) for n in rows)) + 2
    cols = [max(len(k), 6) + 2 for k in keys]
    lines = [f"{field:<{width}}" + "".join(f"{k:>{w}}" for k, w in zip(keys, cols))]
    lines.append("-" * len(lines[0]))
    for name, scores in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{scores[k]:>{w}.3f}" for k, w in zip(keys, cols)))
    return "\n".join(lines)


def format_table(scores: dict, per_channel: dict, title: str) -> str:
    lines = [title, f"{'metric':<24}{'value':>10}", "-" * 34]
    for key, value in scores.items():
        lines.append(f"{key:<24}{value:>10.3f}" if not np.isnan(value) else f"{key:<24}{'n/a':>10}")
    lines += ["", f"{'channel':<24}{'MAE':>10}", "-" * 34]
    lines += [f"{ch:<24}{v:>10.4f}" for ch, v in per_channel.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", "--checkpoint", dest="model", required=True, action="append",
                        help="a .ckpt file, a run dir, an exported .onnx or a shipped model's name (default, ja); "
                             "given more than once, the models' mean curves are scored (an ensemble)")
    parser.add_argument("--data", required=True, help="corpus folder with manifest.jsonl")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--out", help="folder for metrics.json and plots (default: print only)")
    parser.add_argument("--plots", type=int, default=4, help="clips drawn in the plot (0: no plot)")
    parser.add_argument("--group-by", help="also a table per value of this manifest field (e.g. engine, speaker)")
    parser.add_argument("--where", metavar="FIELD=VALUE", help="only the clips whose manifest FIELD is VALUE "
                                                                "(e.g. engine=flite: the held-out engine of a fold)")
    parser.add_argument("--text", metavar="VOICE", help="score conversion with each clip's dialogue text, spoken in "
                                                         "this espeak-ng voice (en-us, ru, ...), as convert.py --text")
    parser.add_argument("--texts", metavar="FILE", help="clip texts for --text: 'id<TAB>text' lines or festvox "
                                                         "txt.done.data (default: the manifest's 'text' field)")
    args = parser.parse_args(argv)
    try:
        model = load_predictors([resolve_model(m) for m in args.model])
        clips = load_clips(args.data, model.rig, model.fps, splits=(args.split,))
        if args.where:
            clips = select_clips(clips, args.data, args.where)
        texts = None
        if args.text:
            check_text_voice(args.text, model.rig)
            texts = clip_texts(clips, args.data, args.texts)
        alignments = clip_alignments(clips, args.data)
    except (CheckpointError, ModelLoadError, TranscriptError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    groups = manifest_field(args.data, args.group_by) if args.group_by else None
    try:
        metrics, per_group, samples = evaluate(model, clips, args.plots, groups, texts, args.text or "en-us",
                                               alignments)
    except TranscriptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    scores, per_channel = metrics.compute(), metrics.per_channel_mae()
    source = model.describe()
    source = source.get("checkpoint", source["path"])
    title = f"{source} on {args.data} [{args.split}: {len(clips)} clips]" + (f", with text ({args.text})" if texts else "")
    print(format_table(scores, per_channel, title))
    errors = metrics.errors_by_phone()
    if errors:
        print()
        some = len(alignments) < len(clips)
        print(format_errors_by_phone(errors, f" (the {len(alignments)} of {len(clips)} clips with an alignment)" * some))
    if per_group:
        print()
        print(format_groups(per_group, args.group_by))
    blind = reserved_ids(args.data)
    if any(c.id in blind for c in clips):
        print("\nblind test (reserved voices): report this score; never train, tune or choose between models on it")
    if args.out:
        out = Path(args.out)
        with atomic_write(out / "metrics.json") as f:
            json.dump({"model": source, "data": str(args.data), "split": args.split, "text": args.text,
                       "clips": len(clips), "metrics": scores, "per_channel_mae": per_channel,
                       "errors_by_phone": errors,
                       "groups": {k: m.compute() for k, m in per_group.items()}}, f, indent=2)
        written = [out / "metrics.json"]
        if samples:  # --plots 0 draws nothing
            written.append(out / f"curves_{args.split}.png")
            save_figure(curves_figure(samples, list(model.rig.channels), model.fps), written[-1])
        print("wrote " + " and ".join(map(str, written)))
    return 0
