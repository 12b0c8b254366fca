"""Benchmark (not a test): the health monitor's overhead on training step time.

    python -m lipsync.health.benchmark [--steps 300] [--poll-seconds 10] [--backend fake|nvml]

Three numbers:
1. hook cost: microseconds the monitor + watchdog add per step on the training
   thread between polls (what every step pays);
2. poll cost: milliseconds one poll takes (NVML queries + event wait + one
   health.jsonl line), paid on the background thread every ``poll_seconds``;
3. end to end: median step time of a small CPU model (~2.5 ms/step) trained
   with no callbacks, with two empty callbacks (Lightning's own per-callback
   dispatch cost) and with the watchdog + monitor, runs interleaved (noisy on
   a busy machine; 1 and 2 are the reliable figures).
Estimated overhead = hook / step + poll / poll_seconds.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import torch

from lipsync.health.backends import make_backend
from lipsync.health.monitor import HealthMonitor
from lipsync.health.watchdog import HangWatchdog

FAULTS = Path(__file__).resolve().parents[2] / "configs" / "health" / "faults"


class _Model(pl.LightningModule):
    """A small MLP whose step takes a few milliseconds on a CPU core."""

    def __init__(self, width: int = 512):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, width))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.net(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-4)

    def train_dataloader(self):
        x = torch.randn(64 * 64, 512)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=64)


class _StepTimer(pl.Callback):
    def __init__(self):
        self.times: list[float] = []
        self._last = None

    def on_train_batch_end(self, *args):
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def _backend(name: str):
    return make_backend(name, FAULTS / "healthy.json" if name == "fake" else None)


def _callbacks(backend_name: str, run_dir: Path, poll_seconds: float) -> list:
    watchdog = HangWatchdog(run_dir, floor_s=600)
    return [watchdog, HealthMonitor(_backend(backend_name), run_dir, poll_seconds=poll_seconds, watchdog=watchdog)]


def median_step_ms(steps: int, callbacks: list) -> float:
    timer = _StepTimer()
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", callbacks=[*callbacks, timer])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(_Model())
    return statistics.median(timer.times[10:]) * 1000


def hook_cost_us(backend_name: str, run_dir: Path, calls: int = 200_000) -> float:
    """Per-step cost of both callbacks' batch-end hooks between polls (no reading pending)."""
    watchdog, monitor = _callbacks(backend_name, run_dir, poll_seconds=1e9)
    monitor.available, monitor.device = True, 0
    trainer, module = SimpleNamespace(global_step=0), None
    start = time.perf_counter()
    for i in range(calls):
        monitor.on_train_batch_end(trainer, module, None, None, i)
        watchdog.on_train_batch_end(trainer, module, None, None, i)
    return (time.perf_counter() - start) / calls * 1e6


def poll_cost_ms(backend_name: str, run_dir: Path, polls: int = 50) -> float:
    monitor = HealthMonitor(_backend(backend_name), run_dir, poll_seconds=1e9, poll_thread=False)
    monitor.backend.open()
    monitor.device = 0
    start = time.perf_counter()
    for _ in range(polls):
        monitor._poll_once()
    return (time.perf_counter() - start) / polls * 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--poll-seconds", type=float, default=10.0, help="the default in configs/health/default.yaml")
    p.add_argument("--backend", choices=["fake", "nvml"], default="fake")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        hook_us = hook_cost_us(args.backend, run_dir)
        poll_ms = poll_cost_ms(args.backend, run_dir)
        without, empty, with_ = [], [], []
        for r in range(args.rounds):  # interleaved, so drift in machine load hits all three
            without.append(median_step_ms(args.steps, []))
            empty.append(median_step_ms(args.steps, [pl.Callback(), pl.Callback()]))
            with_.append(median_step_ms(args.steps, _callbacks(args.backend, run_dir / f"r{r}", args.poll_seconds)))
    step_ms = statistics.median(without)
    estimate = (hook_us / 1000) / step_ms + poll_ms / (args.poll_seconds * 1000)
    measured = statistics.median(with_) / step_ms - 1
    dispatch = statistics.median(empty) / step_ms - 1
    print(f"backend={args.backend} poll_seconds={args.poll_seconds:g}")
    print(f"hook cost per step (training thread): {hook_us:.2f} µs")
    print(f"poll cost (background thread):        {poll_ms:.3f} ms per poll")
    print(f"median step without / with monitor:   {step_ms:.3f} ms / {statistics.median(with_):.3f} ms "
          f"(rounds: {[round(x, 3) for x in without]} / {[round(x, 3) for x in with_]})")
    print(f"overhead estimate (hook/step + poll/interval): {estimate * 100:.3f} %")
    print(f"overhead measured end to end:                  {measured * 100:+.2f} % "
          f"(two empty callbacks: {dispatch * 100:+.2f} %, i.e. Lightning's dispatch; noise ~1 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
