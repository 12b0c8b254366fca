"""``python scripts/benchmark.py checkpoint``: checkpoint save time and size, and what the cadence costs.

For the scratch model (experiment=scratch: log-mel + TCN) and a wav2vec2-base
sized model (hidden 768, 12 layers; random init from a config, no download):
one training step to give AdamW its state, then durable saves of the full
checkpoint (weights, optimizer, RNG) through CheckpointStore, a verify (sha256
+ weights_only load), and the step time on this machine. The cadence overhead
is save time / time between saves: for ``every_minutes`` that is
save_s / (60 x minutes) whatever the step time.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lipsync.checkpointing.resume import verify
from lipsync.checkpointing.rng import capture_rng
from lipsync.checkpointing.store import CheckpointStore
from lipsync.model import build_model

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "model"
WAV2VEC2_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                 "conv_dim": [512] * 7, "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16}


def model_config(name: str) -> dict:
    head = OmegaConf.to_container(OmegaConf.load(CONFIGS / "head" / "tcn.yaml"))
    if name == "scratch":
        encoder = OmegaConf.to_container(OmegaConf.load(CONFIGS / "encoder" / "logmel.yaml"))
    else:
        encoder = OmegaConf.to_container(OmegaConf.load(CONFIGS / "encoder" / "wav2vec2_scratch.yaml"))
        encoder["config"].update(WAV2VEC2_BASE)
    return {"encoder": encoder, "head": head, "rig": "oculus15", "fps": 30, "sample_rate": 16000}


def measure(name: str, batch: int, seconds: float, repeats: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_model(model_config(name)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    audio = torch.randn(batch, int(seconds * 16000)) * 0.1
    lengths = torch.full((batch,), audio.shape[1])
    step_times = []
    for _ in range(steps):
        started = time.perf_counter()
        optimizer.zero_grad()
        model(audio, lengths).mean().backward()
        optimizer.step()
        step_times.append(time.perf_counter() - started)
    checkpoint = {"global_step": 1, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                  "optimizer_states": [optimizer.state_dict()], "lipsync_resume": {"rng": capture_rng()}}
    saves, verifies = [], []
    with tempfile.TemporaryDirectory() as folder:
        store = CheckpointStore(folder, keep_last=1)
        for step in range(1, repeats + 1):
            started = time.perf_counter()
            path = store.save(checkpoint, step, {})
            saves.append(time.perf_counter() - started)
        size = path.stat().st_size
        candidate = store.candidates()[0]
        for _ in range(repeats):
            started = time.perf_counter()
            verify(candidate)
            verifies.append(time.perf_counter() - started)
    return {"model": name, "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "size_mb": size / 2**20,
            "save_s": statistics.median(saves), "verify_s": statistics.median(verifies),
            "step_s": statistics.median(step_times[1:] or step_times)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmark.py checkpoint", description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["scratch", "base"], choices=["scratch", "base"])
    p.add_argument("--batch", type=int, default=4, help="training batch for the step time (2 s windows)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--every-minutes", type=float, default=10.0, help="the cadence to price (configs/checkpoint)")
    args = p.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU step times; "
          f"cadence every {args.every_minutes:g} min")
    header = (f"{'model':8} {'params':>8} {'size':>9} {'save':>8} {'verify':>8} {'step':>8} "
              f"{'overhead':>9} {'per-save step':>14}")
    print(header)
    print("-" * len(header))
    for name in args.models:
        r = measure(name, args.batch, 2.0, args.repeats, args.steps)
        overhead = r["save_s"] / (60 * args.every_minutes)
        print(f"{r['model']:8} {r['params_m']:7.2f}M {r['size_mb']:7.1f}MB {r['save_s']:7.3f}s {r['verify_s']:7.3f}s "
              f"{r['step_s']:7.3f}s {100 * overhead:8.3f}% {1 + r['save_s'] / r['step_s']:13.2f}x")
    print("overhead: save time / time between saves; per-save step: how much longer the step that saves takes")
    return 0
