"""Augmentation keeps audio and curves aligned, hits its SNR, stays finite and in range, and is seeded."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import signal

from lipsync.audio import SAMPLE_RATE, num_frames
from lipsync.rigs import load_rig
from lipsync.data.augment import (
    DEFAULTS,
    EFFECTS,
    AugmentConfigError,
    Augmenter,
    add_noise,
    change_speed,
    codec_round_trip,
    g722_round_trip,
    make_noise,
    resynthesise,
    synthetic_rir,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "augment"
FPS = 30.0
HOP = 160  # 10 ms envelope frames


def _speechlike(seconds: float = 1.6, seed: int = 0) -> np.ndarray:
    """Syllables: harmonic bursts with sharp onsets and silent gaps, so any time shift shows."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 700, 1200, 2500), 1))
    gate = np.zeros_like(t)
    start = 0.1
    while start < seconds - 0.15:
        length = rng.uniform(0.06, 0.18)
        gate[(t >= start) & (t < start + length)] = 1.0
        start += length + rng.uniform(0.05, 0.15)
    return (0.25 * wave * gate + 0.01 * rng.standard_normal(len(t)) * gate).astype(np.float32)


def _curves_for(audio: np.ndarray, channels: int = 15) -> np.ndarray:
    """Curve channel 0 follows the audio's envelope (so a time-scaling error shows in the curves too)."""
    n = num_frames(len(audio), FPS)
    env = np.array([np.abs(audio[round(i * SAMPLE_RATE / FPS) : round((i + 1) * SAMPLE_RATE / FPS)]).max(initial=0)
                    for i in range(n)])  # fmt: skip
    curves = np.zeros((n, channels), np.float32)
    curves[:, 0] = env / env.max()
    return curves


def _envelope(audio: np.ndarray) -> np.ndarray:
    frames = len(audio) // HOP
    e = np.log(np.sqrt(np.mean(audio[: frames * HOP].reshape(frames, HOP).astype(np.float64) ** 2, axis=1)) + 1e-4)
    return e - e.mean()


def _lag(a: np.ndarray, b: np.ndarray, max_lag: int = 15) -> int:
    """Envelope frames by which ``b`` is late against ``a`` (best cross-correlation)."""
    ea, eb = _envelope(a), _envelope(b)
    n = min(len(ea), len(eb))
    scores = {lag: float(np.dot(ea[max(0, -lag) : n - max(0, lag)], eb[max(0, lag) : n - max(0, -lag)]))
              for lag in range(-max_lag, max_lag + 1)}  # fmt: skip
    return max(scores, key=scores.get)


def _only(effect: str, **options) -> dict:
    return {"enabled": True, "effects": {effect: {"p": 1.0, **options}}}


@pytest.mark.parametrize("effect", [e for e in EFFECTS if e not in ("no_speech", "speed", "gain")])
def test_every_timing_preserving_effect_keeps_length_and_lag_zero(effect):
    audio = _speechlike()
    curves = _curves_for(audio)
    for seed in range(3):
        augmenter = Augmenter(_only(effect), seed=seed, fps=FPS)
        augmenter.babble_pool.append(_speechlike(seed=9))  # babble has talkers to draw on
        out, out_curves = augmenter(audio, curves)
        assert len(out) == len(audio) and out_curves is curves
        assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
        assert _lag(audio, out) == 0, f"{effect} shifted the audio"
        assert not np.allclose(out, audio, atol=1e-4), f"{effect} did nothing"


def test_g722_round_trip_is_lossy_by_its_bit_rate_and_keeps_timing_to_the_sample():
    audio = _speechlike()

    def late(out: np.ndarray) -> int:  # samples by which ``out`` is late against the input
        return int(np.argmax(signal.correlate(out, audio, mode="full"))) - (len(audio) - 1)

    assert late(g722_round_trip(audio, 64000)) == 22  # the codec's own delay, which the effect removes
    snrs = []
    for quality in (0.1, 0.5, 0.95):  # 48, 56 and 64 kbit/s
        settings = {"formats": ["g722"], "min_quality": quality, "max_quality": quality}
        out = codec_round_trip(audio, np.random.default_rng(0), settings)
        assert len(out) == len(audio) and late(out) == 0
        snrs.append(10 * np.log10(np.sum(audio**2) / np.sum((out - audio) ** 2)))
    assert 20 < snrs[0] < snrs[1] < snrs[2] < 40, snrs  # ADPCM noise, less at each higher rate


