"""Finite loss and gradients every step: what to do when a step is not finite.

The LightningModule checks each step (``step_is_finite``); on a non-finite step
it re-runs forward/backward from the pre-step state (same weights, same batch,
same RNG) and asks the guard:

    decision = guard.on_nonfinite(step, clip_ids, rerun_finite=...)

- rerun finite -> ``not reproducible``: the same arithmetic gave two answers, so
  suspect the hardware. The guard runs the self-test (if given one) and records
  both in health.jsonl. Action ``use_rerun`` (carry on with the rerun's finite
  gradients) while the self-test passes; ``abort`` (exit 76, save nothing) if it
  fails or after ``max_unreproducible`` such steps in one run.
- rerun non-finite -> ``reproducible``: the batch itself (or the weights) make it
  diverge. Action ``skip_batch`` (no optimizer step); after ``max_consecutive``
  consecutive reproducible failures, ``rollback`` to the last good checkpoint,
  naming the clips of those batches. After ``max_rollbacks`` rollbacks the
  action is ``fail``: the run cannot make progress (exit 1: fix data or lower
  the learning rate; the clip ids say where to look).

Every finite step calls ``guard.on_finite(step)``, which resets the consecutive count.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

from lipsync.health.readings import EXIT_GPU_UNFIT

NUMERICS_ACTIONS = ("use_rerun", "skip_batch", "rollback", "abort", "fail")


@dataclass(frozen=True)
class NumericsDecision:
    action: str  # one of NUMERICS_ACTIONS
    step: int
    reproducible: bool
    consecutive_failures: int
    clip_ids: tuple[str, ...]  # clips of this batch (rollback: of every failed batch in the run of failures)
    reason: str
    exit_code: int | None = None
    self_test: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NumericsGuard:
    max_consecutive: int = 3  # K
    max_unreproducible: int = 3
    max_rollbacks: int = 2
    self_test: Callable[[], Any] | None = None  # returns an object with .ok, .detail, .to_json()
    journal: Any = None  # HealthJournal or None
    consecutive: int = 0
    unreproducible: int = 0
    rollbacks: int = 0
    decisions: list[NumericsDecision] = field(default_factory=list)
    _failed_clips: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_consecutive < 1:
            raise ValueError(f"health.numerics.max_consecutive={self.max_consecutive}: must be >= 1")

    def on_finite(self, step: int) -> None:
        self.consecutive = 0
        self._failed_clips.clear()

    def on_nonfinite(self, step: int, clip_ids: Iterable[str], rerun_finite: bool) -> NumericsDecision:
        clips = tuple(str(c) for c in clip_ids)
        if rerun_finite:
            decision = self._unreproducible(step, clips)
        else:
            decision = self._reproducible(step, clips)
        self.decisions.append(decision)
        if self.journal is not None:
            self.journal.write("numerics", durable=decision.action in ("abort", "rollback", "fail"), **decision.to_json())
        return decision

    def _unreproducible(self, step: int, clips: tuple[str, ...]) -> NumericsDecision:
        self.unreproducible += 1
        result = self.self_test() if self.self_test is not None else None
        test_json = result.to_json() if result is not None else None
        base = f"step {step}: non-finite loss/gradients that a rerun of the same step did not reproduce"
        if result is not None and not result.ok:
            return NumericsDecision("abort", step, False, self.consecutive, clips,
                                    f"{base}; self-test FAILED ({result.detail}): suspect GPU", EXIT_GPU_UNFIT, test_json)
        if self.unreproducible >= self.max_unreproducible:
            return NumericsDecision("abort", step, False, self.consecutive, clips,
                                    f"{base}; {self.unreproducible} such steps in this run: suspect GPU "
                                    "even though the self-test passed", EXIT_GPU_UNFIT, test_json)
        detail = f"self-test passed ({result.detail})" if result is not None else "no self-test available"
        return NumericsDecision("use_rerun", step, False, self.consecutive, clips,
                                f"{base}; {detail}; continuing with the rerun", None, test_json)

    def _reproducible(self, step: int, clips: tuple[str, ...]) -> NumericsDecision:
        self.consecutive += 1
        self._failed_clips.extend(clips)
        if self.consecutive < self.max_consecutive:
            return NumericsDecision("skip_batch", step, True, self.consecutive, clips,
                                    f"step {step}: non-finite loss/gradients, reproduced on rerun; skipping the batch "
                                    f"({self.consecutive}/{self.max_consecutive} before rollback); clips: {', '.join(clips)}")
        failed = tuple(dict.fromkeys(self._failed_clips))  # unique, in order
        count = self.consecutive
        self.consecutive = 0
        self._failed_clips.clear()
        self.rollbacks += 1
        if self.rollbacks > self.max_rollbacks:
            return NumericsDecision("fail", step, True, count, failed,
                                    f"step {step}: still non-finite after {self.max_rollbacks} rollbacks; the run cannot "
                                    f"progress: check these clips or lower the learning rate: {', '.join(failed)}", 1)
        return NumericsDecision("rollback", step, True, count, failed,
                                f"step {step}: {count} consecutive non-finite batches; rolling back to the last good "
                                f"checkpoint (rollback {self.rollbacks}/{self.max_rollbacks}); clips: {', '.join(failed)}")


def step_is_finite(loss: Any, parameters: Sequence[Any] | Iterable[Any]) -> bool:
    """True if the loss and every gradient are finite; one device sync in total."""
    import torch

    checks = [torch.isfinite(loss.detach()).all()]
    grads = [p.grad.detach() for p in parameters if getattr(p, "grad", None) is not None]
    if grads:
        checks.append(torch.stack([torch.isfinite(g).all() for g in grads]).all())
    return bool(torch.stack(checks).all())
