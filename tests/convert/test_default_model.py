"""The shipped models: scripts/convert.py works right after install, with no training and no download.

``default`` (no --model) is for any speech; ``ja`` (``--model ja``) for Japanese.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from lipsync.audio import load_audio, num_frames
from lipsync.convert.cli import main
from lipsync.convert.predictor import ModelLoadError, load_predictor, load_predictors, read_model_card, shipped_models
from lipsync.curves import Curves
from lipsync.curves.csv import read_curves_csv
from lipsync.data.augment import make_noise
from support import DEMO

JAPANESE = Path(__file__).parent / "fixtures" / "ja_m001.flac"  # a voice profile training never heard; README there


def test_shipped_models_come_with_their_cards():
    models = shipped_models()
    assert set(models) == {"default", "ja"}
    for path in models.values():
        card = read_model_card(path)
        assert path.stat().st_size < 12_000_000  # a few MB, in the package
        assert card["model_file"] == path.name
        assert card["rig"] == "oculus15" and len(card["channels"]) == 15 and card["fps"] == 30
        assert card["metrics"] and card["training_run"]["command"]


def test_shipped_models_rebuild_as_trainable_models_for_experiment_finetune():
    """experiment=finetune's architecture is the shipped models': their weights load into it (and reproduce them)."""
    from omegaconf import OmegaConf

    from lipsync.model import build_model
    from lipsync.model.warm_start import warm_start
    from support import compose_train

    cfg = OmegaConf.to_container(compose_train(["experiment=finetune"]).model, resolve=True)
    for name in shipped_models():
        model = build_model(cfg)
        before = model.head.out.weight.detach().clone()
        assert name in warm_start(model, cfg, name)
        assert not torch.equal(model.head.out.weight, before)


def test_experiment_finetune_trains_with_the_shipped_models_loss():
    """Fine-tuning continues a shipped model with the loss it was trained with: every loss override of each
    card's training command (the viseme cross-entropy, the emphasis) is experiment=finetune's value too."""
    import shlex

    from omegaconf import OmegaConf

    from support import compose_train

    cfg = compose_train(["experiment=finetune"])
    for name, path in shipped_models().items():
        command = read_model_card(path)["training_run"]["command"]
        overrides = [arg.lstrip("+").split("=", 1) for arg in shlex.split(command)
                     if arg.lstrip("+").startswith("loss.")]
        assert any(key == "loss.viseme_ce_weight" for key, _ in overrides), (name, command)
        for key, value in overrides:
            trained = OmegaConf.select(OmegaConf.from_dotlist([f"{key}={value}"]), key)
            assert OmegaConf.select(cfg, key) == trained, (name, key, trained, OmegaConf.select(cfg, key))


def _agreement(curves_csv: Path, truth_csv: Path) -> float:
    """Share of frames whose strongest channel is the one the clip's own alignment puts there."""
    curves, truth = read_curves_csv(curves_csv), read_curves_csv(truth_csv)
    assert curves.n_frames == truth.n_frames
    return float(np.mean(curves.values.argmax(1) == truth.values.argmax(1)))


def test_japanese_model_by_name_follows_japanese_speech(tmp_path, capsys):
    assert main([str(JAPANESE), "--model", "ja", "--out", str(tmp_path / "ja"), "--no-progress"]) == 0
    assert "shipped model 'ja'" in capsys.readouterr().err
    assert main([str(JAPANESE), "--out", str(tmp_path / "default"), "--no-progress"]) == 0
    truth = JAPANESE.with_suffix(".csv")
    ja, default = _agreement(tmp_path / "ja" / "ja_m001.csv", truth), _agreement(tmp_path / "default" / "ja_m001.csv", truth)
    assert ja > 0.9 and ja > default + 0.2, (ja, default)  # why it ships: the default model never heard Japanese


def test_an_ensemble_of_models_runs_their_mean_curves(tiny_onnx_arkit):
    shipped = shipped_models()
    wave = load_audio(DEMO / "audio" / "clip00000.flac")
    alone = [load_predictor(shipped[name]).predict(wave).values for name in ("default", "ja")]
    both = load_predictors([shipped["default"], shipped["ja"]])
    np.testing.assert_allclose(both.predict(wave).values, (alone[0] + alone[1]) / 2, atol=1e-6)
    assert np.abs(alone[0] - alone[1]).max() > 0.1  # two different models, so the mean is neither
    assert both.describe()["kind"] == "ensemble" and len(both.describe()["members"]) == 2
    with pytest.raises(ModelLoadError, match="in channels, fps: an ensemble averages models of one rig, fps and sample rate"):
        load_predictors([shipped["default"], tiny_onnx_arkit])


