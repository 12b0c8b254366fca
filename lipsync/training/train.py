"""train(cfg): read top to bottom. Returns an exit code from DESIGN.md's table."""
from __future__ import annotations

import logging
import os
import time
import warnings
from collections import Counter
from dataclasses import replace
from functools import reduce
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lipsync.checkpointing.callback import DurableCheckpoint, DurableCheckpointIO
from lipsync.checkpointing.heartbeat import HEARTBEAT_ENV, Heartbeat
from lipsync.checkpointing.resume import config_hash, find_resume_point
from lipsync.checkpointing.signals import StopRequested, StopSignals
from lipsync.checkpointing.store import CheckpointStore
from lipsync.checkpointing.supervisor import is_supervised_child
from lipsync.data.augment import Augmenter
from lipsync.data.dataset import ClipDataset, WindowDataset, collate
from lipsync.data.manifest import clip_alignments, manifest_field
from lipsync.data.sampler import EpochSampler
from lipsync.data.validate import load_clips
from lipsync.health import HealthStop, build_health, build_numerics_guard
from lipsync.model import build_model
from lipsync.model.checkpoint import portable_model_config
from lipsync.model.warm_start import warm_start
from lipsync.rigs import load_rig
from lipsync.training.adversary import DomainAdversary
from lipsync.training.metrics import phone_at
from lipsync.training.module import LipSyncTask
from lipsync.training.rundir import archive_previous_run, mark_done, read_done, record_run

log = logging.getLogger("lipsync.train")

EXIT_OK, EXIT_USER_ERROR, EXIT_STOP = 0, 1, 75
# Config that decides the model and the data seen: a resume with other values is refused (run.allow_config_change).
UNWATCHED_DATA_KEYS = ("num_workers", "eval_batch_size", "skip_bad_clips")
# Options added after runs existed: watched only when set, so those runs keep their config hash.
WATCHED_WHEN_SET = (("data", "balance_by"), ("data", "unscored_phones"), ("model", "encoder", "cmn_window_s"),
                    ("model", "encoder", "freq_conv"))


