"""python scripts/evaluate.py --checkpoint <ckpt | run dir> --data <corpus> --split test [--out DIR]

Runs the model on every clip of a split (one clip at a time, so no padding),
prints the metrics table and per-channel MAE, and writes metrics.json and plots.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lipsync.atomic import atomic_write
from lipsync.data.manifest import manifest_field
from lipsync.data.validate import load_clips
from lipsync.model.checkpoint import CheckpointError, load_model
from lipsync.training.metrics import CurveMetrics
from lipsync.training.plots import curves_figure, save_figure


def evaluate(model, clips, plot_count: int = 4, groups: dict[str, str] | None = None):
    """Metrics over all clips, and per group (clip id -> group name) when ``groups`` is given."""
    overall = CurveMetrics(model.channels, model.fps, model.rig.name)
    per_group: dict[str, CurveMetrics] = {}
    samples = []
    with torch.inference_mode():
        for clip in tqdm(clips, desc="evaluating", unit="clip", file=sys.stderr):
            wave = torch.from_numpy(clip.audio)[None]
            pred = model(wave, torch.tensor([wave.shape[1]]))[0].numpy()
            overall.update(pred, clip.curves)
            if groups is not None:
                name = groups.get(clip.id, "?")
                if name not in per_group:
                    per_group[name] = CurveMetrics(model.channels, model.fps, model.rig.name)
                per_group[name].update(pred, clip.curves)
            if len(samples) < plot_count:
                samples.append((clip.id, pred, clip.curves))
    return overall, per_group, samples


def format_groups(per_group: dict[str, CurveMetrics], field: str) -> str:
    rows = {name: m.compute() for name, m in sorted(per_group.items())}
    keys = list(next(iter(rows.values())))
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
    parser.add_argument("--checkpoint", required=True, help="a .ckpt file or a run dir")
    parser.add_argument("--data", required=True, help="corpus folder with manifest.jsonl")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--out", help="folder for metrics.json and plots (default: print only)")
    parser.add_argument("--plots", type=int, default=4, help="clips drawn in the plot")
    parser.add_argument("--group-by", help="also a table per value of this manifest field (e.g. engine, speaker)")
    args = parser.parse_args(argv)
    try:
        model, info = load_model(args.checkpoint)
        clips = load_clips(args.data, model.rig, model.fps, splits=(args.split,))
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    groups = manifest_field(args.data, args.group_by) if args.group_by else None
    metrics, per_group, samples = evaluate(model, clips, args.plots, groups)
    scores, per_channel = metrics.compute(), metrics.per_channel_mae()
    title = f"{info['checkpoint']} on {args.data} [{args.split}: {len(clips)} clips]"
    print(format_table(scores, per_channel, title))
    if per_group:
        print()
        print(format_groups(per_group, args.group_by))
    if args.out:
        out = Path(args.out)
        with atomic_write(out / "metrics.json") as f:
            json.dump({"checkpoint": info["checkpoint"], "data": str(args.data), "split": args.split,
                       "clips": len(clips), "metrics": scores, "per_channel_mae": per_channel,
                       "groups": {k: m.compute() for k, m in per_group.items()}}, f, indent=2)
        save_figure(curves_figure(samples, model.channels, model.fps), out / f"curves_{args.split}.png")
        print(f"wrote {out / 'metrics.json'} and {out / f'curves_{args.split}.png'}")
    return 0
