"""Live Link Face CSV -> arkit52 curves on the audio's timeline.

The app writes ``Timecode,BlendshapeCount,<52 blendshapes>,<9 head/eye angles>``
with rows like ``19:55:16:26.689,61,...``. In the timecode ``26`` is the frame
within the second and ``.689`` a fraction of a frame that drifts slowly (the
phone's clock against the timecode clock); it is not milliseconds. The capture
rate comes from the file: the timecode's frame numbers give its rate, the row
spacing gives the capture rate.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lipsync.curves import Curves
from lipsync.prepare.problems import PrepareError
from lipsync.rigs import Rig

STANDARD_RATES = (24.0, 25.0, 30.0, 48.0, 50.0, 60.0, 120.0)
COUNT_COLUMNS = ("blendshapecount",)  # also written as BlendShapeCount by other tools
_TIMECODE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})[:;](\d{1,3})(\.\d+)?$")
_DAY = 24 * 3600.0


@dataclass
class LiveLinkTake:
    path: Path
    start: float  # seconds since midnight of the first row's timecode (timecode rate applied)
    times: np.ndarray  # [N] seconds from the first row, strictly increasing
    values: np.ndarray  # [N, len(rig)] blendshapes in the rig's channel order, in [0, 1]
    channels: tuple[str, ...]
    extras: np.ndarray | None  # [N, E] head/eye angles (signed) or None
    extra_names: tuple[str, ...]
    capture_fps: float
    timecode_rate: float
    dropped_frames: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (row, frames missing before it)
    duplicate_rows: list[int] = field(default_factory=list)  # 1-based file lines dropped as duplicates
    ignored_columns: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return float(self.times[-1]) + 1.0 / self.capture_fps


def parse_timecode(text: str, rate: float) -> tuple[int, int, int, float]:
    """``HH:MM:SS:FF.fff`` -> (hours, minutes, seconds, frame + fraction); raises ValueError."""
    m = _TIMECODE.match(text.strip())
    if not m:
        raise ValueError(f"timecode {text!r} is not HH:MM:SS:FF or HH:MM:SS:FF.fff")
    hours, minutes, seconds, frame = (int(g) for g in m.groups()[:4])
    fraction = float(m.group(5)) if m.group(5) else 0.0
    return hours, minutes, seconds, frame + fraction


def timecode_seconds(text: str, rate: float) -> float:
    hours, minutes, seconds, frames = parse_timecode(text, rate)
    return hours * 3600 + minutes * 60 + seconds + frames / rate


def _snap_rate(rate: float) -> float:
    best = min(STANDARD_RATES, key=lambda r: abs(r - rate))
    return best if abs(best - rate) / best < 0.03 else round(rate, 3)


def read_livelink_csv(path: str | Path, rig: Rig, capture_fps: float | None = None, keep_extras: bool = True) -> LiveLinkTake:
    path = Path(path)
    if rig.livelink_columns is None:
        raise PrepareError(path, f"rig {rig.name!r} has no Live Link Face columns", "use --rig arkit52")
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError) as e:
        raise PrepareError(path, f"cannot read ({e})", "give a Live Link Face CSV (UTF-8 text)") from e
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 3:
        raise PrepareError(path, f"has {max(0, len(rows) - 1)} data rows", "record a take of at least a few frames")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2 or header[0].lower() != "timecode" or header[1].lower() not in COUNT_COLUMNS:
        raise PrepareError(
            path,
            f"header starts {','.join(header[:2])!r}, not 'Timecode,BlendshapeCount'",
            "give the CSV exactly as Live Link Face exports it",
        )
    blend_index, extra_index, ignored = _map_columns(path, header, rig, keep_extras)
    stamps, table = _parse_rows(path, rows, header)

    rate = _timecode_rate(path, stamps, capture_fps)
    seconds = np.array([timecode_seconds(s, rate) for s in stamps])
    seconds = np.where(seconds < seconds[0] - _DAY / 2, seconds + _DAY, seconds)  # take running past midnight
    steps = np.diff(seconds)
    positive = steps[steps > 0]
    if positive.size == 0:
        raise PrepareError(path, "every row has the same timecode", "export the take again")
    fps = float(capture_fps) if capture_fps else _snap_rate(1.0 / float(np.median(positive)))

    # Frame slots on the capture clock: a step of 2+ slots is dropped frames, 0 a duplicate.
    slots = np.round((seconds - seconds[0]) * fps).astype(np.int64)
    slot_steps = np.diff(slots)
    backwards = np.flatnonzero(slot_steps < 0)
    if backwards.size:
        row = int(backwards[0]) + 3  # file line: header is line 1, first data row line 2
        raise PrepareError(
            path, f"timecode goes backwards at line {row} ({stamps[row - 3]} -> {stamps[row - 2]})",
            "timecodes must increase; split the file into takes or re-export it",
        )
    keep = np.concatenate([[True], slot_steps > 0])
    duplicates = [int(i) + 2 for i in np.flatnonzero(~keep)]
    gaps = [(int(i) + 3, int(s) - 1) for i, s in zip(np.flatnonzero(slot_steps > 1), slot_steps[slot_steps > 1])]

    values = table[keep][:, blend_index]
    if not np.all(np.isfinite(values)):
        raise PrepareError(path, "blendshape values contain NaN or infinity", "re-export the take")
    extras = table[keep][:, extra_index] if extra_index else None
    return LiveLinkTake(
        path=path,
        start=float(seconds[0]),
        times=seconds[keep] - seconds[0],
        values=np.clip(values, 0.0, 1.0).astype(np.float32),
        channels=rig.channels,
        extras=extras.astype(np.float32) if extras is not None else None,
        extra_names=tuple(header[i] for i in extra_index),
        capture_fps=fps,
        timecode_rate=rate,
        dropped_frames=sum(n for _, n in gaps),
        gaps=gaps,
        duplicate_rows=duplicates,
        ignored_columns=ignored,
    )


def _map_columns(path: Path, header: list[str], rig: Rig, keep_extras: bool) -> tuple[list[int], list[int], tuple[str, ...]]:
    """Column index of each rig channel, and of the extras.

    Live Link names are the ARKit names capitalised (``JawOpen`` for ``jawOpen``)
    in the app's own order, so columns are matched by name in any case, never
    by position.
    """
    where = {name.lower(): i for i, name in enumerate(header)}
    by_lower = {name.lower(): name for name in rig.livelink_columns}
    blend_index, missing = [], []
    for channel in rig.channels:
        i = where.get(channel.lower())
        if i is None:
            missing.append(by_lower.get(channel.lower(), channel))
        else:
            blend_index.append(i)
    known = {n.lower() for n in (*rig.livelink_columns, *rig.channels, *rig.livelink_extra_columns)} | {"timecode", *COUNT_COLUMNS}
    unknown = tuple(h for h in header if h.lower() not in known)
    if missing:
        hint = f"; unexpected columns: {', '.join(unknown[:5])}" if unknown else ""
        raise PrepareError(
            path,
            f"missing {len(missing)} blendshape column(s): {', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}{hint}",
            "columns must use Live Link Face names (EyeBlinkLeft ... TongueOut)",
        )
    extra_index = [where[n.lower()] for n in rig.livelink_extra_columns if n.lower() in where] if keep_extras else []
    return blend_index, extra_index, unknown


def _parse_rows(path: Path, rows: list[list[str]], header: list[str]) -> tuple[list[str], np.ndarray]:
    stamps, numbers = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise PrepareError(path, f"line {line} has {len(row)} fields, the header {len(header)}", "re-export the take")
        try:
            numbers.append([float(x) for x in row[1:]])
        except ValueError:
            raise PrepareError(path, f"line {line} has a non-numeric value", "re-export the take") from None
        stamps.append(row[0].strip())
    for line, stamp in enumerate(stamps, start=2):
        if not _TIMECODE.match(stamp):
            raise PrepareError(path, f"line {line}: timecode {stamp!r} is not HH:MM:SS:FF.fff", "re-export the take")
    table = np.zeros((len(numbers), len(header)), dtype=np.float64)
    table[:, 1:] = np.array(numbers, dtype=np.float64)
    return stamps, table


def _timecode_rate(path: Path, stamps: list[str], capture_fps: float | None) -> float:
    """Frames per second of the timecode itself: the highest frame number seen, once the take wraps a second."""
    parsed = [parse_timecode(s, 1.0) for s in stamps]
    frames = [int(p[3]) for p in parsed]
    wrapped = any(b[2] != a[2] for a, b in zip(parsed, parsed[1:]))
    if not wrapped or max(frames) < 20:
        if capture_fps:
            return float(capture_fps)
        raise PrepareError(
            path, "take is too short to read its frame rate from the timecode (it never passes a whole second)",
            "pass the capture rate with --capture-fps (60 for an iPhone at default settings)",
        )
    return next(r for r in STANDARD_RATES if r > max(frames))


def take_to_curves(
    take: LiveLinkTake, fps: float | None = None, offset: float = 0.0, n_frames: int | None = None
) -> tuple[Curves, Curves | None]:
    """Curves at ``fps`` where frame i is audio time i / fps; the take's first row is at audio time ``offset``.

    Dropped frames are bridged by linear interpolation; before the first row and
    after the last the nearest row is held.
    """
    fps = float(fps or take.capture_fps)
    if n_frames is None:
        n_frames = round((offset + take.duration) * fps)
    capture_time = np.arange(n_frames) / fps - offset

    def sample(table: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(capture_time, take.times, table[:, c]) for c in range(table.shape[1])], axis=1)

    curves = Curves(np.clip(sample(take.values), 0, 1).astype(np.float32).reshape(n_frames, -1), take.channels, fps)
    extras = None
    if take.extras is not None and take.extras.shape[1]:
        extras = Curves(sample(take.extras).astype(np.float32).reshape(n_frames, -1), take.extra_names, fps)
    return curves, extras


def prepare_livelink(
    input_dir: str | Path,
    out: str | Path,
    *,
    rig: str = "arkit52",
    fps: float | None = None,
    capture_fps: float | None = None,
    offset: float = 0.0,
    audio_start_timecode: str | None = None,
    extras: str = "keep",
    fit_to_audio: bool = False,
    speaker: str | None = None,
    overwrite: bool = False,
    skip_bad: bool = False,
    copy_audio: bool = True,
    val_fraction: float = 0.0,
    print_report: bool = True,
) -> dict:
    """Every ``*.csv`` under ``input_dir`` with its audio (same name) -> an arkit52 corpus.

    The take's first row is at audio time ``offset`` (0: audio and capture
    started together, as in the app's own recordings), or, given the audio's
    start timecode, wherever the timecodes put it. Curves come out at ``fps``
    (default: the capture rate).
    """
    from lipsync.prepare.build import PreparedClip, audio_seconds, build_corpus, check_lengths, find_inputs
    from lipsync.rigs import load_rig

    if extras not in ("keep", "drop"):
        raise ValueError(f"extras must be 'keep' or 'drop', got {extras!r}")
    the_rig = load_rig(rig)
    clips, problems = find_inputs(input_dir, (".csv",), speaker, strip_suffixes=("_iPhone",))

    def convert(clip) -> PreparedClip:
        take = read_livelink_csv(clip.source, the_rig, capture_fps, keep_extras=extras == "keep")
        start = offset
        if audio_start_timecode:
            try:
                start = take.start - timecode_seconds(audio_start_timecode, take.timecode_rate)
            except ValueError as e:
                raise PrepareError(clip.source, str(e), "write the audio start as HH:MM:SS:FF") from None
        rate = float(fps or take.capture_fps)
        audio_s = audio_seconds(clip.audio)
        if not fit_to_audio:
            check_lengths(clip.audio, audio_s, start + take.duration, rate, "face capture")
        curves, angles = take_to_curves(take, rate, start, n_frames=round(audio_s * rate))
        flags = []
        if take.dropped_frames:
            longest = max(n for _, n in take.gaps)
            flags.append(f"{take.dropped_frames} dropped frame(s) in {len(take.gaps)} gap(s), longest {longest}; bridged by interpolation")
        if take.duplicate_rows:
            flags.append(f"{len(take.duplicate_rows)} duplicate timecode(s) (first at line {take.duplicate_rows[0]}); kept the first row of each")
        notes = {
            "capture_fps": take.capture_fps, "timecode_rate": take.timecode_rate, "fps": rate,
            "offset_s": round(start, 4), "dropped_frames": take.dropped_frames, "gaps": take.gaps[:50],
            "duplicate_lines": take.duplicate_rows[:50], "ignored_columns": list(take.ignored_columns),
        }
        return PreparedClip(curves=curves, extras=angles, notes=notes, flags=flags)

    return build_corpus(
        out, clips, convert, rig=the_rig, fps=fps or capture_fps, source="livelink",
        options={"rig": rig, "fps": fps, "capture_fps": capture_fps, "offset": offset,
                 "audio_start_timecode": audio_start_timecode, "extras": extras, "fit_to_audio": fit_to_audio},
        input_problems=problems, overwrite=overwrite, skip_bad=skip_bad, copy_audio=copy_audio,
        val_fraction=val_fraction, print_report=print_report,
    )