def test_convert_runs_an_ensemble_given_model_more_than_once(tmp_path, tiny_onnx_arkit, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(DEMO / "audio" / "clip00000.flac", src / "line.flac")
    for name in ("default", "ja"):
        assert main([str(src), "--model", name, "--out", str(tmp_path / name), "--format", "npz", "--no-progress"]) == 0
    alone = [np.load(tmp_path / name / "line.npz")["values"] for name in ("default", "ja")]
    for jobs in ("1", "2"):  # the workers load the ensemble too
        out = tmp_path / f"both{jobs}"
        assert main([str(src), "--model", "default", "--model", "ja", "--out", str(out), "--format", "npz,json",
                     "--jobs", jobs, "--no-progress"]) == 0
        np.testing.assert_allclose(np.load(out / "line.npz")["values"], (alone[0] + alone[1]) / 2, atol=1e-5)
    capsys.readouterr()
    out = tmp_path / "mixed"
    assert main([str(src), "--model", "default", "--model", str(tiny_onnx_arkit), "--out", str(out),
                 "--no-progress"]) == 1
    assert "differs from" in capsys.readouterr().err and not out.exists()


def test_unknown_model_name_lists_the_shipped_ones(tmp_path, capsys):
    assert main([str(JAPANESE), "--model", "fr", "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--model fr: no such file or folder, and not a shipped model (shipped: default, ja)" in err
    assert not (tmp_path / "out").exists()


def test_convert_without_model_uses_the_shipped_one(tmp_path, capsys):
    entry = json.loads((DEMO / "manifest.jsonl").read_text().splitlines()[0])
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(DEMO / entry["audio"], src / "line.flac")
    assert main([str(src), "--out", str(tmp_path / "out"), "--format", "csv,rhubarb-tsv", "--no-progress"]) == 0
    assert "shipped model 'default'" in capsys.readouterr().err
    curves = read_curves_csv(tmp_path / "out" / "line.csv")
    assert curves.n_frames == num_frames(len(load_audio(src / "line.flac")), 30)
    truth = read_curves_csv(DEMO / entry["curves"])
    n = min(truth.n_frames, curves.n_frames)
    agree = np.mean(curves.values[:n].argmax(1) == truth.values[:n].argmax(1))
    assert agree > 0.6, agree  # a trained model, not a stand-in: it follows the clip's own visemes
    assert (tmp_path / "out" / "line.rhubarb.tsv").read_text().strip()


def _moving_share(curves: Curves) -> float:
    """Share of frames where any mouth shape but rest (sil) is at 0.5 or more."""
    return float(np.mean(np.delete(curves.values, curves.channels.index("sil"), axis=1).max(axis=1) >= 0.5))


def test_shipped_model_keeps_the_mouth_at_rest_on_noise_alone(tmp_path):
    """Room tone, hum, hiss and noise with no voice in them are not speech (the old model mouthed along to pink noise)."""
    src = tmp_path / "noise"
    src.mkdir()
    rng = np.random.default_rng(0)
    for kind in ("white", "pink", "brown", "band", "hum"):
        x = make_noise(kind, 5 * 16000, rng, [])
        sf.write(src / f"{kind}.wav", (x * 10 ** (-25 / 20) / np.sqrt(np.mean(x**2))).astype(np.float32), 16000)
    assert main([str(src), "--out", str(tmp_path / "out"), "--format", "csv", "--no-progress"]) == 0
    for kind in ("white", "pink", "brown", "band", "hum"):
        curves = read_curves_csv(tmp_path / "out" / f"{kind}.csv")
        moving = _moving_share(curves)
        assert moving < 0.05 and np.median(curves.values[:, curves.channels.index("sil")]) > 0.5, (kind, moving)


def test_shipped_model_keeps_the_mouth_at_rest_on_a_burst_of_noise(tmp_path):
    """ALSA's 1.4 s Noise.wav: the model before cmn_window_s moved its lips on 86% of its frames."""
    noise = Path("/usr/share/sounds/alsa/Noise.wav")
    if not noise.exists():
        pytest.skip(f"{noise} missing: install Debian alsa-utils")
    assert main([str(noise), "--out", str(tmp_path), "--format", "csv", "--no-progress"]) == 0
    moving = _moving_share(read_curves_csv(tmp_path / "Noise.csv"))
    assert moving < 0.05, moving