def train(cfg: DictConfig) -> int:
    run_dir = Path(cfg.run.dir).resolve()
    if cfg.run.restart and not is_supervised_child():  # a supervisor did this once, before its first child
        moved = archive_previous_run(run_dir)
        if moved:
            print(f"run.restart=true: moved the previous run's files to {moved}; starting over")
    done = read_done(run_dir)
    if done is not None:
        print(f"Run {run_dir} is finished (step {done.get('global_step')}); nothing to do. "
              "Use a new run.name (or run.restart=true, which archives this run) to train again.")
        return EXIT_OK
    L.seed_everything(cfg.seed, workers=True)

    trainer_args = _trainer_args(cfg.trainer)
    health = build_health(cfg.health, run_dir, expect_gpu=trainer_args["accelerator"] in ("gpu", "cuda"))
    report = health.preflight()
    print(report.table())
    if not report.fit:
        print(f"GPU preflight failed: {report.verdict}. Nothing was trained (exit {report.exit_code}).")
        return report.exit_code

    # After preflight, before anything is built: a run dir with checkpoints resumes (verified), never restarts.
    store = CheckpointStore(run_dir / "checkpoints", keep_last=cfg.checkpoint.keep_last,
                            keep_best=cfg.checkpoint.keep_best)
    watched = watched_config(cfg)
    resume = find_resume_point(store, watched, allow_config_change=cfg.run.allow_config_change)
    if resume is not None:
        for path, why in resume.rejected:
            print(f"Not resuming from {path}: {why}; moved it to {store.folder / 'rejected'}, trying the previous one")
        for note in resume.notes:
            print(note)
        print(f"Resuming from {resume.path} at step {resume.step}")
        _keep_metrics_history(run_dir)
    record_run(run_dir, cfg)  # after the resume check: a refused config never overwrites the run's config.yaml

    # The model first: a missing pretrained encoder fails in seconds, before the corpus is read.
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model = build_model(model_cfg)
    if cfg.init_from and resume is None:  # a resumed run's weights come from its own checkpoint
        print(f"init_from: starting from the weights of {warm_start(model, model_cfg, str(cfg.init_from))}")
    rig = load_rig(cfg.data.rig)
    clips = load_clips(cfg.data.root, rig, cfg.data.fps, splits=("train", "val"),
                       skip_bad=cfg.data.skip_bad_clips)
    clips = _exclude(clips, cfg.data.root, cfg.data.exclude)
    train_clips = _unscore([c for c in clips if c.split in ("train", None)], cfg.data.root,
                           cfg.data.unscored_phones, cfg.data.fps)
    train_clips = _balance(train_clips, cfg.data.root, cfg.data.balance_by)
    val_clips = [c for c in clips if c.split == "val"]
    if not train_clips:
        raise ValueError(f"{cfg.data.root}: no clips with split 'train' (or no split) to train on")
    augment = (Augmenter(cfg.augment, seed=cfg.seed, fps=cfg.data.fps, rest_pose=rig.rest_pose)
               if cfg.augment.enabled else None)
    train_set = WindowDataset(train_clips, cfg.data.fps, cfg.data.window_seconds, seed=cfg.seed,
                              windows_per_clip=cfg.data.windows_per_clip, augment=augment)
    sampler = EpochSampler(train_set, seed=cfg.seed)
    # Loaders draw their worker seeds from their own generators, so building an iterator (which Lightning
    # does at different moments in a fresh and a resumed run) never moves the global RNG that dropout uses.
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.data.batch_size, sampler=sampler,
                                         collate_fn=collate, num_workers=cfg.data.num_workers, drop_last=True,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    val_loader = None
    if val_clips:
        val_loader = torch.utils.data.DataLoader(ClipDataset(val_clips), batch_size=cfg.data.eval_batch_size,
                                                 collate_fn=collate, num_workers=0,
                                                 generator=torch.Generator().manual_seed(cfg.seed))
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
        adversary=_adversary(cfg, model, train_clips),
    )

    if val_loader is None:
        trainer_args["limit_val_batches"] = 0
    stop_signals = StopSignals()
    checkpointing = DurableCheckpoint(
        store, sampler=sampler, samples_per_batch=cfg.data.batch_size, batches_per_epoch=len(loader),
        every_steps=cfg.checkpoint.every_steps, every_minutes=cfg.checkpoint.every_minutes,
        monitor=cfg.checkpoint.monitor if val_loader is not None else None, mode=cfg.checkpoint.mode,
        stop=stop_signals, is_stop_to_save=lambda exc: isinstance(exc, HealthStop) and exc.save_checkpoint,
    )
    checkpoint_io = DurableCheckpointIO(store, manifest_fields(watched))
    if resume is not None:
        checkpoint_io.preloaded = (resume.path, resume.checkpoint)
    heartbeat = [Heartbeat(os.environ[HEARTBEAT_ENV])] if os.environ.get(HEARTBEAT_ENV) else []
    trainer = L.Trainer(
        **trainer_args,
        default_root_dir=str(run_dir),
        enable_checkpointing=False,  # ours, first, so it saves before anything else may stop the step
        plugins=[checkpoint_io],
        callbacks=[checkpointing, *[instantiate(c) for c in cfg.callbacks.values()], *health.callbacks, *heartbeat],
        logger=[instantiate(lg, save_dir=str(run_dir)) for lg in cfg.logger.values()],
    )
    # Both warnings are about what DurableCheckpoint already handles: the sampler resumes at the saved
    # position inside the epoch, and the rows of an earlier metrics.csv were moved aside above.
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    with stop_signals:  # SIGTERM/SIGINT/SIGUSR1 from here on: save at the step boundary, exit 75
        try:
            trainer.fit(task, train_dataloaders=loader, val_dataloaders=val_loader,
                        ckpt_path=str(resume.path) if resume is not None else None)
        except HealthStop as stop:
            print(f"Stopped by a health check (exit {stop.exit_code}): {stop.reason}")
            return stop.exit_code
        except StopRequested as stop:
            print(f"Stopped by {stop.signal_name} after step {stop.step}; saved {stop.path}. "
                  f"Run the same command to continue (exit {EXIT_STOP}).")
            return EXIT_STOP

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    mark_done(run_dir, {"global_step": trainer.global_step, "metrics": metrics})
    print(f"Finished at step {trainer.global_step}; run dir {run_dir}")
    return EXIT_OK


