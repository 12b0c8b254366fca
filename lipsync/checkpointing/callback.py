"""Lightning glue: a CheckpointIO that writes through the durable store, and the callback that decides when.

``DurableCheckpointIO`` is passed to ``Trainer(plugins=[...])``: every
``trainer.save_checkpoint`` goes through ``CheckpointStore.save`` (temp file,
fsync, rename, manifest, ``last.ckpt``), and loading uses
``weights_only=True`` (or hands back the checkpoint that resume already
verified, so it is read once).

``DurableCheckpoint`` saves every ``every_steps`` steps and every
``every_minutes`` minutes at a step boundary (never waiting for validation),
when a stop signal arrived, on a health stop that asks for it, when the
monitored metric improves (kept as ``best.ckpt``), and at the end. It adds what
Lightning does not store: the position inside the epoch and the RNG states.
Put it first in the callback list, so its step-end hook runs before anything
that may stop the run at that step.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.io import CheckpointIO

from lipsync.checkpointing import keys, testhooks
from lipsync.checkpointing.rng import capture_rng, restore_rng
from lipsync.checkpointing.signals import StopRequested, StopSignals
from lipsync.checkpointing.store import CheckpointStore

log = logging.getLogger("lipsync.checkpointing")


class DurableCheckpointIO(CheckpointIO):
    def __init__(self, store: CheckpointStore, manifest_fields: dict[str, Any]):
        self.store = store
        self.manifest_fields = manifest_fields  # config hash, watched config, package versions
        self.preloaded: tuple[Path, dict] | None = None
        self.last_saved: Path | None = None

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        step = int(checkpoint[keys.GLOBAL_STEP])
        if Path(path).resolve() != self.store.path_for(step).resolve():
            raise ValueError(f"{path}: checkpoints of this run are saved as {self.store.path_for(step)}")
        resume = checkpoint.get(keys.RESUME, {})
        position = resume.get(keys.DATA_POSITION, {})
        fields = {
            "epoch": int(checkpoint.get(keys.EPOCH, 0)),
            "data_epoch": position.get("epoch"),
            "batches_in_epoch": resume.get(keys.BATCHES_IN_EPOCH),
            "samples_in_epoch": position.get("start"),
            "reason": resume.get(keys.REASON),
            "best": resume.get(keys.BEST),
            **self.manifest_fields,
        }
        self.last_saved = self.store.save(checkpoint, step, fields)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        if self.preloaded is not None and Path(path).resolve() == self.preloaded[0].resolve():
            checkpoint, self.preloaded = self.preloaded[1], None
            return checkpoint
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)


class DurableCheckpoint(pl.Callback):
    def __init__(self, store: CheckpointStore, *, sampler: Any, samples_per_batch: int, batches_per_epoch: int,
                 every_steps: int | None = None, every_minutes: float | None = None,
                 monitor: str | None = None, mode: str = "min", stop: StopSignals | None = None,
                 is_stop_to_save: Callable[[BaseException], bool] = lambda exc: False):
        if mode not in ("min", "max"):
            raise ValueError(f"checkpoint.mode={mode!r}: use min or max")
        self.store = store
        self.sampler = sampler              # has state_dict(samples_done) / load_state_dict(state)
        self.samples_per_batch = int(samples_per_batch)
        self.batches_per_epoch = int(batches_per_epoch)
        self.every_steps = int(every_steps) if every_steps else None
        self.every_minutes = float(every_minutes) if every_minutes else None
        self.monitor, self.mode = monitor, mode
        self.stop = stop or StopSignals()
        self.is_stop_to_save = is_stop_to_save
        self.best: dict | None = None
        self.saved_step: int | None = None
        self._batches_done = 0              # batches finished in the current epoch
        self._reason: str | None = None
        self._pending_rng: dict | None = None
        self._last_save_time = time.monotonic()
        self.run_dir = store.folder.parent

    # -- what goes into a checkpoint -------------------------------------------------
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        epoch, done = trainer.current_epoch, self._batches_done
        if done >= self.batches_per_epoch:  # the epoch is over: the next one starts at its beginning
            epoch, done = epoch + 1, 0
        position = self.sampler.state_dict(samples_done=done * self.samples_per_batch)
        position["epoch"] = epoch
        checkpoint[keys.RESUME] = {
            keys.DATA_POSITION: position,
            keys.BATCHES_IN_EPOCH: done,
            keys.RNG: capture_rng(),
            keys.REASON: self._reason,
            keys.BEST: self.best,
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        resume = checkpoint.get(keys.RESUME)
        if resume is None:
            raise ValueError("checkpoint has no lipsync_resume section: it was not written by this trainer; "
                             "load it with lipsync.model.checkpoint.load_model instead")
        self.sampler.load_state_dict(resume[keys.DATA_POSITION])
        self._batches_done = int(resume[keys.BATCHES_IN_EPOCH])
        self._pending_rng = resume[keys.RNG]
        self.best = resume.get(keys.BEST)
        self.saved_step = int(checkpoint[keys.GLOBAL_STEP])

    # -- when to save -------------------------------------------------------------
    def on_sanity_check_start(self, trainer, pl_module) -> None:
        self.stop.install()  # as on_train_start: the sanity check's validation also looks at Lightning's flag

    def on_train_start(self, trainer, pl_module) -> None:
        # The caller installed ours (``with stop:`` around fit); Lightning has since wrapped it in its own SIGTERM
        # handler, whose flag it checks after ours at every step end: a signal between the two checks ended the
        # run with exit 0 and nothing saved. So ours alone, again; the caller restores the originals after fit.
        self.stop.install()
        if self._pending_rng is not None:
            # Restored last, right before the first step: nothing Lightning does at start-up shifts the streams.
            restore_rng(self._pending_rng)
            self._pending_rng = None
        self._last_save_time = time.monotonic()
        if self.stop.requested:
            raise StopRequested(self.stop.requested, trainer.global_step, self.store.path_for(trainer.global_step))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._batches_done = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        testhooks.at_step_start(self.run_dir, trainer.global_step + 1)
        testhooks.log_sample(trainer.global_step + 1, trainer.current_epoch, batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._batches_done = batch_idx + 1
        step = trainer.global_step
        if self.stop.requested:
            path = self.save(trainer, "signal")
            raise StopRequested(self.stop.requested, step, path)
        if self.every_steps and step % self.every_steps == 0:
            self.save(trainer, "steps")
        elif self.every_minutes and time.monotonic() - self._last_save_time >= 60 * self.every_minutes:
            self.save(trainer, "minutes")
        testhooks.at_step_end(self.run_dir, step)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            testhooks.in_validation(self.run_dir, trainer.global_step)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not self.monitor or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if not math.isfinite(value):
            return
        if self.best is not None and (value >= self.best["value"] if self.mode == "min" else value <= self.best["value"]):
            return
        self.best = {"monitor": self.monitor, "mode": self.mode, "value": value, "step": trainer.global_step}
        if self.saved_step != trainer.global_step:
            self.save(trainer, "best")
        self.store.mark_best(trainer.global_step)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.saved_step != trainer.global_step:
            self.save(trainer, "final")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.is_stop_to_save(exception) and self.saved_step != trainer.global_step:
            self.save(trainer, "health")

    def save(self, trainer, reason: str) -> Path:
        step = trainer.global_step
        self._reason = reason
        path = self.store.path_for(step)
        started = time.perf_counter()
        try:
            trainer.save_checkpoint(path, weights_only=False)
        except OSError as e:
            if reason in ("signal", "health", "final"):
                raise
            # A full disk must not end a run that can still save later; the previous checkpoint is intact.
            log.error("checkpoint at step %d failed (%s); keeping %s and training on", step, e,
                      self.store.folder / "last.ckpt")
            return path
        finally:
            self._reason = None
        self.saved_step = step
        self._last_save_time = time.monotonic()
        log.info("saved %s (%s) in %.2f s", path.name, reason, time.perf_counter() - started)
        return path
