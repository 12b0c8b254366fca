"""The plain model: loading paths, padding invariance, exact frame counts, export-friendly graph."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from scipy.signal import lfilter
from transformers import Wav2Vec2Config, Wav2Vec2Model

from lipsync.audio import num_frames
from lipsync.model import LipSyncModel
from lipsync.model.encoders import EncoderLoadError, HFEncoder, LogMelEncoder
from lipsync.model.frames import resample_frames, target_frames
from lipsync.model.heads import GRUHead, TemporalConvHead, TransformerHead
from lipsync.rigs import load_rig

TINY_W2V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                conv_dim=(16,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)


def _speechlike(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    return 0.2 * torch.sin(2 * torch.pi * 180 * t) * torch.rand(n, generator=g) + 0.01 * torch.randn(n, generator=g)


def test_pretrained_folder_loads_back_identically(tmp_path):
    torch.manual_seed(0)
    original = Wav2Vec2Model(Wav2Vec2Config(**TINY_W2V)).eval()
    original.save_pretrained(tmp_path / "w2v")
    encoder = HFEncoder(pretrained=str(tmp_path / "w2v"), freeze="cnn").eval()
    wave = _speechlike(12345, 0)[None]
    with torch.no_grad():
        ours, lengths = encoder(wave, torch.tensor([12345]))
        wave_norm = (wave - wave.mean()) / wave.var(unbiased=False).add(1e-7).sqrt()
        ref = original(wave_norm).last_hidden_state
    assert torch.equal(ours, ref)
    assert int(lengths[0]) == ref.shape[1]


def test_missing_hub_model_fails_fast_with_both_fixes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(EncoderLoadError) as err:
        HFEncoder(pretrained="facebook/wav2vec2-base")
    assert time.monotonic() - start < 5
    assert "model.encoder.pretrained=" in str(err.value) and "experiment=scratch" in str(err.value)


def test_freezing_policies_use_public_api():
    frozen = HFEncoder(config=dict(model_type="wav2vec2", **TINY_W2V), freeze="frozen", unfreeze_after_steps=10)
    assert not any(p.requires_grad for p in frozen.parameters() if p is not frozen.layer_logits)
    frozen.set_step(10)  # fine-tuning starts; the CNN stays frozen
    cnn = frozen.model.feature_extractor.parameters()
    assert not any(p.requires_grad for p in cnn)
    assert all(p.requires_grad for p in frozen.model.encoder.parameters())


def _models():
    rig = load_rig("oculus15")
    torch.manual_seed(0)
    w2v = HFEncoder(config=dict(model_type="wav2vec2", **TINY_W2V), layer_weights=True)
    mel = LogMelEncoder(hidden=32)
    mel_level = LogMelEncoder(hidden=32, level=True)
    for enc in (w2v, mel, mel_level):
        d = enc.output_dim
        for head in (TemporalConvHead(d, 15, hidden=16, layers=3), TemporalConvHead(d, 15, hidden=16, layers=3, causal=True),
                     GRUHead(d, 15, hidden=16), TransformerHead(d, 15, hidden=16, layers=1, heads=2)):
            yield LipSyncModel(enc, head, rig, 30).eval()


@pytest.mark.parametrize("model", list(_models()), ids=lambda m: f"{type(m.encoder).__name__}-{type(m.head).__name__}"
                         + ("-causal" if getattr(m.head, "causal", False) else ""))
def test_padded_batch_equals_each_clip_alone(model):
    lengths = [16000, 9001, 23457]
    clips = [_speechlike(n, i) for i, n in enumerate(lengths)]
    batch = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    with torch.no_grad():
        together = model(batch, torch.tensor(lengths))
        for i, clip in enumerate(clips):
            alone = model(clip[None], torch.tensor([len(clip)]))[0]
            assert alone.shape[0] == num_frames(len(clip), 30)
            # Tolerance: float32 reassociation only (measured ~1e-7).
            torch.testing.assert_close(together[i, : alone.shape[0]], alone, atol=1e-5, rtol=0)
    assert ((together >= 0) & (together <= 1)).all()


@pytest.mark.parametrize("fps", [24, 25, 30, 60])
@pytest.mark.parametrize("seconds", [0.3, 1.017, 2.5, 7.3331])
def test_frame_alignment_gives_exact_counts(fps, seconds):
    n = int(seconds * 16000) + 1  # odd sample counts
    expected = num_frames(n, fps)
    assert int(target_frames(torch.tensor(n), fps, 16000)) == expected
    feats = torch.randn(1, int(n / 320), 4)
    out = resample_frames(feats, torch.tensor(feats.shape[1]), torch.tensor(expected), 50 / fps)
    assert out.shape == (1, expected, 4)
    model = LipSyncModel(LogMelEncoder(hidden=8), GRUHead(8, 15, hidden=8), load_rig("oculus15"), fps).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, n), torch.tensor([n])).shape == (1, expected, 15)


def test_resample_frames_is_linear_interpolation_independent_of_length():
    feats = torch.arange(10, dtype=torch.float32).view(1, 10, 1)
    same = resample_frames(feats, torch.tensor(10), torch.tensor(10), 1.0)
    assert torch.equal(same, feats)
    half = resample_frames(feats, torch.tensor(10), torch.tensor(20), 0.5, offset=0.25)[0, :, 0].numpy()
    np.testing.assert_allclose(half, np.clip(np.arange(20) * 0.5 - 0.25, 0, 9), atol=1e-6)
    # A prefix of the input maps to a prefix of the output: windows agree with whole files.
    prefix = resample_frames(feats[:, :6], torch.tensor(6), torch.tensor(10), 0.5)[0, :, 0]
    whole = resample_frames(feats, torch.tensor(10), torch.tensor(20), 0.5)[0, :10, 0]
    torch.testing.assert_close(prefix, whole)


def test_level_channel_keeps_the_loudness_the_per_frame_normalisation_removes():
    encoder = LogMelEncoder(hidden=16, level=True).eval()
    clip = _speechlike(16000, 0).unsqueeze(0)
    with torch.no_grad():
        loud, quiet = encoder.features(clip), encoder.features(clip * 0.5)  # 6 dB down, above the 1e-5 floor
    voiced = slice(2, -2)  # not the edge frames, half of whose window is padding
    torch.testing.assert_close(loud[:, :80, voiced], quiet[:, :80, voiced], atol=1e-3, rtol=0)  # shape: gain-free
    shift = (loud[:, 80] - quiet[:, 80])[:, voiced]
    torch.testing.assert_close(shift, torch.full_like(shift, math.log(4) / 5), atol=1e-3, rtol=0)  # level: -6 dB
    assert encoder.conv1.in_channels == 81 and LogMelEncoder(hidden=16).conv1.in_channels == 80


def test_lifter_keeps_the_envelope_and_drops_the_excitation():
    """A buzzy voice and a whisper through the same vocal tract look alike once only the envelope is kept."""
    n = 16000
    pulses = np.zeros(n)
    pulses[::133] = 1.0  # 120 Hz glottal pulses
    noise = np.random.default_rng(0).standard_normal(n) * 0.1
    # One vocal tract for both: resonances at 700 Hz and 1200 Hz (an /a/-like envelope).
    poles = [0.97 * np.exp(s * 2j * np.pi * f / 16000) for f in (700, 1200) for s in (1, -1)]
    tract = np.real(np.poly(poles))
    voiced, whispered = (torch.tensor(lfilter([1.0], tract, x), dtype=torch.float32)[None] for x in (pulses, noise))
    middle = slice(5, -5)

    def distance(encoder: LogMelEncoder) -> float:
        with torch.no_grad():
            a, b = encoder.features(voiced)[..., middle], encoder.features(whispered)[..., middle]
        return float((a - b).pow(2).mean())

    full, envelope = LogMelEncoder(hidden=16).eval(), LogMelEncoder(hidden=16, lifter=20).eval()
    assert distance(envelope) < 0.6 * distance(full)  # measured 0.013 vs 0.029
    clip = _speechlike(8000, 1).unsqueeze(0)
    with torch.no_grad():  # all coefficients kept: the features are unchanged
        all_kept = LogMelEncoder(hidden=16, lifter=80).features(clip)
        torch.testing.assert_close(all_kept, full.features(clip), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="lifter=0"):
        LogMelEncoder(hidden=16, lifter=0)


def test_freq_conv_sees_a_formant_pattern_wherever_it_lies_on_the_mel_axis():
    """freq_conv: a pattern moved up the mel axis by 4 bins (what a shorter vocal tract does to every formant) comes
    out of two conv + pool layers as the same features moved by one pooled bin, not as other features."""
    torch.manual_seed(0)
    encoder = LogMelEncoder(hidden=16, freq_conv=[4, 6]).eval()
    t = torch.arange(50, dtype=torch.float32)
    bump = torch.zeros(80, 50)
    bump[28:40] = torch.hann_window(14, periodic=False)[1:-1, None] * torch.sin(t / 3)  # a moving two-formant shape
    low, high = bump.unsqueeze(0), torch.roll(bump, 4, dims=0).unsqueeze(0)
    with torch.no_grad():
        a, b = (encoder.frequency_patterns(x).reshape(6, 20, 50) for x in (low, high))
    # away from the axis' two ends, where the second layer's zero padding meets the first layer's bias
    torch.testing.assert_close(b[:, 2:-1], a[:, 1:-2], atol=1e-6, rtol=0)
    assert float((b - a).abs().max()) > 0.01  # moved, not unchanged
    assert encoder.conv1.in_channels == 6 * 20
    assert LogMelEncoder(hidden=16, level=True, freq_conv=[4]).conv1.in_channels == 4 * 40 + 1
    with pytest.raises(ValueError, match="freq_conv=.*halve to 1"):
        LogMelEncoder(hidden=16, n_mels=8, freq_conv=[2, 2, 2, 2])


def test_cmn_subtracts_a_local_mean_so_chunks_match_the_whole_clip():
    """cmn_window_s: each bin's speech-weighted mean over the window is taken out of the normalised features, so a
    sound that stays the same over the window reads as zero (a voice's or a microphone's fixed colour is part of
    that), and it looks only half a window either side, so chunked conversion sees what the whole clip gives."""
    n = 3 * 16000
    pulses = np.zeros(n)
    pulses[::133] = 1.0  # a steady buzz through one /a/-like tract
    poles = [0.97 * np.exp(s * 2j * np.pi * f / 16000) for f in (700, 1200) for s in (1, -1)]
    steady = torch.tensor(lfilter([1.0], np.real(np.poly(poles)), pulses), dtype=torch.float32)[None]
    plain, cmn = LogMelEncoder(hidden=16).eval(), LogMelEncoder(hidden=16, cmn_window_s=1.5).eval()
    middle = slice(100, -100)
    with torch.no_grad():
        assert float(plain.features(steady)[..., middle].abs().mean()) > 0.5
        assert float(cmn.features(steady)[..., middle].abs().mean()) < 0.02

    speech = torch.cat([_speechlike(16000, seed) * (0.2 + seed) for seed in range(4)]).unsqueeze(0)  # 4 s, 4 levels
    with torch.no_grad():
        whole = cmn.features(speech)
        excerpt = cmn.features(speech[:, 8000:56000])  # 0.5 s to 3.5 s
    # frames of the excerpt that have the whole window (0.75 s) and the STFT (2 frames) inside it
    torch.testing.assert_close(excerpt[..., 77:-77], whole[..., 50 + 77 : 50 + excerpt.shape[-1] - 77], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="cmn_window_s=0"):
        LogMelEncoder(hidden=16, cmn_window_s=0)


def test_spec_augment_colours_training_features_only():
    torch.manual_seed(0)
    plain = LogMelEncoder(hidden=16)
    augmented = LogMelEncoder(hidden=16, spec_augment=dict(tilt_db=12, eq_db=6, freq_masks=2, freq_mask_bins=8))
    augmented.load_state_dict(plain.state_dict())
    clip = _speechlike(16000, 0).unsqueeze(0)
    with torch.no_grad():
        reference = plain.eval().encode(clip)
        assert torch.equal(augmented.eval().encode(clip), reference)  # eval and export: untouched
        augmented.train()
        torch.manual_seed(1)
        first = augmented.encode(clip)
        torch.manual_seed(1)
        assert torch.equal(augmented.encode(clip), first)  # seeded
        assert not torch.allclose(first, reference, atol=1e-3)
        # The colour is a smooth curve over the mel axis, the same in every frame.
        mel = torch.randn(3, 80, 50)
        shift = augmented.spec_augment.colour(mel) - mel
        assert torch.allclose(shift, shift[:, :, :1].expand_as(shift), atol=1e-5)
        assert shift.abs().max() <= (12 + 6) * torch.log(torch.tensor(10.0)) / 10 + 1e-5
        masked = augmented.spec_augment.mask(torch.ones(4, 80, 50))
        blanked = (masked[:, :, 0] == 0).sum(dim=1)
        assert blanked.max() <= 2 * 8 and blanked.sum() > 0
        assert torch.equal(masked, masked[:, :, :1].expand_as(masked))  # whole bands, every frame
    with pytest.raises(ValueError, match="freq_mask_bins=80"):
        LogMelEncoder(spec_augment=dict(freq_masks=1, freq_mask_bins=80))
