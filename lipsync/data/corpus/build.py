"""Build a synthetic speech corpus with espeak-ng: audio, phone alignments and viseme curves.

Every clip is a composed sentence (or two) spoken by a voice drawn from the
seed: one of espeak-ng's English accents, a variant (``m1``..``f5``,
``klatt``.., named voices), a rate, a pitch and a pitch range. The phone
timing is the synthesiser's own, with stop closures moved to the stop
(``espeak.move_stops_over_closures``), so the curves are exact targets.

Splits are speaker-disjoint: validation and test clips use variants that
training never hears, so their scores measure generalisation to new voices.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from lipsync.atomic import atomic_write
from lipsync.audio import SAMPLE_RATE, resample
from lipsync.curves import Curves
from lipsync.curves.csv import write_curves_csv
from lipsync.data.alignment import write_alignment_tsv
from lipsync.data.corpus import festival, flite, jtalk, mbrola
from lipsync.data.corpus.engines import (
    BLIND, DESCRIPTIONS, ENGINES, LICENCES, check_engines, phoneset_of, plan_engine, speak_all,
)  # fmt: skip
from lipsync.data.corpus.espeak import PAUSE, Voice, synthesise
from lipsync.data.corpus.sentences import compose_text
from lipsync.data.manifest import RESERVED_FIELD
from lipsync.rigs import load_rig
from lipsync.rigs.coarticulation import Phone, phones_to_curves
from lipsync.rigs.phonemes import NEXT, visemes_for

ENGLISH_VOICES = (
    "en", "en-us", "en-us-nyc", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)  # fmt: skip
# Variants that still sound like a person (robot and effect voices left out).
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "whisper", "croak",
    "adam", "Andy", "Annie", "anika", "aunty", "belinda", "benjamin", "caleb", "david", "edward",
    "grandma", "grandpa", "john", "linda", "max", "michel", "norbert", "paul", "quincy", "rob",
    "robert", "shelby", "steph", "travis", "victor", "zac",
)  # fmt: skip
HELD_OUT_FRACTION = 0.1  # of clips, and of variants, for each of val and test
SPLITS = ("train", "val", "test")
AUDIO_BITS = 13  # precision of the stored samples (see _write_flac)
MBROLA_NOTICE = "LICENSE-MBROLA.txt"  # written into any corpus holding MBROLA audio
ID_PREFIX = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ClipPlan:
    id: str
    split: str
    text: str
    voice: Voice
    lead_silence: float  # s of silence before the speech, as real recordings have
    tail_silence: float


def plan_corpus(n_clips: int, seed: int) -> list[ClipPlan]:
    """Every clip's text, voice and split, drawn from ``seed`` alone."""
    rng = random.Random(seed)
    variants = list(VARIANTS)
    rng.shuffle(variants)
    n_held = max(1, round(HELD_OUT_FRACTION * len(variants)))
    pools = {"val": variants[:n_held], "test": variants[n_held : 2 * n_held], "train": variants[2 * n_held :]}
    n_eval = max(1, round(HELD_OUT_FRACTION * n_clips)) if n_clips >= 3 else 0
    splits = ["val"] * n_eval + ["test"] * n_eval + ["train"] * (n_clips - 2 * n_eval)
    rng.shuffle(splits)
    plans = []
    for i, split in enumerate(splits):
        voice = Voice(
            name=f"{rng.choice(ENGLISH_VOICES)}+{rng.choice(pools[split])}",
            rate=rng.randint(130, 270),
            pitch=rng.randint(20, 80),
            pitch_range=rng.randint(20, 90),
        )
        text = compose_text(rng, n_sentences=1)
        plans.append(ClipPlan(f"clip{i:05d}", split, text, voice, rng.uniform(0.05, 0.2), rng.uniform(0.05, 0.2)))
    return plans