def test_speed_scales_audio_and_curves_together():
    audio = _speechlike()
    curves = _curves_for(audio)
    for factor in (0.9, 1.1):
        out, out_curves = change_speed(audio, curves, factor, FPS)
        assert len(out) == pytest.approx(len(audio) / factor, rel=0.015)
        assert len(out_curves) == num_frames(len(out), FPS)
        # The output, stretched back by the factor, lines up with the input; so do the curves.
        back, _ = change_speed(out, out_curves, 1 / factor, FPS)
        assert _lag(audio, back[: len(audio)]) == 0
        expected = _curves_for(out)[:, 0]
        assert np.corrcoef(out_curves[:, 0], expected)[0, 1] > 0.9
        unscaled = np.interp(np.arange(len(out_curves)), np.arange(len(curves)), curves[:, 0])
        assert np.corrcoef(out_curves[:, 0], expected)[0, 1] > np.corrcoef(unscaled, expected)[0, 1] + 0.05


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
@pytest.mark.parametrize("snr", [5.0, 17.0, 30.0])
def test_noise_is_added_at_the_target_snr(kind, snr):
    audio = _speechlike()
    rng = np.random.default_rng(int(snr))
    noisy = add_noise(audio, snr, rng, kind, babble=[_speechlike(seed=3), _speechlike(seed=4)])
    measured = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) / np.mean((noisy - audio).astype(np.float64) ** 2))
    assert measured == pytest.approx(snr, abs=1.0)


def test_silent_windows_get_a_quiet_noise_floor_not_nan():
    silent = np.zeros(SAMPLE_RATE, np.float32)
    out = add_noise(silent, 10.0, np.random.default_rng(0), "white")
    assert np.isfinite(out).all() and 1e-4 < np.sqrt(np.mean(out**2)) < 3e-3  # about -60 dBFS room tone


@pytest.mark.parametrize("rig_name", ["oculus15", "arkit52"])
def test_no_speech_windows_are_noise_at_the_asked_level_posed_at_rest(rig_name):
    rig = load_rig(rig_name)
    audio = _speechlike()
    curves = np.random.default_rng(0).uniform(0, 1, (num_frames(len(audio), FPS), len(rig))).astype(np.float32)
    config = _only("no_speech", min_dbfs=-40.0, max_dbfs=-20.0)
    augmenter = Augmenter(config, seed=3, fps=FPS, rest_pose=rig.rest_pose)
    levels = []
    for _ in range(8):
        out, out_curves = augmenter(audio, curves)
        assert len(out) == len(audio) and out_curves.shape == curves.shape
        np.testing.assert_array_equal(out_curves, np.broadcast_to(rig.rest_pose, curves.shape))
        assert abs(np.corrcoef(out, audio)[0, 1]) < 0.05  # none of the voice is left
        levels.append(10 * np.log10(np.mean(out.astype(np.float64) ** 2)))
    assert min(levels) >= -40.5 and max(levels) <= -19.5 and max(levels) - min(levels) > 3
    assert rig.rest_pose[rig.channels.index("sil")] == 1.0 if rig_name == "oculus15" else not rig.rest_pose.any()


def _slope_db_per_octave(x: np.ndarray) -> float:
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    power = np.abs(np.fft.rfft(x)) ** 2
    band = (freqs > 100) & (freqs < 6400)
    return float(np.polyfit(np.log2(freqs[band]), 10 * np.log10(power[band]), 1)[0])


