"""python scripts/leave_one_out.py --data CORPUS --out DIR [options] [train overrides...]

Leave-one-out over a manifest field (``engine`` by default): for each value X it
trains the given recipe without X's clips (``data.exclude.FIELD=[X]``, in
``DIR/X/``, an ordinary run dir) and scores that model on X's test clips, audio
alone and, with ``--text VOICE``, with each clip's dialogue text. It prints a
table per held-out value with the mean (the figure issue 8 sets targets for),
and writes ``DIR/leave_one_out.json`` and ``DIR/leave_one_out.png``.

``--train-also CORPUS`` adds another corpus's clips to every fold's training
(``data.root=[DATA,CORPUS]``, the held-out value left out of it too), e.g.
one built with ``make_corpus.py --train-only --id-prefix``; folds are scored on
``--data`` alone. ``--test-also CORPUS`` scores each fold on that corpus's
held-out clips too (never trained on), e.g. a larger test of the same held-out
speakers from ``make_corpus.py --test-only --id-prefix``: a few dozen test clips
make a noisy judge. It may be added to or changed in a finished ``--out``: the
folds are scored again, not trained again.

``--seeds 1,2`` trains each fold once per seed (``DIR/X/seed-S/``) and scores
the runs' mean curves: an ensemble, as ``evaluate.py --model A --model B``.
``--member "seed=0 model.encoder.cmn_window_s=null"`` adds a member trained with
those overrides on top of the recipe's (``DIR/X/seed-0_model.encoder.cmn_window_s-null/``),
so an ensemble may mix recipes.

Stop it at any moment and run the same command again: finished runs are kept
(each fold's scores are cached in ``DIR/X/scores.json``), an unfinished run
resumes from its checkpoints, and a command with another recipe, corpus or
field is refused rather than mixing two recipes in one table.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from tqdm import tqdm

from lipsync.atomic import atomic_write
from lipsync.checkpointing.heartbeat import HEARTBEAT_ENV, read_heartbeat
from lipsync.checkpointing.signals import EXIT_STOP
from lipsync.data.manifest import manifest_field
from lipsync.training.rundir import read_done

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO / "scripts" / "train.py"
COLUMNS = ("viseme_acc", "closure_f1", "labiodental_f1", "rounding_f1", "closure_onset_ms",
           "closure_precision", "closure_recall")
HEADERS = ("acc", "closure", "f/v", "rounding", "onset ms", "clos. P", "clos. R")
# Issue 8's bar for a model that works on voices it never heard, on the mean over held-out engines.
TARGETS = {"closure_f1": (">=", 0.95), "labiodental_f1": (">=", 0.90), "rounding_f1": (">=", 0.85),
           "closure_onset_ms": ("<=", 30.0)}
SPEC = "leave_one_out_spec.json"
RESCORED = ("test_also",)  # spec entries that change what the folds are scored on, not what they train on
EXIT_USER_ERROR = 1


class LeaveOneOutError(ValueError):
    """A mistake in the command: the message says what to change."""


@dataclass
class Run:
    """One training of a fold: a run dir of train.py, its command, its log and heartbeat."""
    name: str  # the held-out value, with its member's name when a fold has several
    dir: Path
    command: list[str]

    @property
    def finished(self) -> bool:
        return read_done(self.dir) is not None

    @property
    def heartbeat(self) -> Path:  # the file the supervisor also uses, so run.supervise=true runs show progress too
        return self.dir / "heartbeat"

    def log(self, out: Path) -> Path:
        return out / "logs" / f"{self.name}.log"


@dataclass
class Fold:
    """A held-out value: one run (``DIR/X``), or one per member (``DIR/X/MEMBER``) whose mean curves are scored."""
    value: str
    dir: Path
    runs: list[Run]


def plan(data: Path, field: str, split: str, hold_out: list[str] | None, exclude: list[str]) -> list[str]:
    """The values to hold out in turn: those asked for, else every value with clips in ``split``."""
    values = manifest_field(data, field, missing=None)
    if not values:
        raise LeaveOneOutError(f"{data}/manifest.jsonl: no clip has the field {field!r}; "
                               "pass --field with a field the manifest has (engine, speaker, ...)")
    known = sorted(set(values.values()))
    for name in [*(hold_out or []), *exclude]:
        if name not in known:
            raise LeaveOneOutError(f"--hold-out/--exclude {name!r}: no clip has {field}={name}; the corpus has "
                                   f"{', '.join(known)}")
    splits = manifest_field(data, "split")
    in_split = sorted({v for clip, v in values.items() if splits.get(clip) == split})
    chosen = hold_out or [v for v in in_split if v not in exclude]
    for value in chosen:
        if value in exclude:
            raise LeaveOneOutError(f"{value!r} is both held out and excluded; pick one")
        if value not in in_split:
            raise LeaveOneOutError(f"{field}={value} has no clip in the {split} split, so its fold cannot be scored")
    if len(set(known) - set(exclude)) < 2:
        raise LeaveOneOutError(f"{field} has one value left ({', '.join(sorted(set(known) - set(exclude)))}) "
                               "after --exclude: a fold needs others to train on")
    if not chosen:
        raise LeaveOneOutError(f"no {field} value is left to hold out after --exclude")
    return chosen


def check_test_corpus(corpus: Path, field: str, split: str, values: list[str]) -> None:
    """A --test-also corpus must hold clips of a held-out value in the scored split (checked before training)."""
    fields, splits = manifest_field(corpus, field, missing=None), manifest_field(corpus, "split")
    if not any(v in values and splits.get(c) == split for c, v in fields.items()):
        hint = (f" (e.g. make_corpus.py --engines {values[0]} --test-only --id-prefix big_, with the seed of --data's "
                "build)") if field == "engine" else ""
        raise LeaveOneOutError(f"--test-also {corpus}: no {split} clip has {field}={' or '.join(values)}; "
                               f"give a corpus of the held-out values{hint}")


def override_key(item: str) -> str:
    return item.lstrip("+~").split("=", 1)[0]


def member_name(overrides: list[str]) -> str:
    """A member's folder name from its overrides: ``seed=1`` -> ``seed-1``."""
    return re.sub(r"[^\w.+-]+", "_", "_".join(overrides).replace("=", "-")).strip("_")


