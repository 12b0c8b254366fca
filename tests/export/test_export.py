"""Export: checkpoint -> model.onnx + model.json, parity with the eager model, then conversion with it."""
import json

import numpy as np
import pytest
import torch

from lipsync.audio import load_audio
from lipsync.convert.cli import main as convert_main
from lipsync.convert.predictor import load_predictor
from lipsync.curves.csv import read_curves_csv
from lipsync.export.cli import EXIT_INPUT, EXIT_OK, EXIT_PARITY, main
from lipsync.model import build_model
from lipsync.model.checkpoint import portable_model_config
from lipsync.training.evaluate import main as evaluate_main
from support import DEMO

MEL_TCN = {
    "rig": "oculus15", "fps": 30, "sample_rate": 16000,
    "encoder": {"_target_": "lipsync.model.encoders.LogMelEncoder", "n_mels": 40, "hidden": 32},
    "head": {"_target_": "lipsync.model.heads.TemporalConvHead", "hidden": 16, "layers": 3, "kernel": 3,
             "dropout": 0.0, "causal": False},
}
TINY_W2V_GRU = {
    "rig": "arkit52", "fps": 60, "sample_rate": 16000,
    "encoder": {"_target_": "lipsync.model.encoders.HFEncoder", "pretrained": None, "freeze": "none", "normalize": True,
                "config": {"model_type": "wav2vec2", "hidden_size": 32, "num_hidden_layers": 2,
                           "num_attention_heads": 2, "intermediate_size": 64, "conv_dim": [16] * 7,
                           "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2}},
    "head": {"_target_": "lipsync.model.heads.GRUHead", "hidden": 16, "layers": 1, "bidirectional": True,
             "dropout": 0.0},
}
CARD_KEYS = {"rig", "channels", "fps", "sample_rate", "encoder", "training_run", "metrics", "package_version", "opset",
             "inputs", "outputs", "parity", "format", "version", "model_file"}


def write_run(run_dir, model_config, seed: int = 0) -> None:
    """A run dir as training leaves it: checkpoints/last.ckpt with lipsync metadata, done.json, git.json, command."""
    torch.manual_seed(seed)
    model = build_model(model_config)
    checkpoint = {
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "global_step": 1234,
        "lipsync": {"model_config": portable_model_config(model_config, model), "rig": model.rig.name,
                    "channels": list(model.channels), "fps": model.fps, "sample_rate": 16000},
    }
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save(checkpoint, run_dir / "checkpoints" / "last.ckpt")
    (run_dir / "done.json").write_text(json.dumps({"global_step": 1234, "metrics": {"val/mae": 0.071, "val/loss": 0.2}}))
    (run_dir / "git.json").write_text(json.dumps({"commit": "abc123", "dirty": False}))
    (run_dir / "command.txt").write_text("python scripts/train.py experiment=scratch\n")


@pytest.fixture(scope="module")
def mel_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "scratch" / "r1"
    write_run(run_dir, MEL_TCN)
    return run_dir


def test_export_writes_a_complete_card_and_a_dynamic_graph(tmp_path, mel_run, capsys):
    out = tmp_path / "export" / "model.onnx"
    assert main(["--checkpoint", str(mel_run), "--out", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "0.3 s" in printed and "65 s" in printed and "2 x 0.3 s" in printed and "largest difference" in printed
    card = json.loads(out.with_suffix(".json").read_text())
    assert CARD_KEYS <= set(card)
    assert card["rig"] == "oculus15" and len(card["channels"]) == 15 and card["fps"] == 30.0
    assert card["sample_rate"] == 16000 and card["encoder"] == "LogMelEncoder" and card["opset"] == 17
    assert card["metrics"] == {"val/mae": 0.071, "val/loss": 0.2}
    run = card["training_run"]
    assert run["run_dir"] == str(mel_run.resolve()) and run["global_step"] == 1234 and run["git"]["commit"] == "abc123"
    assert card["parity"]["max_abs_diff"] <= card["parity"]["tolerance"] == 1e-3
    assert {c["audio"] for c in card["parity"]["cases"]} >= {"0.3 s", "65 s"}

    # Dynamic axes on the written file: any length, any batch of equal-length clips.
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch, n in [(1, 4000), (3, 23457), (2, 160000)]:
        wave = np.random.default_rng(n).normal(0, 0.1, (batch, n)).astype(np.float32)
        (curves,) = session.run(["curves"], {"waveform": wave, "lengths": np.full(batch, n, np.int64)})
        assert curves.shape == (batch, int(np.floor(n * 30 / 16000 + 0.5)), 15)


def test_exported_model_converts_like_the_checkpoint(tmp_path, mel_run, capsys):
    out = tmp_path / "model.onnx"
    assert main(["--checkpoint", str(mel_run), "--out", str(out)]) == EXIT_OK
    audio = "/usr/share/sounds/alsa/Front_Center.wav"
    for name, model in (("onnx", out), ("ckpt", mel_run)):
        assert convert_main([audio, "--model", str(model), "--out", str(tmp_path / name), "--no-progress"]) == 0
    capsys.readouterr()
    via_onnx = read_curves_csv(tmp_path / "onnx" / "Front_Center.csv")
    via_ckpt = read_curves_csv(tmp_path / "ckpt" / "Front_Center.csv")
    assert via_onnx.n_frames == via_ckpt.n_frames and np.abs(via_onnx.values - via_ckpt.values).max() <= 1e-4


def test_exported_model_scores_like_the_checkpoint(tmp_path, mel_run, capsys):
    """scripts/evaluate.py runs an .onnx as conversion does, so an export is scored as it will run."""
    out = tmp_path / "model.onnx"
    assert main(["--checkpoint", str(mel_run), "--out", str(out)]) == EXIT_OK
    reports = {}
    for name, model in (("onnx", out), ("ckpt", mel_run)):
        assert evaluate_main(["--model", str(model), "--data", str(DEMO), "--split", "val",
                              "--out", str(tmp_path / name), "--plots", "1"]) == 0
        reports[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert reports["onnx"]["model"] == str(out) and reports["onnx"]["clips"] == reports["ckpt"]["clips"] == 32
    for key, value in reports["ckpt"]["metrics"].items():
        assert reports["onnx"]["metrics"][key] == pytest.approx(value, abs=2e-3, nan_ok=True), key
    assert evaluate_main(["--model", "no_such_model", "--data", str(DEMO)]) == 1
    assert "not a shipped model (shipped: default" in capsys.readouterr().err


@pytest.mark.slow
def test_wav2vec2_encoder_exports_with_parity(tmp_path, capsys):
    run_dir = tmp_path / "w2v"
    write_run(run_dir, TINY_W2V_GRU)
    out = tmp_path / "w2v.onnx"
    assert main(["--checkpoint", str(run_dir / "checkpoints" / "last.ckpt"), "--out", str(out)]) == EXIT_OK
    capsys.readouterr()
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["rig"] == "arkit52" and card["fps"] == 60.0 and card["encoder"] == "wav2vec2 (trained from scratch)"
    predictor = load_predictor(out)
    assert predictor.predict(np.zeros(4800, np.float32) + 0.01).values.shape == (18, 52)


def test_parity_failure_writes_nothing(tmp_path, mel_run, monkeypatch, capsys):
    import lipsync.export.onnx_export as onnx_export

    real_export = onnx_export.export_onnx_bytes

    def export_a_different_model(model, **kwargs):
        broken = build_model(MEL_TCN)  # fresh random weights: a wrong graph
        return real_export(broken, **kwargs)

    monkeypatch.setattr(onnx_export, "export_onnx_bytes", export_a_different_model)
    out = tmp_path / "model.onnx"
    assert main(["--checkpoint", str(mel_run), "--out", str(out)]) == EXIT_PARITY
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "nothing written" in captured.err
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_bad_inputs_exit_1(tmp_path, mel_run, capsys):
    assert main(["--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "m.onnx")]) == EXIT_INPUT
    assert "no such checkpoint" in capsys.readouterr().err
    not_ckpt = tmp_path / "x.ckpt"
    not_ckpt.write_text("hello")
    assert main(["--checkpoint", str(not_ckpt), "--out", str(tmp_path / "m.onnx")]) == EXIT_INPUT
    assert "cannot read checkpoint" in capsys.readouterr().err
    existing = tmp_path / "done.onnx"
    existing.write_bytes(b"old")
    assert main(["--checkpoint", str(mel_run), "--out", str(existing)]) == EXIT_INPUT
    assert "--overwrite" in capsys.readouterr().err and existing.read_bytes() == b"old"
    assert main(["--checkpoint", str(mel_run), "--out", str(tmp_path / "model.pt")]) == EXIT_INPUT


MEL_GRU = {**MEL_TCN, "encoder": {**MEL_TCN["encoder"], "level": True, "cmn_window_s": 1.5},  # the shipped kind, + cmn
           "head": {"_target_": "lipsync.model.heads.GRUHead", "hidden": 24, "layers": 2,
                    "bidirectional": True, "dropout": 0.0}}
MEL_GRU_FREQ = {**MEL_GRU, "encoder": {**MEL_GRU["encoder"], "freq_conv": [4, 4]}}
MEL_TRANSFORMER = {**MEL_TCN, "head": {"_target_": "lipsync.model.heads.TransformerHead", "hidden": 16, "layers": 2,
                                       "heads": 2, "dropout": 0.0}}


def _export_run(tmp_path, model_config):
    """A run dir of ``model_config`` under tmp_path, exported to tmp_path/model.onnx (returned)."""
    write_run(tmp_path / "run", model_config)
    out = tmp_path / "model.onnx"
    assert main(["--checkpoint", str(tmp_path / "run"), "--out", str(out)]) == EXIT_OK
    return out


@pytest.mark.parametrize("config", [MEL_TCN, MEL_GRU, MEL_GRU_FREQ, MEL_TRANSFORMER],
                         ids=["mel_tcn", "mel_gru2", "mel_gru2_freq_conv", "mel_transformer"])
def test_an_export_rebuilds_the_trainable_model_with_its_weights(tmp_path, config):
    """Fine-tuning an export: every parameter read back from the graph equals the checkpoint's."""
    from lipsync.model.checkpoint import load_model
    from lipsync.model.from_onnx import load_exported

    out = _export_run(tmp_path, config)
    rebuilt, card = load_exported(out)
    assert card["model_config"]["head"] == config["head"]
    trained = load_model(tmp_path / "run")[0].state_dict()
    rebuilt_state = rebuilt.state_dict()
    assert set(rebuilt_state) == set(trained)
    for key, value in trained.items():
        assert torch.allclose(rebuilt_state[key], value, atol=1e-6), key


def test_a_wav2vec2_export_rebuilds_with_the_weights_it_computes(tmp_path):
    """Group norm and weight norm are rewritten by the exporter, and attention's q/k/v share a shape: every weight
    still comes back. Weights are moved off their initial values first (group norm starts at 1 and 0, weight norm's
    direction at its weight), so a mix-up cannot hide behind equal values."""
    from lipsync.model.checkpoint import load_model
    from lipsync.model.from_onnx import load_exported

    write_run(tmp_path / "run", TINY_W2V_GRU)
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=False)
    generator = torch.Generator().manual_seed(1)
    for key, value in checkpoint["state_dict"].items():
        value += 0.05 * torch.randn(value.shape, generator=generator)
        if key.endswith("parametrizations.weight.original1"):
            value *= 3.0  # the same weight with a longer direction vector
    torch.save(checkpoint, path)
    out = tmp_path / "model.onnx"
    assert main(["--checkpoint", str(tmp_path / "run"), "--out", str(out)]) == EXIT_OK

    rebuilt, _ = load_exported(out)
    trained = load_model(tmp_path / "run")[0]
    rebuilt_state = rebuilt.state_dict()
    compared = 0
    for key, value in trained.state_dict().items():
        if "parametrizations" in key or key.endswith("masked_spec_embed"):
            continue
        assert torch.allclose(rebuilt_state[key], value, atol=1e-6), key
        compared += 1
    assert compared > 40
    conv = "encoder.model.encoder.pos_conv_embed.conv"
    assert torch.allclose(rebuilt.get_submodule(conv).weight, trained.get_submodule(conv).weight, atol=1e-6)


def test_an_export_missing_a_weight_refuses_to_fine_tune(tmp_path, monkeypatch):
    """A parameter the graph does not hold (here the mask embedding, once it no longer counts as training-only)
    is refused with a pointer to the checkpoint."""
    import lipsync.model.from_onnx as from_onnx
    from lipsync.model.checkpoint import CheckpointError

    out = _export_run(tmp_path, TINY_W2V_GRU)
    monkeypatch.setattr(from_onnx, "TRAINING_ONLY", ())
    with pytest.raises(CheckpointError, match="found no weights in the graph for .*masked_spec_embed.*from the model's checkpoint"):
        from_onnx.load_exported(out)


def test_a_wrongly_mapped_weight_is_refused_not_used(tmp_path, mel_run, monkeypatch):
    """The rebuilt model must reproduce the graph: GRU gates left in ONNX order fail loudly."""
    import lipsync.model.from_onnx as from_onnx
    from lipsync.model.checkpoint import CheckpointError

    out = _export_run(tmp_path, MEL_GRU)
    monkeypatch.setattr(from_onnx, "_torch_gates", lambda stacked, hidden: stacked)
    with pytest.raises(CheckpointError, match="do not reproduce it"):
        from_onnx.load_exported(out)


def test_an_export_without_model_config_says_to_export_again(tmp_path, mel_run):
    from lipsync.model.checkpoint import CheckpointError
    from lipsync.model.from_onnx import load_exported

    out = tmp_path / "model.onnx"
    assert main(["--checkpoint", str(mel_run), "--out", str(out)]) == EXIT_OK
    card = json.loads(out.with_suffix(".json").read_text())
    del card["model_config"]
    out.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="no model_config.*export the model again"):
        load_exported(out)


def test_several_checkpoints_export_one_graph_of_their_mean_curves(tmp_path, mel_run):
    from lipsync.model.checkpoint import CheckpointError
    from lipsync.model.from_onnx import load_exported

    other = tmp_path / "runs" / "r2"
    write_run(other, MEL_TCN, seed=1)
    out = tmp_path / "ensemble.onnx"
    assert main(["--checkpoint", str(mel_run), "--checkpoint", str(other), "--out", str(out)]) == EXIT_OK
    wave = load_audio(DEMO / "audio" / "clip00000.flac")
    members = [load_predictor(run).predict(wave).values for run in (mel_run, other)]
    assert np.abs(members[0] - members[1]).max() > 0.05  # two different models
    np.testing.assert_allclose(load_predictor(out).predict(wave).values, (members[0] + members[1]) / 2, atol=1e-4)
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["model_config"] is None and card["architecture"]["class"] == "MeanOfModels"
    assert [m["training_run"]["run_dir"] for m in card["architecture"]["members"]] == [str(mel_run), str(other)]
    with pytest.raises(CheckpointError, match=f"an ensemble of 2 models.*fine-tune one of its members instead: {mel_run}"):
        load_exported(out)  # init_from=ensemble.onnx


def test_an_ensemble_of_another_frame_rate_is_refused(tmp_path, mel_run, capsys):
    other = tmp_path / "runs" / "r60"
    write_run(other, {**MEL_TCN, "fps": 60})
    out = tmp_path / "ensemble.onnx"
    assert main(["--checkpoint", str(mel_run), "--checkpoint", str(other), "--out", str(out)]) == EXIT_INPUT
    assert f"{other} differs from {mel_run} in fps" in capsys.readouterr().err
    assert not out.exists()
