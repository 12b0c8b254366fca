"""The LightningModule: loss, metrics, optimiser and plots around the plain LipSyncModel."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from lipsync.model import LipSyncModel
from lipsync.training.adversary import DomainAdversary
from lipsync.training.losses import CurveLoss
from lipsync.training.metrics import CurveMetrics
from lipsync.training.plots import curves_figure, save_figure


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.05) -> float:
    """LR multiplier: linear warm-up, then cosine decay to ``floor`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class LipSyncTask(L.LightningModule):
    def __init__(
        self,
        model: LipSyncModel,
        model_config: dict,
        optimizer: Any,  # a partial: params -> torch.optim.Optimizer
        warmup_steps: int,
        total_steps: int,
        loss: dict,
        plot_dir: str | Path | None = None,
        plot_clips: int = 3,
        numerics_guard: Any = None,  # lipsync.health.NumericsGuard, or None to skip the checks
        adversary: DomainAdversary | None = None,  # training only: features that do not tell the engine
    ):
        super().__init__()
        self.model = model
        self.model_config = model_config
        self.optimizer_factory = optimizer
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.criterion = CurveLoss(model.channels, **loss)
        self.metrics = CurveMetrics(model.channels, model.fps, model.rig.name)
        self.plot_dir = Path(plot_dir) if plot_dir else None
        self.plot_clips = plot_clips
        self._plot_samples: list = []
        self.guard = numerics_guard
        self.adversary = adversary

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(waveform, lengths)

    def _step(self, batch: dict) -> tuple[dict, torch.Tensor]:
        logits, features = self.model.logits_and_features(batch["audio"], batch["audio_lengths"])
        losses = self.criterion(logits, batch["curves"], batch["scored"])
        if self.adversary is not None and self.training:
            adversarial = self.adversary(features, batch["mask"], batch["ids"], self.global_step)
            losses = {**losses, **adversarial, "loss": losses["loss"] + adversarial["adversary"]}
        return losses, torch.sigmoid(logits)

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        self.model.encoder.set_step(self.global_step)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        losses, _ = self._step(batch)
        if self.guard is not None:
            if not torch.isfinite(losses["loss"]):
                return self._nonfinite_step(batch, losses)
            self.guard.on_finite(self.global_step)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=len(batch["ids"]),
                      prog_bar=False)
        self.log("loss", losses["loss"], prog_bar=True, logger=False, batch_size=len(batch["ids"]))
        return losses["loss"]

    def _nonfinite_step(self, batch: dict, losses: dict) -> torch.Tensor | None:
        """Re-run the step from the same weights: a different answer means suspect hardware."""
        from lipsync.health import HealthStop

        with torch.no_grad():
            rerun_finite = bool(torch.isfinite(self._step(batch)[0]["loss"]))
        decision = self.guard.on_nonfinite(self.global_step, batch["ids"], rerun_finite)
        if decision.action == "use_rerun":
            return self._step(batch)[0]["loss"]
        if decision.action == "skip_batch":
            return None  # Lightning skips the optimizer step
        # rollback: stop without saving, so the next start resumes from the last good checkpoint.
        raise HealthStop(decision.exit_code or 75, decision.reason, save_checkpoint=False,
                         condition=f"numerics_{decision.action}")

    def on_before_optimizer_step(self, optimizer) -> None:
        # A finite loss can still give infinite gradients: drop them, so this step changes nothing.
        if self.guard is None:
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads and not all(torch.isfinite(g).all() for g in grads):
            self.guard.on_nonfinite(self.global_step, [], rerun_finite=False)
            optimizer.zero_grad(set_to_none=True)

    def on_validation_epoch_start(self) -> None:
        self.metrics.reset()
        self._plot_samples = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        losses, pred = self._step(batch)
        self.log("val/loss", losses["loss"], batch_size=len(batch["ids"]), sync_dist=True)
        pred_np, true_np = pred.float().cpu().numpy(), batch["curves"].float().cpu().numpy()
        for i, n in enumerate(batch["frame_lengths"].tolist()):
            self.metrics.update(pred_np[i, :n], true_np[i, :n])
            if len(self._plot_samples) < self.plot_clips:
                self._plot_samples.append((batch["ids"][i], pred_np[i, :n], true_np[i, :n]))

    def on_validation_epoch_end(self) -> None:
        scores = self.metrics.compute()
        self.log_dict({f"val/{k}": v for k, v in scores.items() if not np.isnan(v)}, sync_dist=True)
        if self.trainer.sanity_checking or not self._plot_samples or self.global_rank != 0:
            return
        fig = curves_figure(self._plot_samples, self.model.channels, self.model.fps)
        for logger in self.loggers:
            if hasattr(logger.experiment, "add_figure"):
                logger.experiment.add_figure("val/curves", fig, self.global_step, close=False)
        if self.plot_dir:
            save_figure(fig, self.plot_dir / f"val_step{self.global_step:07d}.png")

    def configure_optimizers(self):
        # total_steps comes from the config, not trainer.estimated_stepping_batches,
        # which resets the data loaders' state (Lightning #20550).
        modules = [self.model] + ([self.adversary] if self.adversary is not None else [])
        optimizer = self.optimizer_factory(params=[p for m in modules for p in m.parameters()])
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, self.warmup_steps, self.total_steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_start(self) -> None:
        # A resumed run restores the scheduler's base learning rate from the checkpoint; the config's
        # value wins, so changing optim.optimizer.lr and resuming really changes it.
        configured = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        schedulers = self.lr_schedulers()
        if configured is None or schedulers is None:
            return
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        for schedule in schedulers:
            if all(base == configured for base in schedule.base_lrs):
                continue
            print(f"Learning rate changed from {schedule.base_lrs[0]:g} (checkpoint) to {configured:g} (config): "
                  "applying the config's value")
            schedule.base_lrs = [configured] * len(schedule.base_lrs)
            for group, factor in zip(schedule.optimizer.param_groups, schedule.lr_lambdas):
                group["initial_lr"] = configured
                group["lr"] = configured * factor(schedule.last_epoch)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Everything needed to rebuild the plain model without Lightning or the hub.
        checkpoint["lipsync"] = {
            "model_config": self.model_config,
            "channels": list(self.model.channels),
            "rig": self.model.rig.name,
            "fps": self.model.fps,
            "sample_rate": self.model.sample_rate,
        }