def parse_seeds(seeds: str | None) -> list[int]:
    try:
        return [int(s) for s in (seeds or "").split(",") if s]
    except ValueError:
        raise LeaveOneOutError(f"--seeds {seeds}: give whole numbers separated by commas, e.g. --seeds 1,2") from None


def parse_members(seeds: list[int], members: list[str]) -> list[list[str]]:
    """``--seeds 1,2`` and each ``--member "OVERRIDES"``: the override list of each member of a fold's ensemble."""
    out = [[f"seed={s}"] for s in seeds] + [shlex.split(m) for m in members]
    names = [member_name(m) for m in out]
    for i, (member, name) in enumerate(zip(out, names)):
        if not name:
            raise LeaveOneOutError("--member '': give each member its train.py overrides, e.g. --member seed=3")
        if name in names[:i]:
            raise LeaveOneOutError(f"--seeds/--member {' '.join(member)!r} is given twice; each member must differ")
    return out


def check_overrides(overrides: list[str], field: str, members: list[list[str]]) -> None:
    """The driver sets the corpus, the exclusion and the run dir; two sources would disagree.

    A member's override replaces the recipe's for its key, so a recipe override every member replaces
    (``seed=3`` with ``--seeds 1,2``) would reach no run: refused too.
    """
    owned = {"data.root": "--data", f"data.exclude.{field}": "--exclude", "run.dir": "--out", "run.name": "--out"}
    for item in [*overrides, *(item for member in members for item in member)]:
        key = override_key(item)
        if key in owned:
            raise LeaveOneOutError(f"override {item!r}: leave_one_out sets {key} for each fold; use {owned[key]}")
    for item in overrides:
        if members and all(override_key(item) in map(override_key, member) for member in members):
            raise LeaveOneOutError(f"override {item!r}: every --seeds/--member sets {override_key(item)}, "
                                   "so it would reach no run; leave it out")


def quoted(value: str | Path) -> str:
    """A value as a quoted Hydra override string, so spaces, ``=`` and brackets in paths and names pass."""
    text = str(value)
    if "'" in text or "\\" in text:
        raise LeaveOneOutError(f"{text!r}: a quote or backslash cannot be passed to train.py; rename it")
    return f"'{text}'"


