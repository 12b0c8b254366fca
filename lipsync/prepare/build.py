"""The loop every source shares: inputs -> clips -> staged corpus -> report -> rename into place.

A source module finds its inputs (``find_inputs``) and converts one clip at a
time; a clip that cannot be converted raises ``PrepareError``. Unless told to
skip bad clips, one bad clip means nothing is written and every problem is
listed, so a user fixes them all in one go.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from lipsync.audio import AUDIO_EXTENSIONS, AudioError, audio_duration
from lipsync.curves import Curves
from lipsync.prepare.corpus_writer import CorpusWriter, assign_split
from lipsync.prepare.problems import CorpusRejected, InputProblem, PrepareError
from lipsync.prepare.report import corpus_report, format_report, write_report
from lipsync.rigs import Rig
from lipsync.rigs.coarticulation import Phone

LENGTH_TOLERANCE_FRAMES = 2


@dataclass(frozen=True)
class SourceClip:
    id: str
    audio: Path
    source: Path  # the capture, alignment or transcript file
    speaker: str | None = None


@dataclass
class PreparedClip:
    curves: Curves | None
    phones: Sequence[Phone] | None = None
    extras: Curves | None = None
    notes: dict = field(default_factory=dict)  # per-clip facts for prepare_log.json
    flags: list[str] = field(default_factory=list)  # doubts worth a human look, listed in the report


def find_inputs(
    folder: str | Path, suffixes: Sequence[str], speaker: str | None = None, strip_suffixes: Sequence[str] = ()
) -> tuple[list[SourceClip], list[InputProblem]]:
    """Every source file under ``folder`` paired with the audio file of the same name beside it.

    ``speaker="folder"`` takes each clip's speaker from its first sub-folder.
    ``strip_suffixes`` are name endings the source has and the audio does not
    (Live Link Face's ``_iPhone``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PrepareError(folder, "is not a folder", "pass the folder that holds the inputs")
    wanted = tuple(s.lower() for s in suffixes)
    clips, problems = [], []
    for source in sorted(p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(wanted)):
        stems = [source.stem] + [source.stem[: -len(s)] for s in strip_suffixes if source.stem.endswith(s)]
        audio = next((source.with_name(st + ext) for st in stems for ext in AUDIO_EXTENSIONS if source.with_name(st + ext).is_file()), None)
        if audio is None:
            problems.append(InputProblem(str(source), "no audio file of the same name beside it",
                                         f"put {stems[-1]}.wav (or .flac/.ogg/.mp3) next to it"))
            continue
        rel = audio.relative_to(folder).with_suffix("")
        twin = next((c for c in clips if c.id == rel.as_posix()), None)
        if twin is not None:
            problems.append(InputProblem(str(source), f"a second input for {audio.name} (first: {twin.source.name})",
                                         "keep one input per audio file"))
            continue
        who = (rel.parts[0] if len(rel.parts) > 1 else None) if speaker == "folder" else speaker
        clips.append(SourceClip(rel.as_posix(), audio, source, who))
    if not clips and not problems:
        raise PrepareError(folder, f"holds no {'/'.join(suffixes)} files", "point at the folder with the inputs")
    return clips, problems


def audio_seconds(path: Path) -> float:
    try:
        return audio_duration(path)
    except AudioError as e:
        raise PrepareError(path, "not readable audio", "re-export it as wav, flac, ogg or mp3") from e


def check_lengths(audio: Path, audio_s: float, targets_s: float, fps: float, what: str) -> None:
    """Audio and targets must agree within two frames, the rule training applies."""
    gap = targets_s - audio_s
    if gap * fps > LENGTH_TOLERANCE_FRAMES:
        raise PrepareError(audio, f"audio ({audio_s:.3f} s) is shorter than its {what} ({targets_s:.3f} s)",
                           "pair the right files, or pass --fit-to-audio to cut the targets to the audio")
    if -gap * fps > LENGTH_TOLERANCE_FRAMES:
        raise PrepareError(audio, f"{what} ({targets_s:.3f} s) ends {-gap:.3f} s before the audio ({audio_s:.3f} s)",
                           "pair the right files, or pass --fit-to-audio to hold the last frame to the audio's end")


def build_corpus(
    out: str | Path,
    clips: Iterable[SourceClip],
    convert: Callable[[SourceClip], PreparedClip],
    *,
    rig: Rig,
    fps: float | None,
    source: str,
    options: dict,
    input_problems: Sequence[InputProblem] = (),
    overwrite: bool = False,
    skip_bad: bool = False,
    copy_audio: bool = True,
    val_fraction: float = 0.0,
    print_report: bool = True,
) -> dict:
    """Convert every clip, write the corpus with its report, and return a summary."""
    problems = list(input_problems)
    skipped: list[InputProblem] = []  # left out as the user asked (e.g. words not in the dictionary)
    log: dict[str, dict] = {}
    flagged: dict[str, list[str]] = {}
    with CorpusWriter(out, overwrite=overwrite, copy_audio=copy_audio) as writer:
        for clip in clips:
            try:
                prepared = convert(clip)
            except PrepareError as e:
                (skipped if getattr(e, "chosen_skip", False) else problems).append(e.detail)
                continue
            writer.add_clip(clip.id, clip.audio, prepared.curves, prepared.phones, prepared.extras,
                            clip.speaker, assign_split(clip.id, val_fraction))
            log[clip.id] = {"source": str(clip.source), "audio": str(clip.audio), **prepared.notes}
            if prepared.flags:
                flagged[clip.id] = prepared.flags
        if problems and not skip_bad:
            raise CorpusRejected(problems)
        if not writer.entries:
            raise CorpusRejected(problems + skipped or [InputProblem(str(out), "no clips to write", "give at least one input")])
        writer.write_manifest()
        report = corpus_report(writer.stage, rig, fps)
        report["corpus"] = str(writer.out)
        report["prepare"] = {"source": source, "skipped": [str(p) for p in problems + skipped], "flagged": flagged}
        write_report(report, writer.stage / "report.json", writer.stage / "report.png")
        writer.write_json("prepare_log.json", {"source": source, "options": options, "clips": log,
                                              "skipped": [p.__dict__ for p in problems + skipped], "flagged": flagged})
        writer.commit()
    if print_report:
        print(format_report(report))
        for clip_id, reasons in flagged.items():
            print(f"flagged {clip_id}: {'; '.join(reasons)}")
        for p in problems + skipped:
            print(f"skipped {p}")
    return {"out": str(writer.out), "clips": len(writer.entries), "skipped": [str(p) for p in problems + skipped],
            "flagged": flagged, "report": {k: v for k, v in report.items() if not k.startswith("_")}}