def _exclude(clips: list, root, exclude: DictConfig) -> list:
    """Leave out clips whose manifest field has one of the given values (e.g. {engine: [festival]})."""
    for field, values in (exclude or {}).items():
        drop = {str(v) for v in ([values] if isinstance(values, str) else values)}
        if not drop:
            continue
        value_of = manifest_field(root, field)
        kept = [c for c in clips if value_of.get(c.id) not in drop]
        print(f"data.exclude: left out {len(clips) - len(kept)} clips with {field} in {sorted(drop)}")
        clips = kept
    return clips


def _unscore(clips: list, root, unscored, fps: float) -> list:
    """Give the frames of the listed phones no target (NaN curves, which the loss skips) in the clips whose
    manifest field has a listed value: {engine: {espeak: [m, n, N]}}. Changed clips are copies."""
    for field, phones_of in (unscored or {}).items():
        setting = f"data.unscored_phones.{field}"
        value_of = manifest_field(root, field)
        chosen = [c for c in clips if value_of.get(c.id) in phones_of]
        alignments = clip_alignments(chosen, root)
        unaligned = [c.id for c in chosen if c.id not in alignments]
        if unaligned:
            raise ValueError(f"{setting}: {len(unaligned)} training clip(s) have no alignment in manifest.jsonl "
                             f"(first: {unaligned[0]}), so the frames of their phones are unknown")
        replaced = {}
        for value, phones in phones_of.items():
            if value not in value_of.values():
                raise ValueError(f"{setting}.{value}: no clip of {root} has {field}={value}; its values: "
                                 f"{_listing(sorted(set(value_of.values())))}")
            of_value = [c for c in chosen if value_of[c.id] == value]
            if not of_value:  # all left out, as in the fold that holds this engine out
                print(f"{setting}.{value}: no training clip has {field}={value}; nothing to skip")
                continue
            labels = {c.id: [phone_at(alignments[c.id], t / fps) for t in range(len(c.curves))] for c in of_value}
            seen = {label for clip_labels in labels.values() for label in clip_labels}
            if not set(phones) <= seen:
                raise ValueError(f"{setting}.{value}: phone(s) {sorted(set(phones) - seen)} are in no alignment of "
                                 f"the {len(of_value)} training clips with {field}={value}; their phones: "
                                 f"{' '.join(sorted(seen - {'-'}))}")
            skipped = Counter()
            for clip in of_value:
                drop = np.array([label in phones for label in labels[clip.id]])
                replaced[clip.id] = replace(clip, curves=np.where(drop[:, None], np.float32("nan"), clip.curves))
                skipped.update(label for label in labels[clip.id] if label in phones)
            frames = sum(map(len, labels.values()))
            print(f"{setting}.{value}: the loss skips {sum(skipped.values())} of {frames} frames in "
                  f"{len(of_value)} clips ({', '.join(f'{p} {n}' for p, n in skipped.most_common())})")
        clips = [replaced.get(c.id, c) for c in clips]
    return clips


def _field_of_every_clip(clips: list, root, field: str, setting: str) -> dict:
    """The manifest's ``field`` per clip id; refuses when a training clip lacks it (``setting`` names the option)."""
    value_of = manifest_field(root, field)
    missing = [c.id for c in clips if value_of.get(c.id, "?") == "?"]
    if missing:
        raise ValueError(f"{setting}={field}: {len(missing)} training clip(s) of {root} have no '{field}' "
                         f"in manifest.jsonl (first: {missing[0]}); add it or set {setting}=null")
    return value_of


