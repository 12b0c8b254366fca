"""train(cfg) end to end on a small real corpus: run dir contents, golden losses, clear failures."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from support import REPO, compose_train
from lipsync.training.train import train

SMALL_MODEL = ["model.encoder.hidden=32", "model.head.hidden=32", "model.head.layers=3"]


def _losses(run_dir) -> dict[int, float]:
    rows = csv.DictReader(open(run_dir / "metrics" / "metrics.csv"))
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


def _assert_golden_losses(data_root: str, run_dir) -> None:
    """Four seeded, deterministic steps on ``data_root`` (a data.root value) log exactly GOLDEN's losses."""
    torch.use_deterministic_algorithms(True)
    try:
        cfg = compose_train(["experiment=scratch", f"data.root={data_root}", f"run.dir={run_dir}",
                             "trainer.max_steps=4", "trainer.log_every_n_steps=1", "data.batch_size=4",
                             "trainer.val_check_interval=4", "callbacks.progress_bar.refresh_rate=0", *SMALL_MODEL])
        assert train(cfg) == 0
    finally:
        torch.use_deterministic_algorithms(False)
    losses = _losses(run_dir)
    assert sorted(losses) == sorted(GOLDEN)
    for step, value in GOLDEN.items():
        assert losses[step] == pytest.approx(value, rel=1e-4), (step, losses)


def test_seeded_run_reproduces_golden_losses(mini_corpus, tmp_path):
    _assert_golden_losses(str(mini_corpus), tmp_path)


# Golden values from this seed and config (logged at steps 0..3); a change here means
# the data order, windows, model init or loss changed.
GOLDEN = {0: 3.128206253051758, 1: 3.191470146179199, 2: 3.041762113571167, 3: 2.935544013977051}


def test_two_corpora_train_as_their_union(mini_corpus, tmp_path):
    """mini_corpus split in two (8 train + 4 val clips, then the other 8 train clips): data.root=[A,B]
    trains on the same clips in the same order, so the seeded losses are the golden ones."""
    entries = [json.loads(line) for line in (mini_corpus / "manifest.jsonl").read_text().splitlines()]
    train_entries = [e for e in entries if e["split"] == "train"]
    parts = {"A": train_entries[:8] + [e for e in entries if e["split"] == "val"], "B": train_entries[8:]}
    for name, part in parts.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.jsonl").write_text("".join(
            json.dumps({**e, **{k: str(mini_corpus / e[k]) for k in ("audio", "curves", "alignment") if k in e}})
            + "\n" for e in part))
    _assert_golden_losses(f"['{tmp_path / 'A'}','{tmp_path / 'B'}']", tmp_path / "run")


def test_cli_scratch_run_leaves_a_complete_run_dir(mini_corpus, tmp_path):
    run_dir = tmp_path / "run"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train.py"), "experiment=scratch", "trainer.max_steps=30",
         f"data.root={mini_corpus}", f"run.dir={run_dir}", "trainer.val_check_interval=15",
         "data.batch_size=8", "callbacks.progress_bar.refresh_rate=0"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert elapsed < 120
    for name in ("config.yaml", "command.txt", "git.json", "metrics/metrics.csv", "checkpoints/last.ckpt", "done.json"):
        assert (run_dir / name).is_file(), name
    assert "experiment=scratch" in (run_dir / "command.txt").read_text()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    plots = sorted((run_dir / "plots").glob("val_step*.png"))
    assert [p.name for p in plots] == ["val_step0000015.png", "val_step0000030.png"]
    assert max(_losses(run_dir)) == 29

    from lipsync.training.evaluate import main as evaluate

    assert evaluate(["--checkpoint", str(run_dir), "--data", str(mini_corpus), "--split", "val",
                     "--out", str(tmp_path / "eval"), "--group-by", "speaker"]) == 0
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["clips"] == 4 and 0 <= report["metrics"]["viseme_acc"] <= 1 and report["groups"]
    assert (tmp_path / "eval" / "curves_val.png").stat().st_size > 10_000
    assert evaluate(["--checkpoint", str(run_dir), "--data", str(mini_corpus), "--split", "val",
                     "--out", str(tmp_path / "no_plot"), "--plots", "0"]) == 0
    assert sorted(p.name for p in (tmp_path / "no_plot").iterdir()) == ["metrics.json"]

    again = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "experiment=scratch",
                            f"data.root={mini_corpus}", f"run.dir={run_dir}"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "is finished" in again.stdout