def test_noise_kinds_have_their_spectral_slope():
    rng = np.random.default_rng(0)
    n = 4 * SAMPLE_RATE
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    low, high = (freqs > 100) & (freqs < 200), (freqs > 3200) & (freqs < 6400)
    ratio = {}
    for kind in ("white", "pink", "brown", "hum"):
        power = np.abs(np.fft.rfft(make_noise(kind, n, rng, []))) ** 2
        ratio[kind] = 10 * np.log10(power[low].mean() / power[high].mean())
    assert abs(ratio["white"]) < 1.0
    assert ratio["pink"] == pytest.approx(10 * np.log10(4800 / 150), abs=2.0)  # -3 dB per octave
    assert ratio["brown"] == pytest.approx(20 * np.log10(4800 / 150), abs=2.5)  # -6 dB per octave
    slopes = {round(_slope_db_per_octave(make_noise("coloured", n, np.random.default_rng(seed), [])), 1) for seed in range(4)}
    assert len(slopes) == 4 and all(-16 < s < 10 for s in slopes)  # a new colour each draw
    hum = np.abs(np.fft.rfft(make_noise("hum", n, np.random.default_rng(1), []))) ** 2
    mains = freqs[np.argmax(hum)]
    assert mains in (50.0, 60.0)
    rumble, middle = (freqs > 20) & (freqs < 40), (freqs > 2000) & (freqs < 2500)  # always outside / inside the band
    bands = [np.abs(np.fft.rfft(make_noise("band", n, np.random.default_rng(seed), []))) ** 2 for seed in range(6)]
    drop_db = [10 * np.log10(b[middle].mean() / b[rumble].mean()) for b in bands]
    assert all(d > 6 for d in drop_db) and len({round(d, 1) for d in drop_db}) == 6  # a new band each draw


def _vowels(f0: float, formants_per_vowel, seconds_each: float = 0.3, gap: float = 0.1) -> np.ndarray:
    """A pulse train at ``f0`` through two-pole resonances, one vowel after another, digital silence between."""
    pieces = []
    for formants in formants_per_vowel:
        n = round(seconds_each * SAMPLE_RATE)
        wave = (np.arange(n) % round(SAMPLE_RATE / f0) == 0).astype(np.float64)
        for freq in formants:
            r, w = np.exp(-np.pi * 80 / SAMPLE_RATE), 2 * np.pi * freq / SAMPLE_RATE
            wave = signal.lfilter([1.0], [1.0, -2 * r * np.cos(w), r * r], wave)
        pieces += [0.3 * wave / np.abs(wave).max(), np.zeros(round(gap * SAMPLE_RATE))]
    return np.concatenate(pieces).astype(np.float32)


def _envelope_db(x: np.ndarray) -> np.ndarray:
    """The spectrum (0.5 Hz bins) smoothed over 300 Hz: the formants without the harmonics."""
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)), 2 * SAMPLE_RATE)) ** 2
    return 10 * np.log10(np.convolve(power, np.ones(600) / 600, mode="same") + 1e-12)[: 5000]


def _pitch_hz(x: np.ndarray) -> float:
    ac = np.correlate(x, x, mode="full")[len(x) - 1 :]
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    return SAMPLE_RATE / (lo + int(np.argmax(ac[lo:hi])))


def test_resynthesis_keeps_the_vocal_tract_and_the_silences_and_changes_the_voice():
    vowels = [(700, 1200, 2500), (300, 2200, 3000), (350, 800, 2400)]  # a, i, u
    audio = _vowels(120.0, vowels)
    settings = {**DEFAULTS["resynth"], "min_pitch_factor": 1.5, "max_pitch_factor": 1.5}
    step = round(0.4 * SAMPLE_RATE)
    for seed, k in itertools.product(range(3), range(len(vowels))):
        out = resynthesise(audio, np.random.default_rng(seed), settings)  # random glottal tilt and breath
        assert len(out) == len(audio) and np.isfinite(out).all()
        middle = slice(k * step + 1600, k * step + 3200)  # 100 ms inside the vowel
        gap = slice(k * step + round(0.32 * SAMPLE_RATE), (k + 1) * step - 400)  # inside the silence after it
        assert _pitch_hz(audio[middle]) == pytest.approx(120, rel=0.03)
        assert _pitch_hz(out[middle]) == pytest.approx(180, rel=0.05), "the voice's pitch did not change"
        own = np.corrcoef(_envelope_db(audio[middle]), _envelope_db(out[middle]))[0, 1]
        assert own > 0.9, "formants moved"
        others = [_envelope_db(audio[j * step + 1600 : j * step + 3200]) for j in range(len(vowels)) if j != k]
        assert all(own > np.corrcoef(o, _envelope_db(out[middle]))[0, 1] + 0.1 for o in others), "vowels confused"
        assert np.sqrt(np.mean(out[gap] ** 2)) < 1e-4, "a silence was filled"


