"""train(cfg): read top to bottom. Returns an exit code from DESIGN.md's table."""
from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lipsync.data.dataset import ClipDataset, WindowDataset, collate
from lipsync.data.sampler import EpochSampler
from lipsync.data.validate import load_clips
from lipsync.health import HealthStop, build_health, build_numerics_guard
from lipsync.model import build_model
from lipsync.model.checkpoint import portable_model_config
from lipsync.rigs import load_rig
from lipsync.training.module import LipSyncTask
from lipsync.training.rundir import mark_done, read_done, record_run

log = logging.getLogger("lipsync.train")

EXIT_OK, EXIT_USER_ERROR = 0, 1


def train(cfg: DictConfig) -> int:
    run_dir = Path(cfg.run.dir).resolve()
    done = read_done(run_dir)
    if done is not None:
        print(f"Run {run_dir} is finished (step {done.get('global_step')}); nothing to do. "
              "Use a new run.name to train again.")
        return EXIT_OK
    record_run(run_dir, cfg)
    L.seed_everything(cfg.seed, workers=True)

    trainer_args = _trainer_args(cfg.trainer)
    health = build_health(cfg.health, run_dir, expect_gpu=trainer_args["accelerator"] in ("gpu", "cuda"))
    report = health.preflight()
    print(report.table())
    if not report.fit:
        print(f"GPU preflight failed: {report.verdict}. Nothing was trained (exit {report.exit_code}).")
        return report.exit_code

    # The model first: a missing pretrained encoder fails in seconds, before the corpus is read.
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model = build_model(model_cfg)
    rig = load_rig(cfg.data.rig)
    clips = load_clips(cfg.data.root, rig, cfg.data.fps, splits=("train", "val"),
                       skip_bad=cfg.data.skip_bad_clips)
    train_clips = [c for c in clips if c.split in ("train", None)]
    val_clips = [c for c in clips if c.split == "val"]
    if not train_clips:
        raise ValueError(f"{cfg.data.root}: no clips with split 'train' (or no split) to train on")
    train_set = WindowDataset(train_clips, cfg.data.fps, cfg.data.window_seconds, seed=cfg.seed,
                              windows_per_clip=cfg.data.windows_per_clip)
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.data.batch_size,
                                         sampler=EpochSampler(train_set, seed=cfg.seed), collate_fn=collate,
                                         num_workers=cfg.data.num_workers, drop_last=True)
    val_loader = None
    if val_clips:
        val_loader = torch.utils.data.DataLoader(ClipDataset(val_clips), batch_size=cfg.data.eval_batch_size,
                                                 collate_fn=collate, num_workers=0)
    else:
        log.warning("%s has no 'val' clips: training without validation metrics", cfg.data.root)

    task = LipSyncTask(
        model,
        portable_model_config(model_cfg, model),
        optimizer=instantiate(cfg.optim.optimizer),
        warmup_steps=cfg.optim.warmup_steps,
        total_steps=cfg.trainer.max_steps,
        loss=OmegaConf.to_container(cfg.loss, resolve=True),
        plot_dir=run_dir / "plots",
        plot_clips=cfg.plot_clips,
        numerics_guard=build_numerics_guard(cfg.health, run_dir) if cfg.health.backend != "off" else None,
    )

    if val_loader is None:
        trainer_args["limit_val_batches"] = 0
    trainer = L.Trainer(
        **trainer_args,
        default_root_dir=str(run_dir),
        callbacks=[instantiate(c) for c in cfg.callbacks.values()] + health.callbacks + [_checkpointing(run_dir, cfg)],
        logger=[instantiate(lg, save_dir=str(run_dir)) for lg in cfg.logger.values()],
    )
    try:
        trainer.fit(task, train_dataloaders=loader, val_dataloaders=val_loader)
    except HealthStop as stop:
        print(f"Stopped by a health check (exit {stop.exit_code}): {stop.reason}")
        return stop.exit_code

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    mark_done(run_dir, {"global_step": trainer.global_step, "metrics": metrics})
    print(f"Finished at step {trainer.global_step}; run dir {run_dir}")
    return EXIT_OK


def _trainer_args(trainer_cfg: DictConfig) -> dict:
    args = OmegaConf.to_container(trainer_cfg, resolve=True)
    if args.get("accelerator") == "auto":
        args["accelerator"] = "gpu" if torch.cuda.is_available() else "cpu"
    if args.get("precision") == "auto":
        # bf16 autocast where the GPU has it, full precision elsewhere.
        on_gpu = torch.cuda.is_available() and args.get("accelerator") in ("auto", "gpu", "cuda")
        args["precision"] = "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true"
    return args


def _checkpointing(run_dir: Path, cfg: DictConfig):
    from lightning.pytorch.callbacks import ModelCheckpoint

    return ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True,
                           every_n_train_steps=cfg.checkpoint.every_steps, save_top_k=1,
                           monitor="val/loss" if cfg.checkpoint.monitor else None)