@pytest.mark.parametrize("hub_offline", ["1", "0"])
def test_base_without_network_fails_fast_naming_both_fixes(tmp_path, hub_offline):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HUB_OFFLINE"] = hub_offline
    env["HF_HOME"] = str(tmp_path / "empty_hf_home")  # no cached copy
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "experiment=base",
                           f"run.dir={tmp_path / 'run'}", "data.root=" + str(REPO / "data" / "demo")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("error: cannot load encoder 'facebook/wav2vec2-base'")
    assert "model.encoder.pretrained=" in message and "experiment=scratch" in message
    assert time.monotonic() - start < 60  # process start-up + corpus check; the hub probe itself is <= 3 s


def test_exclude_leaves_out_clips_by_manifest_field(mini_corpus):
    from omegaconf import OmegaConf

    from lipsync.data.manifest import manifest_field
    from lipsync.data.validate import load_clips
    from lipsync.training.train import _exclude

    clips = load_clips(mini_corpus, "oculus15", 30, progress=False)
    speaker_of = manifest_field(mini_corpus, "speaker")
    dropped = speaker_of[clips[0].id]
    kept = _exclude(clips, mini_corpus, OmegaConf.create({"speaker": [dropped]}))
    assert kept and all(speaker_of[c.id] != dropped for c in kept)
    assert len(kept) == sum(speaker_of[c.id] != dropped for c in clips)


def test_balance_by_repeats_smaller_groups(mini_corpus, tmp_path, capsys):
    from collections import Counter

    from lipsync.data.validate import load_clips
    from lipsync.training.train import _balance

    clips = [c for c in load_clips(mini_corpus, "oculus15", 30, progress=False) if c.split == "train"]
    # A manifest whose "group" field splits the 16 clips 12 / 3 / 1.
    group_of = {c.id: "a" if i < 12 else "b" if i < 15 else "c" for i, c in enumerate(clips)}
    entries = [json.loads(line) for line in (mini_corpus / "manifest.jsonl").read_text().splitlines()]
    (tmp_path / "manifest.jsonl").write_text("".join(
        json.dumps({**e, **({"group": group_of[e["id"]]} if e["id"] in group_of else {})}) + "\n" for e in entries))
    balanced = _balance(clips, tmp_path, "group")
    assert Counter(group_of[c.id] for c in balanced) == {"a": 12, "b": 12, "c": 12}
    assert Counter(c.id for c in balanced)[clips[-1].id] == 12  # the lone "c" clip, 12 times
    assert _balance(clips, tmp_path, None) == clips
    assert capsys.readouterr().out.strip() == "data.balance_by: a 12 clips x1, b 3 clips x4, c 1 clips x12"
    # A field with a value per clip (like speaker) prints the first eight and a count, not all of them.
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps({**e, "group": e["id"]}) + "\n" for e in entries))
    assert len(_balance(clips, tmp_path, "group")) == 16
    printed = capsys.readouterr().out
    assert printed.count("clips x1") == 8 and "... and 8 more (16 in all)" in printed
    with pytest.raises(ValueError, match="data.balance_by=voice: 16 training clip"):
        _balance(clips, tmp_path, "voice")


