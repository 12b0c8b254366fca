"""Build the health pieces of a run from the ``health`` config group.

    backend, preflight, callbacks = build_health(cfg.health, run_dir, expect_gpu=...)
    report = preflight(required_memory_mib=...)   # before fit and before every resume
    if not report.fit: print(report.table()); exit(report.exit_code)   # 76
    trainer = Trainer(callbacks=[*callbacks, ...])
    guard = build_numerics_guard(cfg.health, run_dir)   # for training_step

``expect_gpu`` (default: ``torch.cuda.is_available()``) decides what an NVML
failure means under ``actions.nvml_unavailable: auto``: abort (76) for a GPU
run, a warning for a CPU run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

from lipsync.health.backends import HealthBackend, make_backend
from lipsync.health.journal import HealthJournal
from lipsync.health.monitor import HealthMonitor
from lipsync.health.numerics import NumericsGuard
from lipsync.health.policy import HealthPolicy, PolicyConfig
from lipsync.health.preflight import PreflightOptions, PreflightReport, run_preflight
from lipsync.health.watchdog import HangWatchdog

KNOWN_KEYS = {"backend", "timeline", "device", "poll_seconds", "poll_thread", "event_wait_ms", "actions",
              "thresholds", "windows", "pause", "preflight", "watchdog", "numerics"}


class HealthSetup(NamedTuple):
    backend: HealthBackend
    preflight: Callable[..., PreflightReport]
    callbacks: list


def plain_config(cfg: Any) -> dict[str, Any]:
    """DictConfig or Mapping -> plain dict, checked against the keys this package knows."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # omegaconf is a dependency; a plain dict works without it
        pass
    cfg = dict(cfg or {})
    unknown = set(cfg) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"health config: unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(KNOWN_KEYS))} "
                         "(see configs/health/default.yaml)")
    return cfg


def _expect_gpu(expect_gpu: bool | None) -> bool:
    if expect_gpu is not None:
        return expect_gpu
    import torch

    return torch.cuda.is_available()


def build_health(cfg_health: Mapping[str, Any], run_dir: str | Path, *, expect_gpu: bool | None = None,
                 cuda_index: int | None = None) -> HealthSetup:
    cfg = plain_config(cfg_health)
    run_dir = Path(run_dir)
    expect_gpu = _expect_gpu(expect_gpu)
    journal = HealthJournal(run_dir)
    backend = make_backend(cfg.get("backend", "nvml"), cfg.get("timeline"))
    if hasattr(backend, "event_wait_ms") and cfg.get("event_wait_ms") is not None:
        backend.event_wait_ms = int(cfg["event_wait_ms"])
    policy_config = PolicyConfig.from_cfg(cfg)
    unavailable = policy_config.actions["nvml_unavailable"]
    if unavailable == "auto":
        unavailable = "abort" if expect_gpu else "warn"
    preflight_cfg = dict(cfg.get("preflight") or {})
    options = PreflightOptions.from_cfg(cfg)

    def preflight(required_memory_mib: float | None = None, cuda_index: int | None = cuda_index) -> PreflightReport:
        """Run the checks, record them in health.jsonl, return the report (the caller prints and exits)."""
        if preflight_cfg.get("enabled", True) is False:
            report = PreflightReport(gpu_expected=False)
            report.add("preflight", "skipped", "health.preflight.enabled=false")
        else:
            required = required_memory_mib if required_memory_mib is not None else preflight_cfg.get("required_memory_mib")
            report = run_preflight(backend, device=cfg.get("device"), expect_gpu=expect_gpu and unavailable == "abort",
                                   required_memory_mib=required, cuda_index=cuda_index, options=options)
        journal.write("preflight", durable=True, **report.to_json())
        return report

    callbacks: list = []
    watchdog = None
    wd = cfg.get("watchdog") or {}
    if wd.get("enabled", True):
        watchdog = HangWatchdog(run_dir, floor_s=wd.get("floor_s", 600.0), multiplier=wd.get("multiplier", 5.0),
                                journal=journal)
        callbacks.append(watchdog)
    if backend.name != "off":
        pause = cfg.get("pause") or {}
        callbacks.append(HealthMonitor(
            backend, run_dir, HealthPolicy(policy_config),
            # A fault timeline plays at its own speed so a rehearsal reaches the fault quickly.
            poll_seconds=float(backend.poll_seconds_hint or cfg.get("poll_seconds", 10.0)), poll_thread=bool(cfg.get("poll_thread", True)),
            device=cfg.get("device"), pause_timeout_s=float(pause.get("timeout_s", 900.0)),
            resume_temp_c=pause.get("resume_temp_c"), resume_margin_c=float(pause.get("resume_margin_c", 15.0)),
            on_unavailable=unavailable, watchdog=watchdog, journal=journal,
        ))
    return HealthSetup(backend, preflight, callbacks)


def build_numerics_guard(cfg_health: Mapping[str, Any], run_dir: str | Path,
                         self_test: Callable[[], Any] | None = None) -> NumericsGuard:
    """The guard for training_step. ``self_test`` defaults to the GPU self-test on the current CUDA device."""
    cfg = plain_config(cfg_health)
    n = cfg.get("numerics") or {}
    if self_test is None:
        self_test = _current_device_self_test(cfg.get("preflight") or {})
    return NumericsGuard(max_consecutive=int(n.get("max_consecutive", 3)),
                         max_unreproducible=int(n.get("max_unreproducible", 3)),
                         max_rollbacks=int(n.get("max_rollbacks", 2)), self_test=self_test,
                         journal=HealthJournal(run_dir))


def _current_device_self_test(preflight_cfg: Mapping[str, Any]) -> Callable[[], Any] | None:
    import torch

    if not torch.cuda.is_available():
        return None

    def self_test():
        from lipsync.health.selftest import run_self_test

        return run_self_test(f"cuda:{torch.cuda.current_device()}", int(preflight_cfg.get("gemm_size", 1024)),
                             int(preflight_cfg.get("memory_test_mib", 256)))

    return self_test
