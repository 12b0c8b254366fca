"""Validation report for any corpus folder: what is in it and what looks wrong.

Counts (clips, minutes, speakers, splits), per-channel statistics (a channel
never above 0.2 carries no signal to learn and is flagged), audio/curve length
mismatches, sample-rate and clipping issues, phone and viseme coverage, and
every problem the training-time validator would refuse. Printed as a table,
written as JSON, plotted as channel distributions.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from lipsync.atomic import atomic_write
from lipsync.audio import SAMPLE_RATE
from lipsync.curves import CurvesError
from lipsync.curves.csv import read_curves_csv
from lipsync.data.alignment import AlignmentError, read_alignment_tsv
from lipsync.data.manifest import manifest_path, scan_manifest
from lipsync.data.validate import LENGTH_TOLERANCE_FRAMES, validate_corpus
from lipsync.rigs import BUILTIN_RIGS, VISEMES, Rig, RigError, load_rig
from lipsync.rigs.coarticulation import phones_to_curves
from lipsync.rigs.phonemes import UnknownPhoneError, detect_phoneset, visemes_for

ACTIVE_LEVEL = 0.2  # a channel that never exceeds this is flagged as (nearly) unused
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped
CLIPPED_FRACTION = 1e-3  # flag a file when more than this share of samples is clipped
MAX_PLOT_FRAMES = 200_000


def corpus_report(root: str | Path, rig: Rig | str | None = None, fps: float | None = None) -> dict:
    """Everything the report shows, as plain JSON-able data (plus ``_frames`` for the plot)."""
    root = manifest_path(root).parent
    entries, line_problems = scan_manifest(root)
    rig = _choose_rig(entries, rig)
    fps = fps or _first_curves_fps(entries) or 30.0

    durations: list[float] = []
    speakers: dict[str, list[float]] = defaultdict(list)
    splits: Counter = Counter()
    rates: Counter = Counter()
    low_rate, clipped, mismatched = [], [], []
    phone_counts: Counter = Counter()
    viseme_seconds: Counter = Counter()
    frames: list[np.ndarray] = []
    for entry in entries:
        audio = _audio_facts(entry.audio)
        if audio is None:
            continue  # the validator's problem list says why
        duration, rate, clipped_share = audio
        durations.append(duration)
        speakers[entry.speaker or "(none)"].append(duration)
        splits[entry.split or "(none)"] += 1
        rates[str(rate)] += 1
        if rate < SAMPLE_RATE:
            low_rate.append({"id": entry.id, "sample_rate": rate})
        if clipped_share > CLIPPED_FRACTION:
            clipped.append({"id": entry.id, "clipped_percent": round(100 * clipped_share, 3)})
        phones = _phones(entry.alignment)
        for p in phones or ():
            phone_counts[p.label or "(empty)"] += 1
        if phones:
            _add_viseme_time(phones, viseme_seconds)
        values, curve_seconds = _curves(entry, phones, rig, fps, duration)
        if values is not None:
            frames.append(values)
            if abs(curve_seconds - duration) * fps > LENGTH_TOLERANCE_FRAMES:
                mismatched.append({"id": entry.id, "audio_s": round(duration, 3), "curves_s": round(curve_seconds, 3)})

    all_frames = np.concatenate(frames) if frames else np.zeros((0, len(rig)), np.float32)
    problems = [str(p) for p in line_problems] + [
        str(p) for p in validate_corpus(root, rig, fps) if not any(str(p) == str(q) for q in line_problems)
    ]
    report = {
        "corpus": str(root),
        "rig": rig.name,
        "fps": fps,
        "clips": len(entries),
        "minutes": round(sum(durations) / 60, 3),
        "speakers": {s: {"clips": len(d), "minutes": round(sum(d) / 60, 3)} for s, d in sorted(speakers.items())},
        "splits": dict(sorted(splits.items())),
        "channels": _channel_stats(all_frames, rig),
        "length_mismatches": mismatched,
        "audio": {"sample_rates": dict(rates), "below_16k": low_rate, "clipped": clipped},
        "phonemes": _phoneme_coverage(phone_counts, viseme_seconds),
        "problems": problems,
    }
    report["_frames"] = all_frames[:: max(1, len(all_frames) // MAX_PLOT_FRAMES)]
    return report


def _choose_rig(entries, rig: Rig | str | None) -> Rig:
    if isinstance(rig, Rig):
        return rig
    if rig:
        return load_rig(rig)
    # The rig whose channels the first curves CSV has; phone-only corpora default to oculus15.
    for entry in entries:
        if entry.curves is not None and entry.curves.is_file():
            try:
                channels = set(read_curves_csv(entry.curves).channels)
            except CurvesError:
                continue
            for name in BUILTIN_RIGS:
                if set(load_rig(name).channels) == channels:
                    return load_rig(name)
            raise RigError(f"{entry.curves}: channels match no built-in rig; pass --rig with the rig's YAML file")
    return load_rig("oculus15")


def _first_curves_fps(entries) -> float | None:
    for entry in entries:
        if entry.curves is not None and entry.curves.is_file():
            try:
                return read_curves_csv(entry.curves).fps
            except CurvesError:
                continue
    return None


def _audio_facts(path: Path) -> tuple[float, int, float] | None:
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError):
        return None
    if data.shape[0] == 0:
        return None
    clipped = float(np.mean(np.abs(data) >= CLIP_LEVEL))
    return data.shape[0] / rate, int(rate), clipped


def _phones(path: Path | None):
    if path is None or not path.is_file():
        return None
    try:
        return read_alignment_tsv(path)
    except AlignmentError:
        return None


def _add_viseme_time(phones, seconds: Counter) -> None:
    phoneset = detect_phoneset([p.label for p in phones])
    for p in phones:
        try:
            visemes = visemes_for(p.label, phoneset)
        except UnknownPhoneError:
            continue
        for v in visemes:
            seconds[v if v in VISEMES else "(borrowed)"] += (p.end - p.start) / len(visemes)


def _curves(entry, phones, rig: Rig, fps: float, duration: float) -> tuple[np.ndarray | None, float]:
    if entry.curves is not None and entry.curves.is_file():
        try:
            curves = read_curves_csv(entry.curves)
        except CurvesError:
            return None, 0.0
        if set(curves.channels) != set(rig.channels):
            return None, curves.duration
        order = [curves.channels.index(c) for c in rig.channels]
        return curves.values[:, order], curves.duration
    if phones and rig.from_oculus15 is not None:
        try:
            values = phones_to_curves(phones, rig, fps, n_frames=round(duration * fps))
        except UnknownPhoneError:
            return None, 0.0
        return values, max(p.end for p in phones)
    return None, 0.0


def _channel_stats(frames: np.ndarray, rig: Rig) -> dict:
    stats = {}
    for c, name in enumerate(rig.channels):
        column = frames[:, c] if len(frames) else np.zeros(1, np.float32)
        stats[name] = {
            "mean": round(float(column.mean()), 4),
            "p95": round(float(np.percentile(column, 95)), 4),
            "max": round(float(column.max()), 4),
            "coverage": round(float(np.mean(column > ACTIVE_LEVEL)), 4),  # share of frames above 0.2
            "flagged": bool(column.max() <= ACTIVE_LEVEL),
        }
    return stats


def _phoneme_coverage(phones: Counter, visemes: Counter) -> dict:
    if not phones:
        return {"phones": {}, "viseme_seconds": {}, "visemes_missing": []}
    return {
        "phones": dict(phones.most_common()),
        "viseme_seconds": {v: round(visemes.get(v, 0.0), 3) for v in VISEMES},
        "visemes_missing": [v for v in VISEMES if v != "sil" and visemes.get(v, 0.0) == 0.0],
    }


def format_report(report: dict) -> str:
    """The report as a plain-text table for the terminal."""
    lines = [
        f"corpus   {report['corpus']}",
        f"rig      {report['rig']} at {report['fps']:g} fps",
        f"clips    {report['clips']}   minutes {report['minutes']:.2f}   speakers {len(report['speakers'])}",
        "splits   " + "  ".join(f"{k} {v}" for k, v in report["splits"].items()),
        "",
        f"{'channel':<22}{'mean':>8}{'p95':>8}{'max':>8}{'>0.2':>8}",
    ]
    for name, s in report["channels"].items():
        flag = "  FLAG never above 0.2" if s["flagged"] else ""
        lines.append(f"{name:<22}{s['mean']:>8.3f}{s['p95']:>8.3f}{s['max']:>8.3f}{100 * s['coverage']:>7.1f}%{flag}")
    audio = report["audio"]
    lines += [
        "",
        "sample rates  " + "  ".join(f"{k} Hz: {v}" for k, v in audio["sample_rates"].items()),
        f"below 16 kHz  {len(audio['below_16k'])}   clipped  {len(audio['clipped'])}   "
        f"length mismatches  {len(report['length_mismatches'])}",
    ]
    for m in report["length_mismatches"][:10]:
        lines.append(f"  {m['id']}: audio {m['audio_s']} s, curves {m['curves_s']} s")
    phon = report["phonemes"]
    if phon["phones"]:
        lines.append(f"phones   {len(phon['phones'])} labels; visemes never seen: {', '.join(phon['visemes_missing']) or 'none'}")
    lines.append(f"problems {len(report['problems'])}")
    lines += [f"  {p}" for p in report["problems"][:20]]
    return "\n".join(lines)


def write_report(report: dict, json_path: str | Path, plot_path: str | Path | None = None) -> None:
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    with atomic_write(json_path, "w", encoding="utf-8") as f:
        json.dump(public, f, indent=2, ensure_ascii=False)
        f.write("\n")
    if plot_path is not None:
        plot_channels(report, plot_path)


def plot_channels(report: dict, path: str | Path) -> None:
    """Per channel: share of frames above 0.2, and how its active frames (> 0.01) are distributed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = report["_frames"]
    names = list(report["channels"])
    rows = range(1, len(names) + 1)
    fig, (cover, spread) = plt.subplots(1, 2, figsize=(10, 1.5 + 0.22 * len(names)), sharey=True)
    coverage = [100 * s["coverage"] for s in report["channels"].values()]
    colours = ["tab:red" if s["flagged"] else "tab:blue" for s in report["channels"].values()]
    cover.barh(list(rows), coverage, color=colours)
    cover.set_xlabel("% of frames above 0.2 (red: never above 0.2)")
    active = [frames[:, c][frames[:, c] > 0.01] if len(frames) else np.zeros(0) for c in range(len(names))]
    spread.boxplot([a if len(a) else np.zeros(1) for a in active], orientation="horizontal", whis=(5, 95), showfliers=False)
    spread.axvline(ACTIVE_LEVEL, color="grey", linestyle="--", linewidth=0.8)
    spread.set_xlim(0, 1)
    spread.set_xlabel("value where active (> 0.01): quartiles, 5th-95th percentile")
    cover.set_yticks(list(rows), names, fontsize=7)
    cover.invert_yaxis()
    fig.suptitle(f"{Path(report['corpus']).name}: {report['clips']} clips, {report['minutes']:.1f} min, rig {report['rig']}")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