def test_options_added_later_are_watched_only_when_on():
    """Off, data.balance_by, data.unscored_phones, model.encoder.cmn_window_s and model.encoder.freq_conv stay out of
    the watched config: a run started before they existed resumes after an upgrade with the same config hash."""
    from lipsync.training.train import watched_config

    cfg = compose_train(["experiment=scratch"])
    assert "balance_by" not in watched_config(cfg)["data"]
    assert "unscored_phones" not in watched_config(cfg)["data"]
    assert not {"cmn_window_s", "freq_conv"} & set(watched_config(cfg)["model"]["encoder"])
    cfg.data.balance_by, cfg.model.encoder.cmn_window_s, cfg.model.encoder.freq_conv = "engine", 1.5, [8, 16]
    assert watched_config(cfg)["data"]["balance_by"] == "engine"
    assert watched_config(cfg)["model"]["encoder"]["cmn_window_s"] == 1.5
    assert watched_config(cfg)["model"]["encoder"]["freq_conv"] == [8, 16]


def _with_engine(mini_corpus, folder, espeak: set) -> list:
    """mini_corpus's manifest in ``folder`` with an engine field: "espeak" for the ids in ``espeak``, else "other"."""
    entries = [json.loads(line) for line in (mini_corpus / "manifest.jsonl").read_text().splitlines()]
    (folder / "manifest.jsonl").write_text("".join(json.dumps(
        {**e, **{k: str(mini_corpus / e[k]) for k in ("audio", "curves", "alignment")},
         "engine": "espeak" if e["id"] in espeak else "other"}) + "\n" for e in entries))
    return entries


def test_unscored_phones_give_their_frames_no_target_and_no_gradient(mini_corpus, tmp_path, capsys):
    """data.unscored_phones={engine: {espeak: [n, m]}}: in espeak's clips, exactly the frames inside an /n/ or /m/
    lose their target; through windows, speed changes and collate they stay out of the loss, which gives them
    no gradient."""
    import numpy as np
    from omegaconf import OmegaConf

    from lipsync.data.alignment import read_alignment_tsv
    from lipsync.data.augment import Augmenter
    from lipsync.data.dataset import WindowDataset, collate
    from lipsync.data.validate import load_clips
    from lipsync.rigs import load_rig
    from lipsync.training.losses import CurveLoss
    from lipsync.training.train import _unscore

    clips = [c for c in load_clips(mini_corpus, "oculus15", 30, progress=False) if c.split == "train"]
    espeak = {c.id for c in clips[:8]}
    _with_engine(mini_corpus, tmp_path, espeak)
    before = [c.curves.copy() for c in clips]
    out = _unscore(clips, tmp_path, OmegaConf.create({"engine": {"espeak": ["n", "m"]}}), 30)
    assert [c.id for c in out] == [c.id for c in clips]
    assert all(np.array_equal(c.curves, b) for c, b in zip(clips, before))  # the caller's clips stay whole
    unscored = 0
    for clip, new in zip(clips, out):
        if clip.id not in espeak:
            assert new is clip
            continue
        phones = read_alignment_tsv(mini_corpus / "alignments" / f"{clip.id}.tsv")
        in_nasal = np.array([any(p.label in ("n", "m") and p.start <= t / 30 < p.end for p in phones)
                             for t in range(len(clip.curves))])
        assert np.array_equal(np.isnan(new.curves).all(1), in_nasal) and not np.isnan(new.curves[~in_nasal]).any()
        assert np.array_equal(new.curves[~in_nasal], clip.curves[~in_nasal])
        unscored += int(in_nasal.sum())
    assert unscored > 20
    assert f"data.unscored_phones.engine.espeak: the loss skips {unscored} of" in capsys.readouterr().out

    speed = OmegaConf.create({"enabled": True, "effects": {"speed": {"p": 1.0, "min_factor": 0.9, "max_factor": 1.1}}})
    windows = WindowDataset([c for c in out if c.id in espeak], 30, window_seconds=1.0, seed=0,
                            windows_per_clip=4, augment=Augmenter(speed, seed=0, fps=30))
    batch = collate([windows[i] for i in range(len(windows))])
    assert not batch["curves"].isnan().any()
    assert batch["scored"].sum() < batch["mask"].sum() and not (batch["scored"] & ~batch["mask"]).any()

    loss = CurveLoss(tuple(load_rig("oculus15").channels), emphasis_balanced=True, viseme_ce_weight=0.5)
    logits = torch.randn(batch["curves"].shape, requires_grad=True)
    loss(logits, batch["curves"], batch["scored"])["loss"].backward()
    unscored_frames = batch["mask"] & ~batch["scored"]
    assert logits.grad[unscored_frames].abs().max() == 0 and logits.grad[batch["scored"]].abs().max() > 0
    changed = batch["curves"].clone()
    changed[unscored_frames] = 1.0  # whatever the target there, the loss is the same
    assert torch.equal(loss(logits, changed, batch["scored"])["loss"],
                       loss(logits, batch["curves"], batch["scored"])["loss"])

    # Through the config: a short run trains with finite losses and says what it skipped.
    cfg = compose_train(["experiment=scratch", f"data.root={tmp_path}", f"run.dir={tmp_path / 'run'}",
                         "trainer.max_steps=3", "trainer.log_every_n_steps=1", "data.batch_size=4",
                         "callbacks.progress_bar.refresh_rate=0", "data.unscored_phones={engine:{espeak:[n,m]}}",
                         *SMALL_MODEL])
    assert train(cfg) == 0
    assert f"the loss skips {unscored} of" in capsys.readouterr().out
    assert len(_losses(tmp_path / "run")) == 3 and all(np.isfinite(list(_losses(tmp_path / "run").values())))


