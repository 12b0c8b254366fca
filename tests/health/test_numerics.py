"""NumericsGuard decisions: transient vs reproducible non-finite steps, rollback after K, suspect hardware."""
from __future__ import annotations

import pytest
import torch

from lipsync.health.journal import HealthJournal, read_journal
from lipsync.health.numerics import NumericsGuard, step_is_finite
from lipsync.health.selftest import SelfTestResult


def passing_test():
    return SelfTestResult(True, "clean")


def test_transient_nan_is_suspected_hardware_and_the_run_continues_with_the_rerun(tmp_path):
    calls = []
    guard = NumericsGuard(self_test=lambda: calls.append(1) or passing_test(), journal=HealthJournal(tmp_path))
    d = guard.on_nonfinite(step=10, clip_ids=["a", "b"], rerun_finite=True)
    assert d.action == "use_rerun" and d.reproducible is False and d.exit_code is None
    assert calls == [1] and d.self_test["ok"] is True
    line = read_journal(tmp_path)[-1]
    assert line["kind"] == "numerics" and line["action"] == "use_rerun" and line["clip_ids"] == ["a", "b"]


def test_transient_nan_with_a_failing_self_test_aborts_76():
    guard = NumericsGuard(self_test=lambda: SelfTestResult(False, "GEMM differs by 1e-1"))
    d = guard.on_nonfinite(step=3, clip_ids=["a"], rerun_finite=True)
    assert d.action == "abort" and d.exit_code == 76 and "GEMM differs" in d.reason


def test_repeated_transient_nans_abort_even_when_the_self_test_passes():
    guard = NumericsGuard(max_unreproducible=2, self_test=passing_test)
    assert guard.on_nonfinite(1, ["a"], rerun_finite=True).action == "use_rerun"
    assert guard.on_nonfinite(2, ["b"], rerun_finite=True).action == "abort"


def test_persistent_nan_skips_then_rolls_back_after_k_naming_the_clips(tmp_path):
    guard = NumericsGuard(max_consecutive=3, journal=HealthJournal(tmp_path))
    assert guard.on_nonfinite(5, ["c1", "c2"], rerun_finite=False).action == "skip_batch"
    assert guard.on_nonfinite(6, ["c3"], rerun_finite=False).action == "skip_batch"
    d = guard.on_nonfinite(7, ["c4", "c1"], rerun_finite=False)
    assert d.action == "rollback" and d.reproducible and d.consecutive_failures == 3
    assert d.clip_ids == ("c1", "c2", "c3", "c4") and "c3" in d.reason
    assert [r["action"] for r in read_journal(tmp_path)] == ["skip_batch", "skip_batch", "rollback"]


def test_a_finite_step_resets_the_count():
    guard = NumericsGuard(max_consecutive=2)
    guard.on_nonfinite(1, ["a"], rerun_finite=False)
    guard.on_finite(2)
    assert guard.on_nonfinite(3, ["b"], rerun_finite=False).action == "skip_batch"


def test_gives_up_after_max_rollbacks():
    guard = NumericsGuard(max_consecutive=1, max_rollbacks=1)
    assert guard.on_nonfinite(1, ["a"], rerun_finite=False).action == "rollback"
    d = guard.on_nonfinite(2, ["a"], rerun_finite=False)
    assert d.action == "fail" and d.exit_code == 1 and "a" in d.clip_ids


def test_bad_k_fails_loudly():
    with pytest.raises(ValueError, match="max_consecutive"):
        NumericsGuard(max_consecutive=0)


def test_step_is_finite_checks_loss_and_gradients():
    layer = torch.nn.Linear(3, 1)
    loss = layer(torch.ones(2, 3)).sum()
    loss.backward()
    assert step_is_finite(loss, layer.parameters())
    layer.weight.grad[0, 1] = float("nan")
    assert not step_is_finite(loss, layer.parameters())
    assert not step_is_finite(torch.tensor(float("inf")), [])