def make_fold(value: str, out: Path, members: list[list[str]], data: Path, field: str, exclude: list[str],
              overrides: list[str], train_also: list[Path]) -> Fold:
    left_out = "[" + ",".join(quoted(v) for v in [value, *exclude]) + "]"
    root = quoted(data) if not train_also else "[" + ",".join(quoted(r) for r in [data, *train_also]) + "]"
    base = [sys.executable, str(TRAIN_SCRIPT), *overrides, f"data.root={root}", f"++data.exclude.{field}={left_out}"]
    if not members:
        return Fold(value, out / value, [Run(value, out / value, [*base, f"run.dir={quoted(out / value)}"])])
    runs = []
    for member in members:  # the member's overrides replace the recipe's for the same keys
        keys = set(map(override_key, member))
        recipe = [item for item in base[2:] if override_key(item) not in keys]
        runs.append(Run(f"{value}-{member_name(member)}", out / value / member_name(member),
                        [*base[:2], *recipe, *member, f"run.dir={quoted(out / value / member_name(member))}"]))
    return Fold(value, out / value, runs)


def check_spec(out: Path, spec: dict) -> None:
    """The first start records the recipe; a later start with another one is refused.

    More members (``--seeds``, ``--member``) beside those an ensemble already has are welcome: the runs trained
    are kept, the new ones trained, and each fold's ensemble scored again. So are other ``--test-also`` corpora.
    """
    path = out / SPEC
    if path.is_file():
        before = {"members": [], "train_also": [], "test_also": [], **json.loads(path.read_text())}  # older versions
        changed = [k for k in spec if before.get(k) != spec[k] and k not in RESCORED]
        grows = (before["seeds"] or before["members"]) and set(changed) <= {"seeds", "members"} and all(
            set(map(str, before[k])) <= set(map(str, spec[k])) for k in ("seeds", "members"))
        if changed and not grows:
            lines = "; ".join(f"{k}: was {before.get(k)!r}, now {spec[k]!r}" for k in changed)
            raise LeaveOneOutError(f"{out} holds folds of another command ({lines}). Run the same command to "
                                   "continue it (more --seeds/--member may be added), or pass a new --out")
        if before == spec:
            return
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        json.dump(spec, f, indent=2)