def test_reverb_impulse_decays_at_its_rt60_and_starts_with_the_direct_sound():
    rir = synthetic_rir(0.5, drr_db=6.0, rng=np.random.default_rng(0))
    assert rir[0] == 1.0 and len(rir) == round(0.5 * SAMPLE_RATE)
    assert 10 * np.log10(1.0 / np.sum(rir[1:] ** 2)) == pytest.approx(6.0, abs=0.01)
    early, late = rir[1:801], rir[-800:]
    drop_db = 10 * np.log10(np.mean(early**2) / np.mean(late**2))
    assert drop_db == pytest.approx(60 * (len(rir) - 800) / len(rir), abs=5)


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml") if p.stem != "none"))
def test_each_augment_config_runs_seeded_keeps_frames_and_range(name):
    config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    audio = _speechlike(seconds=1.0)
    curves = _curves_for(audio)
    outs = []
    for _ in range(2):
        augmenter = Augmenter(config, seed=5, fps=FPS, rest_pose=load_rig("oculus15").rest_pose)
        outs.append([augmenter(audio * 3.0, curves) for _ in range(6)])  # loud input: the limiter must hold
    for (a1, c1), (a2, c2) in zip(*outs):
        np.testing.assert_array_equal(a1, a2)  # same seed, same windows
        assert len(c1) == num_frames(len(a1), FPS)
        assert np.isfinite(a1).all() and np.abs(a1).max() <= 1.0
        assert np.isfinite(c1).all() and c1.min() >= 0 and c1.max() <= 1
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    rest = load_rig("oculus15").rest_pose
    a, _ = Augmenter(config, seed=0, fps=FPS, rest_pose=rest)(audio, curves, rng_a)
    b, _ = Augmenter(config, seed=99, fps=FPS, rest_pose=rest)(audio, curves, rng_b)
    np.testing.assert_array_equal(a, b)  # a call's rng decides, not the augmenter's own seed


def test_none_config_returns_the_window_unchanged():
    config = yaml.safe_load((CONFIGS / "none.yaml").read_text())
    audio = _speechlike(seconds=0.5)
    curves = _curves_for(audio)
    out, out_curves = Augmenter(config, seed=0, fps=FPS)(audio, curves)
    np.testing.assert_array_equal(out, audio)
    assert out_curves is curves


def test_bad_configs_and_mismatched_curves_fail_loudly():
    with pytest.raises(AugmentConfigError, match="unknown augmentation effect"):
        Augmenter({"effects": {"echo": {"p": 1}}})
    with pytest.raises(AugmentConfigError, match="has no option"):
        Augmenter({"effects": {"noise": {"p": 1, "snr": 3}}})
    with pytest.raises(AugmentConfigError, match="p must be in"):
        Augmenter({"effects": {"gain": {"p": 2}}})
    with pytest.raises(AugmentConfigError, match="rest pose"):
        Augmenter(_only("no_speech"))  # a rig not posed from visemes
    with pytest.raises(AugmentConfigError, match=r"no_speech.kinds: unknown \['babble'\]"):
        Augmenter(_only("no_speech", kinds=["pink", "babble"]), rest_pose=np.zeros(15))
    with pytest.raises(AugmentConfigError, match="noise.kinds"):
        Augmenter(_only("noise", kinds=["traffic"]))
    with pytest.raises(AugmentConfigError, match=r"codec.formats: unknown \['aac'\]; use any of mp3, ogg, g722"):
        Augmenter(_only("codec", formats=["mp3", "aac"]))
    audio = _speechlike(seconds=0.5)
    with pytest.raises(ValueError, match="frames"):
        Augmenter(_only("gain"), fps=FPS)(audio, np.zeros((3, 15), np.float32))
    assert set(DEFAULTS) == set(EFFECTS)
