"""Durable, verified, resumable checkpoints for long runs: kill it anywhere, run the same command, lose nothing.

- ``store.CheckpointStore``: durable saves (temp, fsync, rename, fsync dir), a manifest per checkpoint
  written last, ``last.ckpt`` / ``best.ckpt`` symlinks, keep the last k plus the best
- ``resume.find_resume_point``: newest sound checkpoint (manifest, size, sha256, loads, finite), bad ones
  moved to ``rejected/`` with the reason; refuses a changed model/data config unless allowed
- ``callback.DurableCheckpoint`` / ``DurableCheckpointIO``: the Lightning side (cadence, data position, RNG)
- ``signals.StopSignals`` / ``StopRequested``: SIGTERM/SIGINT/SIGUSR1 -> save at the step boundary, exit 75
- ``supervisor.Supervisor``: restart a crashed, hung or health-stopped child (``run.supervise=true``)
- ``keys``: the names of what a checkpoint holds; ``testhooks``: deterministic fault injection for tests

Nothing here imports lipsync.training.
"""
