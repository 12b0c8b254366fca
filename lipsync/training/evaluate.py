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
from lipsync.data.validate import load_clips
from lipsync.model.checkpoint import CheckpointError, load_model
from lipsync.training.metrics import CurveMetrics
from lipsync.training.plots import curves_figure, save_figure


def evaluate(model, clips, plot_count: int = 4) -> tuple[CurveMetrics, list]:
    metrics = CurveMetrics(model.channels, model.fps, model.rig.name)
    samples = []
    with torch.inference_mode():
        for clip in tqdm(clips, desc="evaluating", unit="clip", file=sys.stderr):
            wave = torch.from_numpy(clip.audio)[None]
            pred = model(wave, torch.tensor([wave.shape[1]]))[0].numpy()
            metrics.update(pred, clip.curves)
            if len(samples) < plot_count:
                samples.append((clip.id, pred, clip.curves))
    return metrics, samples


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
    args = parser.parse_args(argv)
    try:
        model, info = load_model(args.checkpoint)
        clips = load_clips(args.data, model.rig, model.fps, splits=(args.split,))
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    metrics, samples = evaluate(model, clips, args.plots)
    scores, per_channel = metrics.compute(), metrics.per_channel_mae()
    title = f"{info['checkpoint']} on {args.data} [{args.split}: {len(clips)} clips]"
    print(format_table(scores, per_channel, title))
    if args.out:
        out = Path(args.out)
        with atomic_write(out / "metrics.json") as f:
            json.dump({"checkpoint": info["checkpoint"], "data": str(args.data), "split": args.split,
                       "clips": len(clips), "metrics": scores, "per_channel_mae": per_channel}, f, indent=2)
        save_figure(curves_figure(samples, model.channels, model.fps), out / f"curves_{args.split}.png")
        print(f"wrote {out / 'metrics.json'} and {out / f'curves_{args.split}.png'}")
    return 0