def _balance(clips: list, root, field: str | None) -> list:
    """Repeat the clips of each ``field`` group (e.g. engine) so every group gets about as many windows per epoch.

    A group of n clips is repeated round(largest group / n) times; repeats draw their own windows.
    """
    if not field:
        return clips
    value_of = _field_of_every_clip(clips, root, field, "data.balance_by")
    sizes = Counter(value_of[c.id] for c in clips)
    repeats = {group: max(1, round(max(sizes.values()) / n)) for group, n in sizes.items()}
    print("data.balance_by: " + _listing([f"{g} {sizes[g]} clips x{repeats[g]}" for g in sorted(sizes)]))
    return [c for c in clips for _ in range(repeats[value_of[c.id]])]


def _listing(items: list, shown: int = 8) -> str:
    """The first ``shown`` items joined, then how many more: a field such as speaker has hundreds of values."""
    more = f", ... and {len(items) - shown} more ({len(items)} in all)" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _adversary(cfg: DictConfig, model, train_clips: list) -> DomainAdversary | None:
    """The domain adversary of ``adversary.field`` (e.g. engine) over the training clips, or None when off."""
    field = cfg.adversary.field
    if not field:
        return None
    value_of = _field_of_every_clip(train_clips, cfg.data.root, field, "adversary.field")
    adversary = DomainAdversary(model.encoder.output_dim, {c.id: value_of[c.id] for c in train_clips},
                                weight=cfg.adversary.weight, hidden=cfg.adversary.hidden,
                                ramp_steps=cfg.adversary.ramp_steps)
    print(f"adversary: the encoder's features are trained not to tell {field} apart "
          f"({_listing(adversary.domains)}; strength {adversary.weight} after {adversary.ramp_steps} steps)")
    return adversary


def _trainer_args(trainer_cfg: DictConfig) -> dict:
    args = OmegaConf.to_container(trainer_cfg, resolve=True)
    if args.get("accelerator") == "auto":
        args["accelerator"] = "gpu" if torch.cuda.is_available() else "cpu"
    if args.get("precision") == "auto":
        # bf16 autocast where the GPU has it, full precision elsewhere.
        on_gpu = torch.cuda.is_available() and args.get("accelerator") in ("auto", "gpu", "cuda")
        args["precision"] = "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true"
    return args


def watched_config(cfg: DictConfig) -> dict:
    """The part of the config that decides the model and the data order (recorded in every manifest)."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    watched = {"model": OmegaConf.to_container(cfg.model, resolve=True), "seed": cfg.seed,
               "data": {k: v for k, v in data.items() if k not in UNWATCHED_DATA_KEYS},
               "augment": OmegaConf.to_container(cfg.augment, resolve=True),
               # Only when on: runs from before the adversary existed keep their config hash.
               **({"adversary": OmegaConf.to_container(cfg.adversary)} if cfg.adversary.field else {}),
               **({"init_from": str(cfg.init_from)} if cfg.init_from else {})}
    for *parents, key in WATCHED_WHEN_SET:
        section = reduce(lambda d, name: d.get(name, {}), parents, watched)
        if section.get(key, "absent") is None:
            del section[key]
    return watched


def manifest_fields(watched: dict) -> dict:
    versions = {}
    for package in ("lipsync", "torch", "lightning", "numpy", "transformers"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"config_hash": config_hash(watched), "config": watched, "versions": versions}


def _keep_metrics_history(run_dir: Path) -> None:
    """Lightning's CSVLogger deletes an existing metrics.csv: keep the rows written before this resume."""
    metrics = run_dir / "metrics" / "metrics.csv"
    if metrics.is_file():
        os.replace(metrics, metrics.with_name(f"metrics-before-resume-{time.strftime('%Y%m%d-%H%M%S')}.csv"))