def test_unscored_phones_refuse_a_phone_no_clip_has_and_clips_without_alignments(mini_corpus, tmp_path):
    from omegaconf import OmegaConf

    from lipsync.data.validate import load_clips
    from lipsync.training.train import _unscore

    clips = [c for c in load_clips(mini_corpus, "oculus15", 30, progress=False) if c.split == "train"]
    entries = _with_engine(mini_corpus, tmp_path, {c.id for c in clips[:8]})
    with pytest.raises(ValueError, match=r"unscored_phones.engine.espeak: phone\(s\) \['ng'\] are in no alignment of "
                                         r"the 8 training clips with engine=espeak; their phones: .*\bm\b"):
        _unscore(clips, tmp_path, OmegaConf.create({"engine": {"espeak": ["m", "ng"]}}), 30)
    with pytest.raises(ValueError, match="espaek: no clip of .+ has engine=espaek; its values: espeak, other"):
        _unscore(clips, tmp_path, OmegaConf.create({"engine": {"espaek": ["m"]}}), 30)
    # The fold that holds espeak out trains on no espeak clip: nothing to skip, not an error.
    others = clips[8:]
    assert _unscore(others, tmp_path, OmegaConf.create({"engine": {"espeak": ["m"]}}), 30) == others
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(
        {**{k: v for k, v in e.items() if k != "alignment"}, "audio": str(mini_corpus / e["audio"]),
         "curves": str(mini_corpus / e["curves"]), "engine": "espeak"}) + "\n" for e in entries))
    with pytest.raises(ValueError, match=r"16 training clip\(s\) have no alignment in manifest.jsonl \(first: "):
        _unscore(clips, tmp_path, OmegaConf.create({"engine": {"espeak": ["m"]}}), 30)


