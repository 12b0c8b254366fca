"""scripts/leave_one_out.py on real demo clips: each fold trains without its value and is scored on it, a
finished run is not trained again, a stopped run resumes, and a changed or wrong command is refused."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from support import DEMO, REPO
from lipsync.convert.predictor import load_predictors
from lipsync.data.validate import load_clips
from lipsync.training.evaluate import evaluate, select_clips
from lipsync.training.evaluate import main as evaluate_main
from lipsync.training.leave_one_out import main as leave_one_out_main

SMALL = ["experiment=scratch", "model.encoder.hidden=32", "model.head.hidden=32", "data.batch_size=4",
         "callbacks.progress_bar.refresh_rate=0"]
RECIPE = [*SMALL, "trainer.val_check_interval=3"]
COUNTS = {"train": 8, "val": 2, "test": 4}  # clips of each accent per split


def _demo_rows() -> list[dict]:
    """The demo's manifest rows with an ``accent`` field (espeak-ng's en-us voices vs the others), paths pointing at
    the demo."""
    rows = [json.loads(line) for line in (DEMO / "manifest.jsonl").read_text().splitlines()]
    return [{**e, "accent": "us" if e["speaker"].startswith("en-us") else "other",
             **{k: str(DEMO / e[k]) for k in ("audio", "curves", "alignment")}} for e in rows]


@pytest.fixture(scope="module")
def accents(tmp_path_factory):
    """COUNTS demo clips of each accent per split."""
    out = tmp_path_factory.mktemp("accents")
    taken: dict[tuple[str, str], int] = {}
    lines = []
    for e in _demo_rows():
        if taken.get((e["split"], e["accent"]), 0) == COUNTS[e["split"]]:
            continue
        taken[(e["split"], e["accent"])] = taken.get((e["split"], e["accent"]), 0) + 1
        lines.append(json.dumps(e))
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return out


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "leave_one_out.py"), *args], capture_output=True,
                          text=True, cwd=REPO, **kwargs)


def test_each_fold_trains_without_its_value_and_is_scored_on_its_test_clips(accents, tmp_path):
    out = tmp_path / "leave one out"  # a space reaches train.py's Hydra overrides quoted
    args = ["--data", str(accents), "--out", str(out), "--field", "accent", "--jobs", "2", "--text", "en-us",
            *RECIPE, "trainer.max_steps=6"]
    first = _run(args)
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads((out / "leave_one_out.json").read_text())
    assert (out / "leave_one_out.png").stat().st_size > 10_000
    for mode in ("audio", "text:en-us"):
        folds, mean = result["tables"][mode]["folds"], result["tables"][mode]["mean"]
        assert sorted(folds) == ["other", "us"]
        for value, scores in folds.items():
            assert scores["clips"] == COUNTS["test"]
        for key in ("closure_f1", "rounding_f1", "viseme_acc"):
            assert mean[key] == pytest.approx(np.mean([folds[v][key] for v in folds]))
        assert result["tables"][mode]["met"]["closure_f1"] is (mean["closure_f1"] >= 0.95)
    for value in ("other", "us"):
        config = yaml.safe_load((out / value / "config.yaml").read_text())
        assert config["data"]["exclude"]["accent"] == [value] and config["trainer"]["max_steps"] == 6
        left_out = COUNTS["train"] + COUNTS["val"]  # the fold never loads the test split
        assert f"data.exclude: left out {left_out} clips with accent in ['{value}']" in (out / "logs" / f"{value}.log").read_text()
        assert json.loads((out / value / "done.json").read_text())["global_step"] == 6
    # the fold's row is what evaluate.py says of that fold's model on the held-out clips
    assert evaluate_main(["--model", str(out / "us"), "--data", str(accents), "--split", "test",
                          "--where", "accent=us", "--plots", "0", "--out", str(tmp_path / "eval")]) == 0
    alone = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    for key, value in alone.items():
        assert result["tables"]["audio"]["folds"]["us"][key] == pytest.approx(value, nan_ok=True)
    assert "mean" in first.stdout and "target" in first.stdout and "with the text (en-us)" in first.stdout

    checkpoints = sorted((out / "us" / "checkpoints").iterdir())
    again = _run(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "us: finished earlier" in again.stdout and "training (log" not in again.stderr
    assert sorted((out / "us" / "checkpoints").iterdir()) == checkpoints
    assert json.loads((out / "leave_one_out.json").read_text()) == result

    # scores cached for a fold trained since (another done.json) are stale: scored again, not reused
    scores_file = out / "us" / "scores.json"
    stale = json.loads(scores_file.read_text())
    assert stale["trained"] == [json.loads((out / "us" / "done.json").read_text())]
    stale["trained"], stale["audio"]["closure_f1"] = [{"global_step": 3}], -1.0
    scores_file.write_text(json.dumps(stale))
    assert _run(args).returncode == 0
    assert json.loads((out / "leave_one_out.json").read_text()) == result


def test_a_stopped_run_resumes_its_unfinished_fold(accents, tmp_path):
    out = tmp_path / "loo"
    args = ["--data", str(accents), "--out", str(out), "--field", "accent", "--hold-out", "us", *SMALL,
            "trainer.max_steps=100", "trainer.val_check_interval=100"]
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "leave_one_out.py"), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    heartbeat, deadline = out / "us" / "heartbeat", time.monotonic() + 120
    while not (heartbeat.is_file() and int(heartbeat.read_text().split()[0]) >= 4):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)  # as a shell's kill does: the driver asks its folds to save and stop
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-3000:]
    assert "0 of 1 runs finished; run the same command to continue" in err
    assert not (out / "us" / "done.json").exists()

    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (out / "logs" / "us.log").read_text()
    assert "Resuming from" in log and json.loads((out / "us" / "done.json").read_text())["global_step"] == 100


def test_train_also_adds_a_corpus_to_every_folds_training_without_the_held_out_value(accents, tmp_path):
    taken = {json.loads(line)["id"] for line in (accents / "manifest.jsonl").read_text().splitlines()}
    extra, rows = tmp_path / "extra", {"us": [], "other": []}
    for e in _demo_rows():  # demo train clips the fixture left, ids apart
        if e["split"] == "train" and e["id"] not in taken and len(rows[e["accent"]]) < 2:
            rows[e["accent"]].append({**e, "id": "extra_" + e["id"]})
    extra.mkdir()
    (extra / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows["us"] + rows["other"]))
    out = tmp_path / "loo"
    ran = _run(["--data", str(accents), "--out", str(out), "--field", "accent", "--hold-out", "us",
                "--train-also", str(extra), *RECIPE, "trainer.max_steps=3"])
    assert ran.returncode == 0, ran.stderr[-3000:]
    config = yaml.safe_load((out / "us" / "config.yaml").read_text())
    assert config["data"]["root"] == [str(accents.resolve()), str(extra.resolve())]
    left_out = COUNTS["train"] + COUNTS["val"] + 2  # the extra corpus's two us clips too
    assert f"data.exclude: left out {left_out} clips with accent in ['us']" in (out / "logs" / "us.log").read_text()
    result = json.loads((out / "leave_one_out.json").read_text())
    assert result["train_also"] == [str(extra.resolve())]
    assert result["tables"]["audio"]["folds"]["us"]["clips"] == COUNTS["test"]  # scored on --data alone


def test_test_also_scores_each_fold_on_another_corpus_too_without_training_it_again(accents, tmp_path):
    taken = {json.loads(line)["id"] for line in (accents / "manifest.jsonl").read_text().splitlines()}
    bigger, rows = tmp_path / "bigger", {"us": [], "other": []}
    for e in _demo_rows():  # demo test clips the fixture left, ids apart: more clips of the same held-out speakers
        if e["split"] == "test" and e["id"] not in taken and len(rows[e["accent"]]) < 3:
            rows[e["accent"]].append({**e, "id": "big_" + e["id"]})
    bigger.mkdir()
    (bigger / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows["us"] + rows["other"]))
    out = tmp_path / "loo"
    common = ["--data", str(accents), "--out", str(out), "--field", "accent", "--hold-out", "us", *RECIPE,
              "trainer.max_steps=3"]
    assert _run(common).returncode == 0
    done = (out / "us" / "done.json").read_text()
    config = yaml.safe_load((out / "us" / "config.yaml").read_text())
    assert config["data"]["root"] == str(accents.resolve())  # never trained on

    more = _run([*common, "--test-also", str(bigger)])  # added to a finished --out: scored again, not trained
    assert more.returncode == 0, more.stderr[-3000:]
    assert "us: finished earlier" in more.stdout and (out / "us" / "done.json").read_text() == done
    assert f"test clips of the held-out accent in {accents.name} + bigger" in more.stdout
    result = json.loads((out / "leave_one_out.json").read_text())
    row = result["tables"]["audio"]["folds"]["us"]
    assert result["test_also"] == [str(bigger.resolve())] and row["clips"] == COUNTS["test"] + 3
    # the row is the fold's model on the held-out clips of both corpora together
    model = load_predictors([out / "us"])
    clips = select_clips(load_clips([accents, bigger], model.rig, model.fps, splits=("test",), progress=False),
                         [accents, bigger], "accent=us")
    metrics = evaluate(model, clips, plot_count=0)[0].compute()
    assert len(clips) == row["clips"] and row["mae"] == pytest.approx(metrics["mae"])
    assert json.loads((out / "us" / "scores.json").read_text())["scored_on"] == [str(accents.resolve()),
                                                                              str(bigger.resolve())]
    back = _run(common)  # and taken away again: --data alone
    assert back.returncode == 0 and json.loads((out / "leave_one_out.json").read_text())["tables"]["audio"][
        "folds"]["us"]["clips"] == COUNTS["test"]


def test_seeds_and_members_train_a_run_each_and_score_their_mean_curves(accents, tmp_path):
    out = tmp_path / "loo"
    ran = _run(["--data", str(accents), "--out", str(out), "--field", "accent", "--hold-out", "us", "--seeds", "1",
                "--member", "seed=2 model.head.hidden=16", *RECIPE, "trainer.max_steps=6"])
    assert ran.returncode == 0, ran.stderr[-3000:]
    runs = [out / "us" / "seed-1", out / "us" / "seed-2_model.head.hidden-16"]
    configs = [yaml.safe_load((r / "config.yaml").read_text()) for r in runs]
    assert [c["seed"] for c in configs] == [1, 2]
    assert [c["model"]["head"]["hidden"] for c in configs] == [32, 16]  # the member's override replaces the recipe's
    row = json.loads((out / "leave_one_out.json").read_text())["tables"]["audio"]["folds"]["us"]
    assert evaluate_main(["--model", str(runs[0]), "--model", str(runs[1]), "--data", str(accents), "--split", "test",
                          "--where", "accent=us", "--plots", "0", "--out", str(tmp_path / "both")]) == 0
    assert evaluate_main(["--model", str(runs[0]), "--data", str(accents), "--split", "test",
                          "--where", "accent=us", "--plots", "0", "--out", str(tmp_path / "one")]) == 0
    both, one = (json.loads((tmp_path / d / "metrics.json").read_text())["metrics"] for d in ("both", "one"))
    assert row["mae"] == pytest.approx(both["mae"]) and row["closure_f1"] == pytest.approx(both["closure_f1"], nan_ok=True)
    assert row["mae"] != pytest.approx(one["mae"])  # the mean of two models is not either model

    done = [(r / "done.json").read_text() for r in runs]
    common = ["--data", str(accents), "--out", str(out), "--field", "accent", "--hold-out", "us", *RECIPE,
              "trainer.max_steps=6"]
    grown = _run([*common, "--seeds", "1,3", "--member", "seed=2 model.head.hidden=16"])  # one more member
    assert grown.returncode == 0, grown.stderr[-3000:]
    assert [(r / "done.json").read_text() for r in runs] == done  # the runs trained before are kept
    assert len(json.loads((out / "us" / "scores.json").read_text())["trained"]) == 3  # the ensemble scored again
    assert json.loads((out / "leave_one_out.json").read_text())["tables"]["audio"]["folds"]["us"]["mae"] != row["mae"]
    shrunk = _run([*common, "--seeds", "1"])  # fewer members would score another ensemble under the same folder
    assert shrunk.returncode == 1 and "holds folds of another command (seeds: was [1, 3], now [1]; members:" in shrunk.stderr


@pytest.mark.parametrize("extra, message", [
    (["data.root=/elsewhere"], "leave_one_out sets data.root for each fold; use --data"),
    (["--hold-out", "scottish"], "no clip has accent=scottish; the corpus has other, us"),
    (["--exclude", "other"], "one value left (us) after --exclude"),
    (["--train-also", "/nonexistent"], "--train-also /nonexistent: no manifest.jsonl there"),
    (["--test-also", "/nonexistent"], "--test-also /nonexistent: no manifest.jsonl there"),
    (["--test-also", "{data}"], "the folds train on it too; a test corpus must be one they never hear"),
    (["--test-also", "{demo}", "--hold-out", "us"], "no test clip has accent=us; give a corpus of the held-out values"),
    (["trainer.max_stepz=3"], "the train.py overrides do not compose"),
    (["--text", "xx-nope"], "xx-nope"),
    (["--seeds", "1,2", "seed=3"], "every --seeds/--member sets seed, so it would reach no run"),
    (["--seeds", "1", "--member", "seed=1"], "'seed=1' is given twice"),
    (["--seeds", "1,two"], "--seeds 1,two: give whole numbers separated by commas"),
    (["--member", "seed=1 run.dir=/x"], "leave_one_out sets run.dir for each fold"),
    (["--member", "seed=1 model.head.hiden=3"], "the train.py overrides do not compose"),
])
def test_wrong_commands_fail_before_training_saying_what_to_change(accents, tmp_path, capsys, extra, message):
    extra = [a.format(data=accents, demo=DEMO) for a in extra]
    args = ["--data", str(accents), "--out", str(tmp_path / "loo"), "--field", "accent", *extra, *RECIPE]
    assert leave_one_out_main(args) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "loo").exists()


def test_another_recipe_in_the_same_folder_is_refused(accents, tmp_path, capsys):
    out = tmp_path / "loo"
    (out).mkdir()
    (out / "leave_one_out_spec.json").write_text(json.dumps({
        "data": str(accents.resolve()), "field": "accent", "exclude": [], "split": "test",
        "seeds": [], "overrides": [*RECIPE, "trainer.max_steps=6"]}))
    assert leave_one_out_main(["--data", str(accents), "--out", str(out), "--field", "accent", *RECIPE,
                               "trainer.max_steps=7"]) == 1
    err = capsys.readouterr().err
    assert "holds folds of another command (overrides:" in err and "pass a new --out" in err
    assert sorted(p.name for p in out.iterdir()) == ["leave_one_out_spec.json"]