def compose_fold(overrides: list[str]):
    """A fold's config, composed as train.py composes it: a bad override fails here, before any fold starts."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
            return compose("train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise LeaveOneOutError(f"the train.py overrides do not compose: {e}") from e


def check_texts(cfg, data: list[Path], field: str, split: str, values: list[str], voice: str, texts_file: str | None):
    """--text: the voice, the rig and every held-out clip's text (in every scored corpus) are checked before
    hours of training."""
    from lipsync.convert.transcript import check_text_voice
    from lipsync.rigs import load_rig
    from lipsync.training.evaluate import clip_texts

    check_text_voice(voice, load_rig(cfg.data.rig))
    fields, splits = manifest_field(data, field), manifest_field(data, "split")
    held_out = [SimpleNamespace(id=c) for c, v in fields.items() if v in values and splits.get(c) == split]
    clip_texts(held_out, data, texts_file)


def train_runs(runs: list[Run], out: Path, jobs: int, steps: int | None) -> int:
    """Train the unfinished runs, ``jobs`` at a time; 0 when all finished, else the first failure's exit code.

    The bar counts the runs' training steps (each run's heartbeat), so its rate and ETA cover the whole job.
    """
    steps = steps if steps and steps > 0 else None  # max_steps -1: epochs decide, so no total
    for run in runs:
        if run.finished:
            print(f"{run.name}: finished earlier ({run.dir})")
    todo = [r for r in runs if not r.finished]
    if not todo:
        return 0
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    running: dict[str, tuple[Run, subprocess.Popen, float]] = {}
    failure = 0

    def step(run: Run) -> int:  # a resumed run's heartbeat starts at its checkpoint's step
        return (read_heartbeat(run.heartbeat) or (0, 0.0))[0] if not run.finished else steps or 0

    def stop(signum, frame):  # kill (SIGTERM) stops the runs as Ctrl-C does
        raise KeyboardInterrupt

    to_train = list(todo)
    previous = signal.signal(signal.SIGTERM, stop)
    bar = tqdm(total=steps * len(todo) if steps else None, initial=sum(map(step, todo)), desc="training folds",
               unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=5)
    try:
        while todo or running:
            while todo and len(running) < jobs and not failure:
                run = todo.pop(0)
                log_path = run.log(out)
                log_path.parent.mkdir(parents=True, exist_ok=True)
                env = {**os.environ, HEARTBEAT_ENV: str(run.heartbeat)}
                env.setdefault("OMP_NUM_THREADS", threads)  # jobs runs share the cores instead of fighting
                with open(log_path, "a") as log:
                    proc = subprocess.Popen(run.command, stdout=log, stderr=subprocess.STDOUT, env=env)
                running[run.name] = (run, proc, time.monotonic())
                tqdm.write(f"{run.name}: training (log: {log_path})", file=sys.stderr)
            if not running:
                break
            time.sleep(1.0)
            for name, (run, proc, started) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[name]
                minutes = (time.monotonic() - started) / 60
                if code == 0 and run.finished:
                    tqdm.write(f"{name}: finished in {minutes:.1f} min", file=sys.stderr)
                else:
                    tqdm.write(f"{name}: training exited {code} after {minutes:.1f} min; see {run.log(out)}",
                               file=sys.stderr)
                    failure = failure or (code or 1)
            bar.update(max(0, sum(map(step, to_train)) - bar.n))
    except KeyboardInterrupt:
        failure = EXIT_STOP
    finally:
        for run, proc, _ in running.values():  # a stop asks each run to save and exit (75), as train.py does
            proc.send_signal(signal.SIGTERM)
        for run, proc, _ in running.values():
            proc.wait()
        bar.close()
        signal.signal(signal.SIGTERM, previous)
    return failure


def score_fold(fold: Fold, data: list[Path], field: str, split: str, text: str | None, texts_file: str | None) -> dict:
    """Metrics of the fold's model (the mean curves of its runs) on its held-out clips in the ``data`` corpora
    (``--data`` and any ``--test-also``), cached in its scores.json."""
    from lipsync.convert.predictor import load_predictors
    from lipsync.data.validate import load_clips
    from lipsync.training.evaluate import clip_texts, evaluate, select_clips

    path = fold.dir / "scores.json"
    trained = [read_done(run.dir) for run in fold.runs]  # a run trained again makes its cached scores stale
    scored_on = list(map(str, data))
    cached = json.loads(path.read_text()) if path.is_file() else {}
    if cached.get("trained") != trained or cached.get("scored_on", scored_on[:1]) != scored_on:
        cached = {"trained": trained, "scored_on": scored_on}
    modes = score_modes(text)
    if all(m in cached for m in modes):
        return cached
    model = load_predictors([run.dir for run in fold.runs])
    clips = select_clips(load_clips(data, model.rig, model.fps, splits=(split,)), data, f"{field}={fold.value}")
    for mode in modes:
        if mode in cached:
            continue
        texts = clip_texts(clips, data, texts_file) if mode != "audio" else None  # voice checked in check_texts
        metrics, _, _ = evaluate(model, clips, plot_count=0, texts=texts, voice=text or "en-us")
        cached[mode] = {"clips": len(clips), **metrics.compute()}
    with atomic_write(path) as f:
        json.dump(cached, f, indent=2)
    return cached


def mean_row(rows: list[dict]) -> dict:
    """The mean over folds, each fold weighing the same (a metric a fold lacks, e.g. f/v in Japanese, is skipped)."""
    out = {}
    for key in COLUMNS:
        values = [r[key] for r in rows if not math.isnan(r.get(key, math.nan))]
        out[key] = float(np.mean(values)) if values else math.nan
    return out


def score_modes(text: str | None) -> list[str]:
    """What each fold is scored on: audio alone, and with ``--text VOICE`` the text too."""
    return ["audio"] + ([f"text:{text}"] if text else [])


def mode_title(mode: str) -> str:
    return "audio alone" if mode == "audio" else f"with the text ({mode.split(':', 1)[1]})"


def meets(mean: dict) -> dict[str, bool]:
    return {k: (mean[k] >= bar if op == ">=" else mean[k] <= bar) for k, (op, bar) in TARGETS.items()}


def format_table(title: str, rows: dict[str, dict], mean: dict) -> str:
    width = max(6, *(len(v) for v in rows)) + 2
    head = f"{'held out':<{width}}{'clips':>6}" + "".join(f"{h:>10}" for h in HEADERS)
    lines = [title, head, "-" * len(head)]

    def cells(r: dict) -> str:
        return "".join(f"{'n/a':>10}" if math.isnan(r.get(k, math.nan)) else
                       f"{r[k]:>10.1f}" if k.endswith("_ms") else f"{r[k]:>10.3f}" for k in COLUMNS)

    for value, r in rows.items():
        lines.append(f"{value:<{width}}{r['clips']:>6}" + cells(r))
    lines.append("-" * len(head))
    lines.append(f"{'mean':<{width}}{'':>6}" + cells(mean))
    goal = {k: f"{op}{bar:g}" for k, (op, bar) in TARGETS.items()}
    lines.append(f"{'target':<{width}}{'':>6}" + "".join(f"{goal.get(k, ''):>10}" for k in COLUMNS))
    ok = meets(mean)
    lines.append(f"{'met':<{width}}{'':>6}" + "".join(f"{('yes' if ok[k] else 'no') if k in ok else '':>10}"
                                                    for k in COLUMNS))
    return "\n".join(lines)


def figure(tables: dict[str, tuple[dict, dict]]):
    """One panel per mode: F1 and accuracy per held-out value and their mean, the targets as dashed lines."""
    import matplotlib.pyplot as plt

    keys = ("viseme_acc", "closure_f1", "labiodental_f1", "rounding_f1")
    fig, axes = plt.subplots(1, len(tables), figsize=(6.5 * len(tables), 4), squeeze=False)
    for ax, (mode, (rows, mean)) in zip(axes[0], tables.items()):
        names = [*rows, "mean"]
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            r = mean if name == "mean" else rows[name]
            ax.bar(np.arange(len(keys)) + (i - (len(names) - 1) / 2) * width, [r[k] for k in keys], width,
                   label=name, color="black" if name == "mean" else None)
        for j, k in enumerate(keys):
            if k in TARGETS:
                ax.hlines(TARGETS[k][1], j - 0.45, j + 0.45, colors="red", linestyles="dashed")
        ax.set_xticks(range(len(keys)), ["accuracy", "closure F1", "f/v F1", "rounding F1"])
        ax.set_ylim(0, 1.15)  # room above 1.0 for the legend, clear of the bars and targets
        ax.set_title(f"{mode_title(mode)}, each value held out in turn (dashed: target)", fontsize=10)
        ax.legend(fontsize=7, ncol=len(names), loc="upper center")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Everything after the options is passed to train.py for every fold, "
                                            "e.g. experiment=scratch augment=mild trainer.max_steps=3000")
    parser.add_argument("--data", required=True, help="the corpus folder (manifest.jsonl)")
    parser.add_argument("--out", required=True, help="folder for the folds' run dirs and the table")
    parser.add_argument("--field", default="engine", help="the manifest field whose values are held out in turn")
    parser.add_argument("--hold-out", help="comma-separated values to hold out (default: every value in --split)")
    parser.add_argument("--exclude", default="", help="comma-separated values left out of every fold (e.g. jtalk)")
    parser.add_argument("--train-also", action="append", default=[], metavar="CORPUS",
                        help="another corpus whose clips every fold also trains on (the held-out value left out of "
                             "it too), e.g. one made with make_corpus.py --train-only; folds are scored on --data")
    parser.add_argument("--test-also", action="append", default=[], metavar="CORPUS",
                        help="another corpus whose held-out clips every fold is also scored on (never trained on), "
                             "e.g. a larger test of the same speakers from make_corpus.py --test-only --id-prefix")
    parser.add_argument("--split", default="test", choices=("val", "test"), help="the split a fold is scored on")
    parser.add_argument("--text", metavar="VOICE", help="also score with each clip's dialogue text (evaluate.py --text)")
    parser.add_argument("--texts", metavar="FILE", help="clip texts for --text (default: the manifest's text field)")
    parser.add_argument("--seeds", help="comma-separated seeds: each fold trains once per seed and the runs' mean "
                                        "curves are scored (an ensemble, as evaluate.py --model A --model B)")
    parser.add_argument("--member", action="append", default=[], metavar="OVERRIDES",
                        help="one more member of each fold's ensemble, trained with these train.py overrides on top "
                             "of the recipe's, e.g. --member \"seed=0 model.encoder.cmn_window_s=null\"")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once; the cores are shared among them")
    parser.add_argument("overrides", nargs="*", help="train.py overrides for every fold")
    args = parser.parse_args(argv)
    data, out = Path(args.data).resolve(), Path(args.out).resolve()
    train_also = [Path(c).resolve() for c in args.train_also]
    test_also = [Path(c).resolve() for c in args.test_also]
    exclude = [v for v in args.exclude.split(",") if v]
    try:
        seeds = parse_seeds(args.seeds)
        members = parse_members(seeds, args.member)
        if args.jobs < 1:
            raise LeaveOneOutError(f"--jobs {args.jobs}: train at least one fold at a time")
        if not TRAIN_SCRIPT.is_file():
            raise LeaveOneOutError(f"{TRAIN_SCRIPT} is missing: run leave_one_out from a checkout of lipsync")
        for flag, corpus in [("--data", data), *(("--train-also", c) for c in train_also),
                             *(("--test-also", c) for c in test_also)]:
            if not (corpus / "manifest.jsonl").is_file():
                raise LeaveOneOutError(f"{flag} {corpus}: no manifest.jsonl there; pass a corpus folder (data/README.md)")
        for corpus in test_also:
            if corpus == data or corpus in train_also:
                raise LeaveOneOutError(f"--test-also {corpus}: the folds train on it too; a test corpus must be "
                                       "one they never hear")
        check_overrides(args.overrides, args.field, members)
        values = plan(data, args.field, args.split,
                      [v for v in args.hold_out.split(",") if v] if args.hold_out else None, exclude)
        for corpus in test_also:
            check_test_corpus(corpus, args.field, args.split, values)
        folds = [make_fold(v, out, members, data, args.field, exclude, args.overrides, train_also) for v in values]
        runs = [run for fold in folds for run in fold.runs]
        cfg, *_ = [compose_fold(run.command[2:]) for run in folds[0].runs]  # every member's overrides must compose
        if args.text:
            check_texts(cfg, [data, *test_also], args.field, args.split, values, args.text, args.texts)
        check_spec(out, {"data": str(data), "train_also": list(map(str, train_also)),
                         "test_also": list(map(str, test_also)), "field": args.field,
                         "exclude": exclude, "split": args.split, "seeds": seeds, "members": args.member,
                         "overrides": args.overrides})
    except (ValueError, OSError) as e:  # ours, shlex's, the rig's, the transcript's and the texts' are ValueErrors
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"{len(folds)} folds, {args.field} held out in turn: {', '.join(values)}"
          + (f"; ensembles of {', '.join(map(member_name, members))}" if members else "")
          + f"; recipe: {' '.join(args.overrides) or '(train.yaml defaults)'}")
    code = train_runs(runs, out, args.jobs, steps=cfg.trainer.get("max_steps"))
    if code:
        print(f"{sum(r.finished for r in runs)} of {len(runs)} runs finished; run the same command to continue "
              "(finished runs are kept, the others resume from their checkpoints)", file=sys.stderr)
        return code
    tables: dict[str, tuple[dict, dict]] = {}
    try:
        scores = {f.value: score_fold(f, [data, *test_also], args.field, args.split, args.text, args.texts)
                  for f in folds}
    except (ValueError, OSError) as e:  # a model that does not load, a text too long for its audio
        print(f"error: scoring the folds: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    for mode in score_modes(args.text):
        rows = {v: s[mode] for v, s in scores.items()}
        tables[mode] = (rows, mean_row(list(rows.values())))
        print()
        where = f" in {data.name}" + "".join(f" + {c.name}" for c in test_also) if test_also else ""
        print(format_table(f"{mode_title(mode)}, {args.split} clips of the held-out {args.field}{where}:", rows,
                           tables[mode][1]))
    result = {"data": str(data), "train_also": list(map(str, train_also)), "test_also": list(map(str, test_also)),
              "field": args.field, "split": args.split,
              "exclude": exclude, "members": members, "overrides": args.overrides,
              "targets": {k: list(v) for k, v in TARGETS.items()},
              "tables": {m: {"folds": rows, "mean": mean, "met": meets(mean)} for m, (rows, mean) in tables.items()}}
    with atomic_write(out / "leave_one_out.json") as f:
        json.dump(result, f, indent=2)
    from lipsync.training.plots import save_figure

    save_figure(figure(tables), out / "leave_one_out.png")
    print(f"\nwrote {out / 'leave_one_out.json'} and {out / 'leave_one_out.png'}")
    return 0