def test_balance_by_corpus_weighs_a_few_takes_up_against_a_large_corpus(mini_corpus, tmp_path, capsys):
    """Takes made with prepare_data share no manifest field with a built corpus; ``corpus`` (the data.root entry
    a clip comes from) still groups them, for data.balance_by and data.exclude alike."""
    from collections import Counter

    from omegaconf import OmegaConf

    from lipsync.data.manifest import manifest_field
    from lipsync.data.validate import load_clips
    from lipsync.training.train import _balance, _exclude

    entries = [json.loads(line) for line in (mini_corpus / "manifest.jsonl").read_text().splitlines()]
    takes = tmp_path / "takes"
    takes.mkdir()
    (takes / "manifest.jsonl").write_text("".join(
        json.dumps({"id": "take_" + e["id"], "split": "train",
                    **{k: str(mini_corpus / e[k]) for k in ("audio", "curves") if k in e}}) + "\n"
        for e in entries[:3]))
    roots = [str(mini_corpus), str(takes)]
    clips = [c for c in load_clips(roots, "oculus15", 30, progress=False) if c.split == "train"]
    corpus_of = manifest_field(roots, "corpus")
    assert Counter(corpus_of[c.id] for c in clips) == {str(mini_corpus): 16, str(takes): 3}
    balanced = _balance(clips, roots, "corpus")
    assert Counter(corpus_of[c.id] for c in balanced) == {str(mini_corpus): 16, str(takes): 15}
    assert capsys.readouterr().out.strip() == f"data.balance_by: {mini_corpus} 16 clips x1, {takes} 3 clips x5"
    kept = _exclude(clips, roots, OmegaConf.create({"corpus": [str(takes)]}))
    assert [c.id for c in kept] == [c.id for c in clips if not c.id.startswith("take_")]
    # A manifest that sets its own "corpus" keeps it.
    (takes / "manifest.jsonl").write_text("".join(
        json.dumps({**json.loads(line), "corpus": "studio"}) + "\n"
        for line in (takes / "manifest.jsonl").read_text().splitlines()))
    assert set(manifest_field(roots, "corpus").values()) == {str(mini_corpus), "studio"}


@pytest.fixture(scope="module")
def exported_run(mini_corpus, tmp_path_factory):
    """A short run of seed 1 (so its weights differ from a seed-0 start) and its ONNX export."""
    from lipsync.export.cli import main as export_main

    run_dir = tmp_path_factory.mktemp("source") / "run"
    cfg = compose_train(["experiment=scratch", f"data.root={mini_corpus}", f"run.dir={run_dir}", "seed=1",
                         "trainer.max_steps=2", "callbacks.progress_bar.refresh_rate=0", *SMALL_MODEL])
    assert train(cfg) == 0
    assert export_main(["--checkpoint", str(run_dir), "--out", str(run_dir / "model.onnx")]) == 0
    return run_dir


@pytest.mark.parametrize("source", ["model.onnx", "run dir"])
def test_init_from_starts_the_run_from_the_source_weights(mini_corpus, exported_run, tmp_path, source, capsys):
    """With the learning rate at 0, the fine-tuned run's weights stay exactly the source's."""
    from lipsync.model.checkpoint import load_model

    spec = exported_run / "model.onnx" if source == "model.onnx" else exported_run
    cfg = compose_train(["experiment=scratch", f"data.root={mini_corpus}", f"run.dir={tmp_path}", f"init_from={spec}",
                         "optim.optimizer.lr=0", "trainer.max_steps=2", "callbacks.progress_bar.refresh_rate=0",
                         *SMALL_MODEL])
    assert train(cfg) == 0
    assert f"init_from: starting from the weights of {spec}" in capsys.readouterr().out
    source_state = load_model(exported_run)[0].state_dict()
    tuned = load_model(tmp_path)[0].state_dict()
    for key, value in source_state.items():
        assert torch.allclose(tuned[key], value, atol=1e-6), key


def test_init_from_another_architecture_names_the_differences(mini_corpus, exported_run, tmp_path):
    from lipsync.model.checkpoint import CheckpointError

    cfg = compose_train(["experiment=scratch", f"data.root={mini_corpus}", f"run.dir={tmp_path}",
                         f"init_from={exported_run / 'model.onnx'}", *SMALL_MODEL, "model.head.hidden=16"])
    with pytest.raises(CheckpointError, match=r"model\.head\.hidden: config 16, .* 32"):
        train(cfg)


def test_init_from_an_unknown_name_lists_the_shipped_models():
    from omegaconf import OmegaConf

    from lipsync.model import build_model
    from lipsync.model.checkpoint import CheckpointError
    from lipsync.model.warm_start import warm_start

    config = OmegaConf.to_container(compose_train(["experiment=finetune"]).model, resolve=True)
    with pytest.raises(CheckpointError, match=r"init_from=nosuch: .*shipped: default, ja"):
        warm_start(build_model(config), config, "nosuch")
