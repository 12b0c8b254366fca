"""GPU health for long training runs: refuse a sick GPU, watch it during the run, stop safely.

- ``build_health(cfg.health, run_dir)`` -> (backend, preflight, callbacks)
- ``HealthStop``: raised at a step boundary; ``exit_code`` 75 (checkpoint, stop) or 76 (abort, save nothing)
- ``NumericsGuard``: decisions for non-finite steps (rerun, skip, rollback, abort)
- ``HangWatchdog``: stack dump + exit 79 when steps stop coming
- exit codes: EXIT_STOP=75, EXIT_GPU_UNFIT=76, EXIT_HANG=79

Nothing here imports lipsync.training or lipsync.checkpointing. Names are
imported lazily so ``check_gpu`` does not pay for importing Lightning.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "build_health": "factory", "build_numerics_guard": "factory", "HealthSetup": "factory",
    "HealthMonitor": "monitor", "HealthStop": "monitor",
    "NumericsDecision": "numerics", "NumericsGuard": "numerics", "step_is_finite": "numerics",
    "PreflightReport": "preflight", "estimate_training_memory_mib": "preflight", "run_preflight": "preflight",
    "EXIT_GPU_UNFIT": "readings", "EXIT_HANG": "readings", "EXIT_STOP": "readings", "UNSUPPORTED": "readings",
    "HangWatchdog": "watchdog",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lipsync.health' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lipsync.health.{_EXPORTS[name]}"), name)
