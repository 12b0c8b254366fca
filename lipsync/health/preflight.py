"""Checks before training starts and before every resume: is this GPU fit to train on?

``run_preflight`` returns a ``PreflightReport``: rows of (check, status, detail)
with status ok / warn / fail / unsupported / skipped, and a verdict:

- ``fit``: no row failed (exit 0);
- ``unfit``: a row failed (exit 76, EXIT_GPU_UNFIT);
- ``no_gpu``: a GPU was expected but NVML or CUDA cannot see one (exit 76 too:
  for a scheduler both mean "do not train here"; the table says which);
- ``not_checked``: checks are off, or the run does not use a GPU (exit 0).

"unsupported" never counts as ok: the row says the card cannot tell, and
``fail_on_unsupported`` turns it into a failure for a strict site.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from lipsync.health.backends import HealthBackend, open_backend
from lipsync.health.policy import FATAL_XIDS, RESET_ADVICE, RESET_XIDS, THROTTLE_REASONS, XID_NAMES
from lipsync.health.readings import EXIT_GPU_UNFIT, UNSUPPORTED, FieldError, is_value
from lipsync.health.selftest import SelfTestResult, run_self_test

STATUSES = ("ok", "warn", "fail", "unsupported", "skipped")
_MIB = 1024 * 1024


@dataclass(frozen=True)
class CheckRow:
    check: str
    status: str
    detail: str


@dataclass
class PreflightReport:
    rows: list[CheckRow] = field(default_factory=list)
    gpu_expected: bool = True
    gpu_present: bool = False
    device: int | None = None
    device_name: str = ""

    def add(self, check: str, status: str, detail: str) -> None:
        assert status in STATUSES, status
        self.rows.append(CheckRow(check, status, detail))

    @property
    def failed(self) -> list[CheckRow]:
        return [r for r in self.rows if r.status == "fail"]

    @property
    def verdict(self) -> str:
        if self.gpu_expected and not self.gpu_present:
            return "no_gpu"
        if self.failed:
            return "unfit"
        return "fit" if self.gpu_present else "not_checked"

    @property
    def fit(self) -> bool:
        return self.verdict in ("fit", "not_checked")

    @property
    def exit_code(self) -> int:
        return 0 if self.fit else EXIT_GPU_UNFIT

    def summary(self) -> str:
        target = f"GPU {self.device} ({self.device_name})" if self.gpu_present else "no GPU"
        if self.verdict == "no_gpu":
            return f"NO USABLE GPU: {self.failed[0].detail if self.failed else 'no NVIDIA GPU found'} (exit {self.exit_code})"
        if self.verdict == "unfit":
            return f"UNFIT: {target}: " + "; ".join(f"{r.check}: {r.detail}" for r in self.failed) + f" (exit {self.exit_code})"
        if self.verdict == "not_checked":
            return "GPU health not checked (health checks off or no GPU expected for this run)"
        return f"FIT: {target}"

    def table(self) -> str:
        width = max([len(r.check) for r in self.rows] + [5])
        lines = [f"{'check':<{width}}  {'status':<11}  detail", f"{'-' * width}  {'-' * 11}  {'-' * 40}"]
        lines += [f"{r.check:<{width}}  {r.status:<11}  {r.detail}" for r in self.rows]
        return "\n".join(lines + ["", f"verdict: {self.summary()}"])

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "fit": self.fit,
            "exit_code": self.exit_code,
            "gpu_present": self.gpu_present,
            "device": self.device,
            "device_name": self.device_name,
            "summary": self.summary(),
            "rows": [asdict(r) for r in self.rows],
        }


@dataclass(frozen=True)
class PreflightOptions:
    expect_name: str | None = None
    temp_margin_c: float = 5.0
    self_test: bool = True
    gemm_size: int = 1024
    memory_test_mib: int = 256
    dcgm_diag: bool = True
    dcgm_timeout_s: float = 300.0
    fail_on_unsupported: bool = False

    @classmethod
    def from_cfg(cls, cfg_health: Mapping[str, Any]) -> "PreflightOptions":
        p = dict(cfg_health.get("preflight") or {})
        known = set(cls.__dataclass_fields__)
        unknown = set(p) - known - {"enabled", "required_memory_mib"}
        if unknown:
            raise ValueError(f"health.preflight: unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in p.items() if k in known})


def estimate_training_memory_mib(num_parameters: int, activation_mib: float = 0.0, optimizer_states: int = 2,
                                 context_mib: float = 600.0) -> float:
    """fp32 weights + grads + optimizer states (Adam keeps 2), plus activations and the CUDA context."""
    return num_parameters * 4 * (2 + optimizer_states) / _MIB + activation_mib + context_mib


def run_preflight(backend: HealthBackend, *, device: int | None = None, expect_gpu: bool = True,
                  required_memory_mib: float | None = None, cuda_index: int | None = None,
                  options: PreflightOptions | None = None) -> PreflightReport:
    """Check the GPU the run will use (NVML index ``device``; default: the one CUDA uses)."""
    options = options or PreflightOptions()
    report = PreflightReport(gpu_expected=expect_gpu)
    if backend.name == "off":
        report.gpu_expected = False
        report.add("backend", "skipped", "health.backend=off: no GPU checks")
        return report
    problem = open_backend(backend)
    if problem is not None:
        report.add("nvml", "fail" if expect_gpu else "warn", problem)
        report.add("cuda", "fail" if expect_gpu else "skipped", _cuda_status())
        return report
    devices = {d.index: d for d in backend.devices()}
    if not devices:
        report.add("device", "fail" if expect_gpu else "warn", "NVML works but lists no GPU")
        return report
    if device is None:
        device = backend.nvml_index_for_cuda(cuda_index if cuda_index is not None else 0)
    if device not in devices:
        report.add("device", "fail", f"GPU {device} not visible; NVML sees {sorted(devices)} (fix health.device)")
        return report
    info = devices[device]
    report.gpu_present, report.device, report.device_name = True, device, info.name
    if options.expect_name and options.expect_name.lower() not in info.name.lower():
        report.add("device", "fail", f"GPU {device} is '{info.name}', config expects '{options.expect_name}' (health.preflight.expect_name)")
    else:
        report.add("device", "ok", f"GPU {device}: {info.name} {info.uuid} driver {info.driver_version}".strip())
    poll = backend.poll([device])
    reading = poll.readings.get(device, {})
    _check_reading(report, device, reading, options, required_memory_mib)
    _check_events(report, poll.events)
    _check_self_test(report, backend, device, cuda_index, options)
    _check_dcgm(report, backend, device, options)
    if options.fail_on_unsupported:
        report.rows = [CheckRow(r.check, "fail", r.detail + " (fail_on_unsupported)") if r.status == "unsupported" else r
                       for r in report.rows]
    return report


def _cuda_status() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"torch sees {torch.cuda.device_count()} CUDA device(s)"
        return f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
    except Exception as e:  # a broken CUDA install is exactly what this row reports
        return f"torch.cuda failed: {e}"


def _field(report: PreflightReport, check: str, value: Any, judge) -> None:
    """Add a row: 'unsupported' / error rows for non-values, else what ``judge(value)`` says."""
    if value is UNSUPPORTED:
        report.add(check, "unsupported", "NVML NOT_SUPPORTED on this card/driver: not checked, not assumed healthy")
    elif isinstance(value, FieldError):
        report.add(check, "warn", f"query failed: {value.message}")
    elif value is None:
        report.add(check, "skipped", "backend does not report it")
    else:
        report.add(check, *judge(value))


def _check_reading(report: PreflightReport, device: int, r: Mapping[str, Any], options: PreflightOptions,
                   required_memory_mib: float | None) -> None:
    advice = RESET_ADVICE.format(index=device)
    if is_value(r.get("gpu_lost")) and r["gpu_lost"]:
        report.add("gpu_lost", "fail", f"GPU {device} is lost (NVML GPU_IS_LOST): reboot the machine")
        return
    _field(report, "recovery_action", r.get("recovery_action"),
           lambda a: ("ok", "none") if a == "none" else ("fail", f"driver asks for '{a}': {advice}"))
    _field(report, "retired_pages_pending", r.get("retired_pages_pending"),
           lambda p: ("fail", f"page retirement pending: {advice}") if p else ("ok", "none pending"))
    pending, failure = r.get("remapped_rows_pending"), r.get("remapped_rows_failure")
    if is_value(pending) and is_value(failure):
        if failure:
            report.add("remapped_rows", "fail", "row remapping failed: the memory is bad; do not train on this GPU")
        elif pending:
            report.add("remapped_rows", "fail", f"row remapping pending: {advice}")
        else:
            report.add("remapped_rows", "ok", "none pending, no failure")
    else:
        _field(report, "remapped_rows", pending if not is_value(pending) else failure, lambda _: ("ok", ""))
    _field(report, "ecc_volatile_uncorrected", r.get("ecc_volatile_uncorrected"),
           lambda n: ("fail", f"{n} uncorrectable ECC errors since the driver loaded: {advice}") if n else ("ok", "0"))
    temp, slowdown = r.get("temperature_c"), r.get("slowdown_temp_c")

    def judge_temp(t):
        if not is_value(slowdown):
            return "warn", f"{t} °C; slowdown threshold unknown ({'unsupported' if slowdown is UNSUPPORTED else slowdown})"
        margin = slowdown - t
        if margin <= 0:
            return "fail", f"{t} °C is at/over the slowdown threshold {slowdown} °C: cool the machine first"
        if margin < options.temp_margin_c:
            return "warn", f"{t} °C, only {margin:g} °C below slowdown at {slowdown} °C"
        return "ok", f"{t} °C, {margin:g} °C below slowdown at {slowdown} °C"

    _field(report, "temperature", temp, judge_temp)
    _field(report, "clock_events", r.get("clock_event_reasons"),
           lambda reasons: ("warn", f"throttling before training starts: {sorted(set(reasons) & THROTTLE_REASONS)}")
           if set(reasons) & THROTTLE_REASONS else ("ok", ", ".join(reasons) or "none"))
    used, total = r.get("memory_used_mib"), r.get("memory_total_mib")
    if required_memory_mib is None:
        report.add("free_memory", "skipped", "no memory estimate given")
    elif not (is_value(used) and is_value(total)):
        _field(report, "free_memory", used if not is_value(used) else total, lambda _: ("ok", ""))
    else:
        free = total - used
        status = "fail" if free < required_memory_mib else "warn" if free < 1.1 * required_memory_mib else "ok"
        report.add("free_memory", status, f"{free:.0f} MiB free of {total:.0f}; run needs ~{required_memory_mib:.0f} MiB")


def _check_events(report: PreflightReport, events) -> None:
    xids = [e.data for e in events if e.kind == "xid"]
    if not xids:
        report.add("xid_events", "ok", "none since NVML started")
        return
    bad = [x for x in xids if x in FATAL_XIDS or x in RESET_XIDS]
    detail = ", ".join(f"Xid {x} ({XID_NAMES.get(x, 'see NVIDIA Xid catalogue')})" for x in xids)
    report.add("xid_events", "fail" if bad else "warn", detail)


def _check_self_test(report: PreflightReport, backend: HealthBackend, device: int, cuda_index: int | None,
                     options: PreflightOptions) -> None:
    if not options.self_test:
        report.add("self_test", "skipped", "health.preflight.self_test=false")
        return
    scripted = backend.scripted_self_test(device)
    if scripted is not None:
        result = SelfTestResult(bool(scripted.get("ok")), str(scripted.get("detail", "scripted by the fault timeline")))
    elif backend.name == "fake":
        report.add("self_test", "skipped", "fake backend: the timeline scripts no self_test")
        return
    else:
        import torch

        if not torch.cuda.is_available():
            report.add("self_test", "skipped", "torch sees no CUDA device")
            return
        result = run_self_test(f"cuda:{cuda_index or 0}", options.gemm_size, options.memory_test_mib)
    report.add("self_test", "ok" if result.ok else "fail", result.detail)


def _check_dcgm(report: PreflightReport, backend: HealthBackend, device: int, options: PreflightOptions) -> None:
    dcgmi = shutil.which("dcgmi")
    if not options.dcgm_diag:
        report.add("dcgm_diag", "skipped", "health.preflight.dcgm_diag=false")
    elif backend.name != "nvml":
        report.add("dcgm_diag", "skipped", f"{backend.name} backend")
    elif dcgmi is None:
        report.add("dcgm_diag", "skipped", "dcgmi not installed (optional: NVIDIA DCGM)")
    else:
        try:
            done = subprocess.run([dcgmi, "diag", "-r", "1", "-i", str(device)], capture_output=True, text=True,
                                  timeout=options.dcgm_timeout_s)
        except subprocess.TimeoutExpired:
            report.add("dcgm_diag", "fail", f"dcgmi diag -r 1 did not finish in {options.dcgm_timeout_s:g} s")
            return
        last = (done.stdout.strip().splitlines() or done.stderr.strip().splitlines() or [""])[-1]
        report.add("dcgm_diag", "ok" if done.returncode == 0 else "fail", f"dcgmi diag -r 1 exit {done.returncode}: {last}")