def make_corpus(
    out_dir: str | Path,
    n_clips: int | dict[str, int],
    seed: int,
    fps: float = 30,
    rig: str = "oculus15",
    overwrite: bool = False,
    progress: bool = True,
    engines: list[str] | None = None,
    mbrola_voices: tuple[str, ...] = mbrola.VOICES,
    festival_voices: tuple[str, ...] = festival.DEFAULT_VOICES,
    flite_voices: tuple[str, ...] = flite.VOICES,
    train_only: bool = False,
    id_prefix: str = "",
    test_only: bool = False,
) -> dict:
    """Write the corpus folder and return its statistics (also in ``stats.json``).

    ``engines=None`` makes the espeak-only corpus (the demo's layout, ids
    ``clipNNNNN``). A list of engines (``engines.ENGINES``) makes a
    multi-engine corpus: ``n_clips`` is then a count per engine (one int for
    all, or a dict), ids are ``<engine>NNNNN``, the manifest has an
    ``engine`` field and ``stats.json`` has statistics per engine.

    ``train_only`` keeps only the clips the plan puts in train (the same clips
    as the full build's train split) and ``id_prefix`` starts every id and
    file name: a corpus that adds training data to another through
    ``data.root=[a,b]``, whose ids must not collide with the other's.
    ``test_only`` keeps the test split alone: built with more clips, a larger
    test of the same held-out speakers, e.g. for ``leave_one_out.py --test-also``.
    """
    if engines is not None:
        return make_multi_engine_corpus(out_dir, n_clips, seed, engines, fps, rig, overwrite, progress,
                                        mbrola_voices, festival_voices, flite_voices, train_only, id_prefix,
                                        test_only)  # fmt: skip
    if train_only or test_only or id_prefix:
        raise ValueError("--train-only, --test-only and --id-prefix are for multi-engine corpora: "
                         "add --engines (e.g. --engines espeak)")
    out = Path(out_dir)
    _prepare_folder(out, overwrite)
    target_rig = load_rig(rig)
    records, phone_counts, viseme_counts = [], Counter(), Counter()
    seconds, speech_seconds = Counter(), Counter()
    for plan in tqdm(plan_corpus(n_clips, seed), desc="clips", unit="clip", disable=not progress):
        audio, phones = _speak(plan)
        duration = len(audio) / SAMPLE_RATE
        n_frames = round(duration * fps)
        curves = phones_to_curves(phones, target_rig, fps, n_frames=n_frames, phoneset="espeak")
        rel = {
            "audio": f"audio/{plan.id}.flac",
            "alignment": f"alignments/{plan.id}.tsv",
            "curves": f"curves/{plan.id}.csv",
        }
        _write_flac(out / rel["audio"], audio)
        write_alignment_tsv(phones, out / rel["alignment"])
        write_curves_csv(Curves(curves, target_rig.channels, fps), out / rel["curves"], decimals=3)
        records.append({"id": plan.id, **rel, "speaker": plan.voice.name, "split": plan.split,
                        "text": plan.text, "rate": plan.voice.rate, "pitch": plan.voice.pitch,
                        "range": plan.voice.pitch_range})  # fmt: skip
        seconds[plan.split] += duration
        speech_seconds[plan.split] += duration - plan.lead_silence - plan.tail_silence
        for phone in phones:
            phone_counts[phone.label] += 1
            viseme_counts.update(v for v in visemes_for(phone.label, "espeak") if v != NEXT[0])  # /h/ borrows
    stats = _stats(records, seconds, speech_seconds, phone_counts, viseme_counts, seed, fps)
    with atomic_write(out / "stats.json", "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1)
        f.write("\n")
    # The manifest goes last: a folder without one is visibly unfinished.
    with atomic_write(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return stats


def make_multi_engine_corpus(
    out_dir: str | Path,
    n_clips: int | dict[str, int],
    seed: int,
    engines: list[str],
    fps: float = 30,
    rig: str = "oculus15",
    overwrite: bool = False,
    progress: bool = True,
    mbrola_voices: tuple[str, ...] = mbrola.VOICES,
    festival_voices: tuple[str, ...] = festival.DEFAULT_VOICES,
    flite_voices: tuple[str, ...] = flite.VOICES,
    train_only: bool = False,
    id_prefix: str = "",
    test_only: bool = False,
) -> dict:
    """The corpus from several engines; see ``make_corpus``. Checks every engine before writing anything."""
    counts = n_clips if isinstance(n_clips, dict) else {e: n_clips for e in engines}
    if set(counts) != set(engines):
        raise ValueError(f"clip counts are for {sorted(counts)} but the engines are {engines}; give one count per engine")
    if id_prefix and not ID_PREFIX.fullmatch(id_prefix):
        raise ValueError(
            f"--id-prefix {id_prefix!r}: use letters, digits, '_' and '-' only (it starts every clip id and file name)"
        )
    if train_only and test_only:
        raise ValueError("--train-only and --test-only keep different splits: give one of them")
    if train_only and BLIND in engines:
        raise ValueError(f"the blind test ({BLIND}) is test-only: build it without --train-only")
    only = "train" if train_only else "test" if test_only else None
    check_engines(engines, tuple(mbrola_voices), tuple(festival_voices), tuple(flite_voices))
    voices = tuple(mbrola_voices), tuple(festival_voices), tuple(flite_voices)
    plans = [replace(c, id=id_prefix + c.id) for e in engines for c in plan_engine(e, counts[e], seed, *voices)]
    for e in engines:
        if only and not any(c.split == only and c.engine == e for c in plans):
            raise ValueError(f"--{only}-only: {counts[e]} {e} clips put none in {only}; give {e} at least 3 clips")
    out = Path(out_dir)
    _prepare_folder(out, overwrite)
    target_rig = load_rig(rig)
    records: dict[str, list] = {e: [] for e in engines}
    tallies = {e: (Counter(), Counter(), Counter(), Counter()) for e in engines}  # seconds, speech, phones, visemes
    phonesets: dict[str, set] = {e: set() for e in engines}
    spoken = speak_all(plans)
    for clip, audio, phones in tqdm(spoken, total=len(plans), desc="clips", unit="clip", disable=not progress):
        if only and clip.split != only:
            continue  # spoken all the same: Festival's Czech voices sound a little different after other Czech texts
        phoneset = phoneset_of(clip)
        phonesets[clip.engine].add(phoneset)
        duration = len(audio) / SAMPLE_RATE
        curves = phones_to_curves(phones, target_rig, fps, n_frames=round(duration * fps), phoneset=phoneset)
        rel = {"audio": f"audio/{clip.id}.flac", "alignment": f"alignments/{clip.id}.tsv", "curves": f"curves/{clip.id}.csv"}
        _write_flac(out / rel["audio"], audio)
        write_alignment_tsv(phones, out / rel["alignment"])
        write_curves_csv(Curves(curves, target_rig.channels, fps), out / rel["curves"], decimals=3)
        records[clip.engine].append({"id": clip.id, **rel, "engine": clip.engine, "speaker": clip.speaker,
                                     "split": clip.split, "text": clip.text, **_voice_fields(clip.voice),
                                     **({RESERVED_FIELD: True} if clip.engine == BLIND else {})})  # fmt: skip
        seconds, speech, phone_counts, viseme_counts = tallies[clip.engine]
        seconds[clip.split] += duration
        speech[clip.split] += duration - clip.lead_silence - clip.tail_silence
        for phone in phones:
            phone_counts[phone.label] += 1
            viseme_counts.update(v for v in visemes_for(phone.label, phoneset) if v != NEXT[0])
    per_engine = {}
    for e in engines:
        per_engine[e] = _stats(records[e], *tallies[e], seed, fps)
        per_engine[e]["engine"] = DESCRIPTIONS[e]
        per_engine[e]["phoneset"] = "+".join(sorted(phonesets[e]))
        per_engine[e]["licence"] = LICENCES[e]
    all_records = [r for e in engines for r in records[e]]
    stats = {
        "engines": per_engine,
        "seed": seed,
        "fps": fps,
        "sample_rate": SAMPLE_RATE,
        "clips": len(all_records),
        "minutes": round(sum(s["minutes"] for s in per_engine.values()), 2),
        "speech_minutes": round(sum(s["speech_minutes"] for s in per_engine.values()), 2),
    }
    if "mbrola" in engines:
        with atomic_write(out / MBROLA_NOTICE, "w", encoding="utf-8") as f:
            f.write(f"This corpus contains audio made with MBROLA voices ({', '.join(mbrola_voices)}): clips whose id "
                    f"starts with '{id_prefix}mbrola'.\n{mbrola.LICENCE_NOTE}\n")  # fmt: skip
    with atomic_write(out / "stats.json", "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1)
        f.write("\n")
    with atomic_write(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in all_records)
    return stats


def _voice_fields(voice) -> dict:
    if isinstance(voice, Voice):
        return {"rate": voice.rate, "pitch": voice.pitch, "range": voice.pitch_range}
    if isinstance(voice, mbrola.MbrolaVoice):
        return {"rate": voice.rate, "pitch": voice.pitch, "frequency_ratio": voice.frequency_ratio}
    if isinstance(voice, flite.FliteVoice):
        return {"stretch": voice.stretch, "timbre": voice.timbre}
    if isinstance(voice, jtalk.JTalkVoice):
        return {"speed": voice.speed, "all_pass": voice.all_pass, "half_tones": voice.half_tones}
    return {"stretch": voice.stretch, "f0_mean": voice.f0_mean, "f0_std": voice.f0_std}


def _prepare_folder(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out}: folder is not empty; choose a new folder, or pass --overwrite (overwrite=True) to replace it"
            )
        _remove_generated_files(out)


def _speak(plan: ClipPlan) -> tuple[np.ndarray, list[Phone]]:
    """16 kHz audio with silence around the speech, and phones covering all of it."""
    synth = synthesise(plan.text, plan.voice)
    speech = resample(synth.audio, synth.sample_rate, SAMPLE_RATE)
    lead, tail = round(plan.lead_silence * SAMPLE_RATE), round(plan.tail_silence * SAMPLE_RATE)
    audio = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    offset = lead / SAMPLE_RATE
    end = len(audio) / SAMPLE_RATE
    phones = [Phone(0.0, offset, PAUSE)]
    for p in synth.phones:
        phones.append(Phone(p.start + offset, min(p.end + offset, end), p.label))
    phones.append(Phone(phones[-1].end, end, PAUSE))
    return audio, _merge_pauses(phones)


def _merge_pauses(phones: list[Phone]) -> list[Phone]:
    merged: list[Phone] = []
    for p in phones:
        if p.end - p.start <= 0:
            continue
        if merged and p.label == PAUSE and merged[-1].label == PAUSE:
            merged[-1] = Phone(merged[-1].start, p.end, PAUSE)
        else:
            merged.append(p)
    return merged


def _write_flac(path: Path, audio: np.ndarray) -> None:
    """16-bit FLAC holding 13-bit samples, at the strongest compression.

    The demo corpus ships in the repo, so bytes count: FLAC stores the
    always-zero low bits for free, which saves ~28% against full 16-bit
    samples, and the rounding noise (about -83 dBFS) is far below anything
    a listener or a speech encoder notices.
    """
    step = 2.0 ** (1 - AUDIO_BITS)
    samples = np.clip(np.round(audio / step) * step, -1.0, 1.0 - step)
    with atomic_write(path, "wb") as f:
        sf.write(f, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=1.0)


def _stats(records, seconds, speech_seconds, phone_counts, viseme_counts, seed, fps) -> dict:
    by_split = {}
    for split in SPLITS:
        rows = [r for r in records if r["split"] == split]
        by_split[split] = {
            "clips": len(rows),
            "minutes": round(seconds[split] / 60, 2),
            "speech_minutes": round(speech_seconds[split] / 60, 2),
            "speakers": sorted({r["speaker"] for r in rows}),
            "variants": sorted({r["speaker"].split("+")[1] for r in rows}),
        }
    return {
        "engine": "espeak-ng (libespeak-ng phoneme events)",
        "seed": seed,
        "fps": fps,
        "sample_rate": SAMPLE_RATE,
        "clips": len(records),
        "minutes": round(sum(seconds.values()) / 60, 2),
        # Without the silence padded around each clip.
        "speech_minutes": round(sum(speech_seconds.values()) / 60, 2),
        "splits": by_split,
        "phone_counts": dict(phone_counts.most_common()),
        "viseme_counts": dict(viseme_counts.most_common()),
    }


def _remove_generated_files(out: Path) -> None:
    """Clear what an earlier run of this generator wrote (and nothing else)."""
    # An optional --id-prefix, then the builder's own id.
    generated = re.compile(rf"(?:{ID_PREFIX.pattern})?(?:{'|'.join(('clip', *ENGINES, BLIND))})\d+")
    for folder, suffix in (("audio", ".flac"), ("alignments", ".tsv"), ("curves", ".csv")):
        for path in (out / folder).glob("*" + suffix):
            if generated.fullmatch(path.stem):
                path.unlink()
    for name in ("manifest.jsonl", "stats.json", MBROLA_NOTICE):
        (out / name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Synthesise a lip-sync corpus (audio, alignments, curves) with espeak-ng, MBROLA, Festival, Flite and Open JTalk."
    )
    parser.add_argument("--out", required=True, help="corpus folder to create (must be empty unless --overwrite)")
    parser.add_argument("--clips", default="320",
                        help="number of clips; with --engines one count for each engine, or a comma list in engine order")
    parser.add_argument("--seed", type=int, default=0, help="seed for texts, voices and splits")
    parser.add_argument("--fps", type=float, default=30, help="frame rate of the curves")
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus already in --out")
    parser.add_argument("--engines", default=None,
                        help=f"comma list of {','.join(ENGINES)}: a multi-engine corpus (engine field in the manifest); "
                             "without it, the espeak-only corpus of the demo; '--engines blind' alone: the blind test "
                             "(the reserved voices, test split only)")
    parser.add_argument("--mbrola-voices", default=",".join(mbrola.VOICES),
                        help="MBROLA voices to use: English us1 ... en1, English with an accent (de1-en ...), or "
                             "reading their own language, in train only: " + ",".join(mbrola.NATIVE_VOICES))
    parser.add_argument("--festival-voices", default=",".join(festival.DEFAULT_VOICES),
                        help="Festival voices to use, also " + ",".join(festival.OPT_IN_VOICES) + " when named "
                             "(kal_diphone, cmu_us_slt_arctic_hts and msu_ru_nsh_clunits are refused: reserved for "
                             "evaluation)")
    parser.add_argument("--flite-voices", default=",".join(flite.VOICES),
                        help="Flite voices to use (kal, kal16 and slt are refused: the reserved voices' speakers)")
    parser.add_argument("--train-only", action="store_true",
                        help="write only the clips the plan puts in train (the full build's train split): a corpus "
                             "that adds training data to another, data.root=[a,b]; needs --engines")
    parser.add_argument("--test-only", action="store_true",
                        help="write only the clips the plan puts in test: with more --clips than the corpus it "
                             "joins, a larger test of the same held-out speakers (leave_one_out.py --test-also)")
    parser.add_argument("--id-prefix", default="",
                        help="start every clip id and file name with this, so that the ids differ from another "
                             "corpus's in data.root=[a,b]; needs --engines")
    args = parser.parse_args(argv)  # fmt: skip
    started = time.monotonic()
    try:
        engines = None if args.engines is None else [e.strip() for e in args.engines.split(",") if e.strip()]
        counts = _parse_counts(args.clips, engines)
        stats = make_corpus(args.out, counts, args.seed, fps=args.fps, overwrite=args.overwrite, engines=engines,
                            mbrola_voices=_names(args.mbrola_voices), festival_voices=_names(args.festival_voices),
                            flite_voices=_names(args.flite_voices), train_only=args.train_only,
                            id_prefix=args.id_prefix, test_only=args.test_only)  # fmt: skip
    except (FileExistsError, OSError, RuntimeError, ValueError) as e:  # EngineError, ReservedVoiceError among them
        print(f"error: {e}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    if engines is None:
        splits = ", ".join(f"{s} {v['clips']} clips / {len(v['speakers'])} speakers" for s, v in stats["splits"].items())
        print(
            f"wrote {stats['clips']} clips, {stats['minutes']} min ({stats['speech_minutes']} min of speech; {splits}) "
            f"to {args.out} in {elapsed:.0f} s"
        )
        return 0
    per_engine = "; ".join(f"{e} {s['clips']} clips, {s['minutes']} min" for e, s in stats["engines"].items())
    print(f"wrote {stats['clips']} clips, {stats['minutes']} min ({per_engine}) to {args.out} in {elapsed:.0f} s")
    if "mbrola" in engines:
        print(f"note: {mbrola.LICENCE_NOTE} (see {Path(args.out) / MBROLA_NOTICE})")
    return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _parse_counts(text: str, engines: list[str] | None) -> int | dict[str, int]:
    try:
        numbers = [int(n) for n in text.split(",")]
    except ValueError:
        raise ValueError(f"--clips {text!r}: give a whole number, or a comma list of them (one per engine)") from None
    if engines is None:
        if len(numbers) != 1:
            raise ValueError(f"--clips {text!r}: a list of counts needs --engines")
        return numbers[0]
    if len(numbers) == 1:
        return {e: numbers[0] for e in engines}
    if len(numbers) != len(engines):
        raise ValueError(f"--clips {text!r} has {len(numbers)} counts for {len(engines)} engines; give one per engine")
    return dict(zip(engines, numbers))
