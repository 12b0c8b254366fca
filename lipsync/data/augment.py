"""Augmentation that makes clean synthetic speech sound like real recordings.

Applied per training window on 16 kHz float32 audio, each effect with its
own probability, in the order sound travels: the source (``no_speech``
replaces the window by room tone, hum or noise alone, posed at rest;
``resynth`` keeps the vocal tract and drives it with a new voice), the
speaker (speed, vocal tract length), the room (reverberation, background
noise), the microphone (EQ), the channel (telephone band, lossy codec), the
level (gain).

``no_speech`` is there because synthetic corpora have no recording without a
voice in it: their pauses are digital silence or a faint floor, so a model
trained on them reads steady noise at speech level as speech (measured: pink
noise gave lip closures). ``resynth`` tests whether a model misreads an
unheard engine because it learned the heard engines' voice sources
(espeak-ng's formant-synthesis pulses, MBROLA's and the diphone voices'
recorded or LPC residuals): the mouth shape lives in the vocal tract
filter, which resynthesis keeps. Measured, it did not help (issue 8's
note), so every config leaves it off.

Every effect but ``speed`` keeps the timing: filters are zero-phase,
reverberation is causal with the direct sound at lag 0, codec delays are
measured and removed, and the vocal-tract warp is a resample followed by a
phase-vocoder stretch back to the original length; resynthesis is frame
by frame (10 ms hop) with each frame's energy kept. ``speed`` changes the
duration, and the curves are time-scaled with it so that
``len(curves) == num_frames(len(audio), fps)`` always holds.

Babble is made from speech the augmenter has seen: it keeps a small pool of
recent windows (the corpus itself), so no external recordings are needed.
The telephone effect is narrowband (an 8 kHz round trip with G.711 mu-law
companding); the codec effect adds wideband G.722 (VoIP, video calls) beside
mp3 and ogg.
"""
from __future__ import annotations

import io
from collections import deque
from typing import Mapping

import numpy as np
import soundfile as sf
from scipy import signal

from lipsync.audio import SAMPLE_RATE, num_frames

EFFECTS = ("no_speech", "resynth", "speed", "formant", "reverb", "noise", "eq", "telephone", "codec", "gain")
NO_SPEECH_KINDS = ("white", "pink", "brown", "coloured", "band", "hum")  # not babble: other voices would be speech
NOISE_KINDS = NO_SPEECH_KINDS + ("babble",)
# Each effect's defaults; a config overrides any of them (``p`` is the probability per window).
DEFAULTS: dict[str, dict] = {
    "no_speech": {"p": 0.0, "min_dbfs": -60.0, "max_dbfs": -15.0, "kinds": list(NO_SPEECH_KINDS)},
    "resynth": {"p": 0.0, "min_pitch_factor": 0.7, "max_pitch_factor": 1.4, "max_noise": 0.3},
    "speed": {"p": 0.0, "min_factor": 0.9, "max_factor": 1.1},
    "formant": {"p": 0.0, "min_factor": 0.88, "max_factor": 1.12},
    "reverb": {"p": 0.0, "min_rt60": 0.2, "max_rt60": 0.8, "min_drr_db": 0.0, "max_drr_db": 12.0},
    "noise": {"p": 0.0, "min_snr_db": 5.0, "max_snr_db": 30.0, "kinds": ["white", "pink", "babble"]},
    "eq": {"p": 0.0, "max_gain_db": 8.0, "min_filters": 1, "max_filters": 3},
    "telephone": {"p": 0.0, "low_hz": 300.0, "high_hz": 3400.0, "mu_law": True},
    "codec": {"p": 0.0, "formats": ["mp3", "ogg"], "min_quality": 0.2, "max_quality": 0.9},
    "gain": {"p": 0.0, "min_db": -12.0, "max_db": 6.0},
}
BABBLE_POOL = 32  # recent windows kept for babble
RATE_STEP = 200  # Hz: warped rates are multiples of it, so resampling filters stay short (factor steps ~1.3%)
_SOUNDFILE_CODECS = {"mp3": ("MP3", "MPEG_LAYER_III"), "ogg": ("OGG", "VORBIS")}
CODECS = (*_SOUNDFILE_CODECS, "g722")
G722_BIT_RATES = (48000, 56000, 64000)  # its three modes, lowest quality first


class AugmentConfigError(ValueError):
    """An augmentation config names an unknown effect or option."""


class Augmenter:
    """``Augmenter(config, seed)(audio, curves, rng) -> (audio, curves)``; see the module docstring.

    ``config`` is a mapping (a dict or an OmegaConf node) like
    ``configs/augment/realistic.yaml``: ``enabled`` and ``effects: {name: {p: ..., ...}}``.
    ``rng`` (a ``numpy.random.Generator``) makes a call reproducible; without
    it the augmenter's own generator, seeded with ``seed``, is used.
    """

    def __init__(
        self,
        config: Mapping | None,
        seed: int = 0,
        fps: float = 30.0,
        sample_rate: int = SAMPLE_RATE,
        rest_pose: np.ndarray | None = None,
    ):
        if sample_rate != SAMPLE_RATE:
            raise AugmentConfigError(f"augmentation works on {SAMPLE_RATE} Hz audio, not {sample_rate} Hz")
        config = config or {}
        self.enabled = bool(config.get("enabled", True))
        self.fps = float(fps)
        self.effects = _effect_settings(config.get("effects") or {})
        if self.effects["no_speech"]["p"] > 0 and rest_pose is None:
            raise AugmentConfigError(
                "augment.effects.no_speech needs the rig's rest pose, and this rig has none (it is not posed from "
                "visemes: add a from_oculus15 table with a 'sil' entry to the rig file, or set "
                "augment.effects.no_speech.p=0)"
            )
        for name, key, allowed in (("no_speech", "kinds", NO_SPEECH_KINDS), ("noise", "kinds", NOISE_KINDS),
                                   ("codec", "formats", CODECS)):
            bad = sorted(set(self.effects[name][key]) - set(allowed))
            if bad:
                raise AugmentConfigError(
                    f"augment.effects.{name}.{key}: unknown {bad}; use any of {', '.join(allowed)}"
                )
        self.rest_pose = None if rest_pose is None else np.asarray(rest_pose, dtype=np.float32)
        self.rng = np.random.default_rng(seed)
        self.babble_pool: deque[np.ndarray] = deque(maxlen=BABBLE_POOL)

    def __call__(
        self, audio: np.ndarray, curves: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng if rng is None else rng
        audio = np.asarray(audio, dtype=np.float32)
        if len(curves) != num_frames(len(audio), self.fps):
            raise ValueError(
                f"curves have {len(curves)} frames but {len(audio)} samples need {num_frames(len(audio), self.fps)} "
                f"at {self.fps} fps; pass the augmenter the fps of the curves"
            )
        if not self.enabled:
            return audio, curves
        clean = audio.copy()
        for name in EFFECTS:
            settings = self.effects[name]
            if settings["p"] <= 0 or rng.random() >= settings["p"]:
                continue
            if name == "no_speech":
                audio, curves = no_speech(len(audio), len(curves), self.rest_pose, rng, settings)
            elif name == "speed":
                factor = rng.uniform(settings["min_factor"], settings["max_factor"])
                audio, curves = change_speed(audio, curves, factor, self.fps)
            elif name == "noise":
                snr = rng.uniform(settings["min_snr_db"], settings["max_snr_db"])
                kind = str(rng.choice(list(settings["kinds"])))
                audio = add_noise(audio, snr, rng, kind, list(self.babble_pool))
            else:
                audio = APPLY[name](audio, rng, settings)
        if np.abs(clean).max(initial=0) > 1e-4:
            self.babble_pool.append(clean)
        return _within_unit_range(audio), curves


def _effect_settings(effects: Mapping) -> dict[str, dict]:
    unknown = set(effects) - set(EFFECTS)
    if unknown:
        raise AugmentConfigError(f"unknown augmentation effect(s) {sorted(unknown)}; known: {', '.join(EFFECTS)}")
    out = {}
    for name in EFFECTS:
        given = dict(effects.get(name) or {})
        bad = set(given) - set(DEFAULTS[name])
        if bad:
            raise AugmentConfigError(f"effect {name!r} has no option(s) {sorted(bad)}; it takes {sorted(DEFAULTS[name])}")
        out[name] = {**DEFAULTS[name], **given}
        if not 0 <= out[name]["p"] <= 1:
            raise AugmentConfigError(f"effect {name!r}: p must be in [0, 1], got {out[name]['p']}")
    return out


def _within_unit_range(audio: np.ndarray) -> np.ndarray:
    audio = np.nan_to_num(audio.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.abs(audio).max(initial=0))
    if peak > 1.0:  # a limiter, not clipping: the level is random anyway
        audio = audio / peak
    return np.clip(audio, -1.0, 1.0)


# --- the source ----------------------------------------------------------------


def no_speech(
    n_samples: int, n_frames: int, rest_pose: np.ndarray, rng: np.random.Generator, settings: Mapping
) -> tuple[np.ndarray, np.ndarray]:
    """A window with no voice in it: one kind of noise at an RMS level in [min_dbfs, max_dbfs], and the rest pose."""
    level_db = rng.uniform(settings["min_dbfs"], settings["max_dbfs"])
    noise = make_noise(str(rng.choice(list(settings["kinds"]))), n_samples, rng, [])
    noise *= 10 ** (level_db / 20) / max(float(np.sqrt(np.mean(noise**2))), 1e-20)
    curves = np.broadcast_to(rest_pose, (n_frames, len(rest_pose))).copy()
    return noise.astype(np.float32), curves


LPC_ORDER = 18  # all-pole vocal tract model at 16 kHz: ~9 resonances up to 8 kHz
LPC_FRAME, LPC_HOP = 320, 160  # 20 ms Hann frames, 10 ms hop (they overlap-add to one)


def resynthesise(audio: np.ndarray, rng: np.random.Generator, settings: Mapping) -> np.ndarray:
    """The same words from a different voice source: LPC analysis, a new excitation, LPC synthesis.

    Each 20 ms frame's all-pole filter (the vocal tract, from pre-emphasised
    audio) is driven by a new source: in voiced frames a pulse train at the
    frame's pitch times a random factor, with a random glottal tilt and a
    random share of breath noise; in unvoiced frames white noise. Each
    output frame is scaled to the input frame's energy, so silences and
    closures stay where they were.
    """
    x = np.asarray(audio, dtype=np.float64)
    n = len(x)
    if n < LPC_FRAME or np.abs(x).max(initial=0) < 1e-6:
        return audio
    pre = np.append(x[0], x[1:] - 0.97 * x[:-1])
    window = np.hanning(LPC_FRAME + 1)[:-1]  # periodic: 50 % overlaps sum to one
    starts = np.arange(0, n, LPC_HOP) - LPC_HOP
    padded = np.pad(pre, (LPC_HOP, LPC_FRAME))
    frames = np.lib.stride_tricks.sliding_window_view(padded, LPC_FRAME)[starts + LPC_HOP] * window
    lags = np.arange(LPC_ORDER + 1)
    r = np.stack([np.sum(frames[:, : LPC_FRAME - k] * frames[:, k:], axis=1) for k in lags], axis=1)
    energy = r[:, 0].copy()  # lag 0 is each frame's energy
    f0, voiced = _pitch(x, starts + LPC_FRAME // 2)
    voiced &= energy > 1e-4 * energy.max()
    source = _excitation(n, starts, f0, voiced, rng, settings)
    r *= np.exp(-0.5 * (0.002 * lags) ** 2)  # lag window: no needle-sharp resonances
    r[:, 0] = r[:, 0] * 1.0001 + 1e-20  # white-noise correction keeps the filters stable
    filters = _levinson(r)
    out = np.zeros(n + LPC_FRAME + LPC_HOP)
    padded_source = np.pad(source, (LPC_HOP + LPC_FRAME, LPC_FRAME))
    for k, start in enumerate(starts):
        if energy[k] < 1e-12:
            continue
        # Run the filter over one frame of lead-in too, so it starts from a settled state.
        segment = padded_source[start + LPC_HOP : start + LPC_HOP + 2 * LPC_FRAME]
        frame = signal.lfilter([1.0], filters[k], segment)[LPC_FRAME:] * window
        out[start + LPC_HOP : start + LPC_HOP + LPC_FRAME] += frame * np.sqrt(energy[k] / max(np.sum(frame**2), 1e-20))
    out = signal.lfilter([1.0], [1.0, -0.97], out[LPC_HOP : LPC_HOP + n])  # undo the pre-emphasis
    return _match_rms(out, x)


def _levinson(r: np.ndarray) -> np.ndarray:
    """Prediction-error filters ``[1, a1, ..., ap]`` from autocorrelations ``r`` [frames, p + 1], all frames at once."""
    a = np.zeros_like(r)
    a[:, 0] = 1.0
    error = r[:, 0].copy()
    for i in range(1, r.shape[1]):
        reflection = -(r[:, i] + np.sum(a[:, 1:i] * r[:, i - 1 : 0 : -1], axis=1)) / error
        a[:, 1 : i + 1] = a[:, 1 : i + 1] + reflection[:, None] * a[:, i - 1 :: -1][:, :i]
        error *= 1.0 - reflection**2
    return a


def _pitch(audio: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pitch (60-400 Hz) and voicing at each centre: normalised autocorrelation of 40 ms of low-passed audio.

    Dividing by the window's own autocorrelation (Boersma 1993) keeps long
    lags from being penalised, so the peak is the period, not a multiple.
    """
    width = 2 * LPC_FRAME
    low = signal.sosfiltfilt(signal.butter(4, 1000, fs=SAMPLE_RATE, output="sos"), audio)
    window = np.hanning(width + 1)[:-1]
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(low, width), width)[centres + width // 2] * window

    def autocorrelation(x):
        ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * width, axis=-1)) ** 2, axis=-1)[..., :width]
        return ac / np.maximum(ac[..., :1], 1e-20)

    ac = autocorrelation(frames) / np.maximum(autocorrelation(window), 0.1)
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(ac)), lag]
    return SAMPLE_RATE / lag, peak > 0.5


def _excitation(n, starts, f0, voiced, rng, settings) -> np.ndarray:
    """Pulses at the (shifted) pitch where voiced, noise elsewhere; unit power in both."""
    centres = starts + LPC_FRAME // 2
    t = np.arange(n)
    factor = rng.uniform(settings["min_pitch_factor"], settings["max_pitch_factor"])
    pitch = np.clip(np.interp(t, centres, f0 * factor), 50.0, 600.0)
    voicing = np.interp(t, centres, voiced.astype(float))
    phase = np.cumsum(pitch / SAMPLE_RATE)
    pulses = np.diff(np.floor(phase), prepend=0.0) * np.sqrt(SAMPLE_RATE / pitch)
    tilt = rng.uniform(0.0, 0.6)  # one-pole low-pass, up to -7 dB at 3 kHz: from sharp to soft glottal pulses
    pulses = signal.lfilter([1 - tilt], [1.0, -tilt], pulses)
    pulses /= max(float(np.sqrt(np.mean(pulses**2))), 1e-12)
    breath = rng.uniform(0.0, settings["max_noise"])
    noise = rng.standard_normal(n)
    voiced_source = np.sqrt(1 - breath) * pulses + np.sqrt(breath) * noise
    return voicing * voiced_source + (1 - voicing) * noise


# --- the speaker ---------------------------------------------------------------


def change_speed(audio: np.ndarray, curves: np.ndarray, factor: float, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Play ``factor`` times faster (pitch follows, as with tape); curves are time-scaled to match."""
    out = resample(audio, SAMPLE_RATE, _warped_rate(factor))  # the same sound in fewer (factor > 1) samples
    n_frames = num_frames(len(out), fps)
    source_times = np.arange(n_frames) / fps * (len(audio) / max(len(out), 1))
    frame_times = np.arange(len(curves)) / fps
    scaled = np.stack([np.interp(source_times, frame_times, curves[:, c]) for c in range(curves.shape[1])], axis=1)
    return out.astype(np.float32), scaled.astype(curves.dtype)


def _warped_rate(factor: float) -> int:
    """The rate to resample to so that the sound plays about ``factor`` times faster."""
    return max(RATE_STEP, round(SAMPLE_RATE / factor / RATE_STEP) * RATE_STEP)


def warp_formants(audio: np.ndarray, factor: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Scale every frequency (formants and pitch) by ``factor`` and keep the duration and timing.

    Resampling plays the sound ``factor`` times faster (frequencies up, time
    shorter); a phase vocoder then stretches it back to the original length,
    so events stay where they were (a shorter vocal tract for factor > 1).
    """
    faster = resample(audio, SAMPLE_RATE, _warped_rate(factor))
    out = _stretch(faster.astype(np.float64), len(audio), n_fft, hop)
    return _match_rms(out, audio)


def _stretch(audio: np.ndarray, length: int, n_fft: int, hop: int) -> np.ndarray:
    """Phase-vocoder time stretch of ``audio`` to ``length`` samples (numpy; a few ms per second of audio)."""
    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(audio, (n_fft // 2, n_fft // 2 + hop))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    spec = np.fft.rfft(frames * window, axis=1)  # [frames, bins]
    out_frames = int(np.ceil(length / hop)) + 1
    steps = np.minimum(np.arange(out_frames) * (len(frames) - 1) / max(out_frames - 1, 1), len(frames) - 1.001)
    i, frac = np.floor(steps).astype(int), (steps - np.floor(steps))[:, None]
    magnitude = (1 - frac) * np.abs(spec[i]) + frac * np.abs(spec[i + 1])
    expected = 2 * np.pi * hop * np.arange(spec.shape[1]) / n_fft
    delta = np.angle(spec[i + 1]) - np.angle(spec[i]) - expected
    delta = expected + (delta + np.pi) % (2 * np.pi) - np.pi
    phase = np.angle(spec[0]) + np.concatenate([np.zeros((1, spec.shape[1])), np.cumsum(delta[:-1], axis=0)])
    frames_out = np.fft.irfft(magnitude * np.exp(1j * phase), n_fft, axis=1) * window
    total = (out_frames - 1) * hop + n_fft
    out, norm = np.zeros(total), np.zeros(total)
    for k in range(out_frames):
        out[k * hop : k * hop + n_fft] += frames_out[k]
        norm[k * hop : k * hop + n_fft] += window**2
    out /= np.maximum(norm, 1e-3)
    return out[n_fft // 2 : n_fft // 2 + length]


# --- the room --------------------------------------------------------------------


def synthetic_rir(rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response: the direct sound at lag 0, then exponentially decaying noise.

    The tail falls by 60 dB in ``rt60`` seconds; its energy is ``drr_db`` below the direct sound.
    """
    n = max(2, round(rt60 * SAMPLE_RATE))
    t = np.arange(1, n) / SAMPLE_RATE
    tail = rng.standard_normal(n - 1) * np.exp(-6.908 * t / rt60)
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    return np.concatenate([[1.0], tail]).astype(np.float32)


def add_reverb(audio: np.ndarray, rng: np.random.Generator, settings: Mapping) -> np.ndarray:
    rir = synthetic_rir(
        rng.uniform(settings["min_rt60"], settings["max_rt60"]),
        rng.uniform(settings["min_drr_db"], settings["max_drr_db"]),
        rng,
    )
    wet = signal.fftconvolve(audio, rir)[: len(audio)]  # causal: the direct sound keeps the timing
    return _match_rms(wet, audio)


def add_noise(
    audio: np.ndarray, snr_db: float, rng: np.random.Generator, kind: str = "white", babble: list | None = None
) -> np.ndarray:
    """Add noise with ``mean(audio²) / mean(noise²)`` equal to ``snr_db`` (on all-silent audio: a -60 dBFS floor)."""
    noise = make_noise(kind, len(audio), rng, babble or [])
    power = float(np.mean(audio.astype(np.float64) ** 2))
    target = power / 10 ** (snr_db / 10) if power > 1e-10 else 1e-6
    noise *= np.sqrt(target / max(float(np.mean(noise**2)), 1e-20))
    return (audio + noise).astype(np.float32)


def make_noise(kind: str, n: int, rng: np.random.Generator, babble: list) -> np.ndarray:
    if kind == "white":
        return rng.standard_normal(n)
    if kind in ("pink", "brown"):  # 1/f power; brown 1/f²: the rumble of a room, traffic, a fan
        spectrum = np.fft.rfft(rng.standard_normal(n))
        bins = np.maximum(np.arange(len(spectrum)), 1)
        spectrum /= np.sqrt(bins) if kind == "pink" else bins
        return np.fft.irfft(spectrum, n)
    if kind == "coloured":  # a random power slope (-9..+3 dB per octave) with 1-3 broad bumps or dips of up to 12 dB
        freqs = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)
        octaves = np.log2(freqs / 1000.0)
        gain_db = rng.uniform(-9.0, 3.0) * octaves
        for _ in range(int(rng.integers(1, 4))):
            # height (dB), centre (octaves from 1 kHz: ~90 Hz .. 7.5 kHz), width (octaves), drawn in that order
            height, centre, width = rng.uniform(-12.0, 12.0), rng.uniform(-3.5, 2.9), rng.uniform(0.3, 1.5)
            gain_db += height * np.exp(-0.5 * ((octaves - centre) / width) ** 2)
        return np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * 10 ** (gain_db / 20), n)
    if kind == "band":  # band-limited hiss (a phone line, a small speaker, a fan): random edges and steepness
        low, high, order = rng.uniform(80.0, 2000.0), rng.uniform(2500.0, 7900.0), int(rng.integers(1, 5))
        return signal.sosfilt(signal.butter(order, [low, high], "bandpass", fs=SAMPLE_RATE, output="sos"),
                              rng.standard_normal(n))
    if kind == "hum":  # mains hum (50 or 60 Hz and its harmonics) over a faint hiss
        t = np.arange(n) / SAMPLE_RATE
        mains = rng.choice([50.0, 60.0])
        harmonics = (rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * mains * t + rng.uniform(0, 2 * np.pi))
                     for k in range(1, 6))
        return sum(harmonics) + 0.05 * rng.standard_normal(n)
    if kind == "babble":
        return _babble(n, rng, babble)
    raise AugmentConfigError(f"unknown noise kind {kind!r}; use one of {', '.join(NOISE_KINDS)}")


def _babble(n: int, rng: np.random.Generator, pool: list) -> np.ndarray:
    """3-6 talkers from the pool of recent windows; speech-shaped pink noise until the pool has some."""
    if not pool:
        pink = make_noise("pink", n, rng, [])
        syllables = 1 + np.sin(2 * np.pi * 4 * np.arange(n) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi))
        return pink * syllables
    out = np.zeros(n)
    for _ in range(int(rng.integers(3, 7))):
        talker = pool[int(rng.integers(len(pool)))]
        talker = np.tile(talker, int(np.ceil(n / max(len(talker), 1))) + 1)
        start = int(rng.integers(0, len(talker) - n + 1))
        piece = talker[start : start + n].astype(np.float64)
        out += piece / max(np.sqrt(np.mean(piece**2)), 1e-6)
    return out


# --- the microphone and the channel ----------------------------------------------


def _peaking(freq: float, gain_db: float, q: float) -> np.ndarray:
    """An RBJ peaking biquad as second-order sections."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / SAMPLE_RATE
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w), 1 - alpha / a]
    return np.array([[*np.divide(b, den[0]), 1.0, *np.divide(den[1:], den[0])]])


def _shelf(freq: float, gain_db: float, high: bool) -> np.ndarray:
    """An RBJ shelving biquad (slope 1) as second-order sections."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / SAMPLE_RATE
    alpha = np.sin(w) / np.sqrt(2)
    cos, sq = np.cos(w), 2 * np.sqrt(a) * alpha
    s = -1 if high else 1
    b = [a * ((a + 1) - s * (a - 1) * cos + sq), s * 2 * a * ((a - 1) - s * (a + 1) * cos), a * ((a + 1) - s * (a - 1) * cos - sq)]
    den = [(a + 1) + s * (a - 1) * cos + sq, -s * 2 * ((a - 1) + s * (a + 1) * cos), (a + 1) + s * (a - 1) * cos - sq]
    return np.array([[*np.divide(b, den[0]), 1.0, *np.divide(den[1:], den[0])]])


def microphone_eq(audio: np.ndarray, rng: np.random.Generator, settings: Mapping) -> np.ndarray:
    """Random peaks, dips and shelves; zero-phase, each filter's gain halved since it runs twice."""
    top = settings["max_gain_db"] / 2
    sections = [_shelf(rng.uniform(80, 300), rng.uniform(-top, top), high=False),
                _shelf(rng.uniform(3000, 7000), rng.uniform(-top, top), high=True)]  # fmt: skip
    for _ in range(int(rng.integers(settings["min_filters"], settings["max_filters"] + 1))):
        freq = float(np.exp(rng.uniform(np.log(150), np.log(6000))))
        sections.append(_peaking(freq, rng.uniform(-top, top), rng.uniform(0.5, 2.5)))
    return signal.sosfiltfilt(np.concatenate(sections), audio).astype(np.float32)


def telephone(audio: np.ndarray, rng: np.random.Generator, settings: Mapping) -> np.ndarray:
    """300-3400 Hz band (zero-phase), an 8 kHz round trip, and G.711 mu-law companding."""
    sos = signal.butter(4, [settings["low_hz"], settings["high_hz"]], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    band = signal.sosfiltfilt(sos, audio)
    narrow = resample(band.astype(np.float32), SAMPLE_RATE, 8000)
    if settings["mu_law"]:
        peak = max(float(np.abs(narrow).max(initial=0)), 1e-6)
        codes = np.round((np.sign(narrow) * np.log1p(255 * np.abs(narrow / peak)) / np.log(256) + 1) * 127.5)
        expanded = codes / 127.5 - 1
        narrow = peak * np.sign(expanded) * np.expm1(np.abs(expanded) * np.log(256)) / 255
    out = resample(narrow.astype(np.float32), 8000, SAMPLE_RATE)
    return _fit_length(out, len(audio))


def codec_round_trip(audio: np.ndarray, rng: np.random.Generator, settings: Mapping) -> np.ndarray:
    """Encode and decode through mp3 or ogg (libsndfile) or G.722, with the codec's delay measured and removed."""
    name = str(rng.choice(list(settings["formats"])))
    quality = rng.uniform(settings["min_quality"], settings["max_quality"])
    if name == "g722":
        decoded = g722_round_trip(audio, G722_BIT_RATES[min(2, int(quality * 3))])  # thirds of [0, 1]
    else:
        fmt, subtype = _SOUNDFILE_CODECS[name]
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(audio, -1, 1), SAMPLE_RATE, format=fmt, subtype=subtype, compression_level=1 - quality)
        buffer.seek(0)
        decoded, _ = sf.read(buffer, dtype="float32")
    return _fit_length(_undo_delay(decoded, audio), len(audio))


def g722_round_trip(audio: np.ndarray, bit_rate: int) -> np.ndarray:
    """ITU-T G.722 (two-band ADPCM, wideband telephony) at 48, 56 or 64 kbit/s; its output is 22 samples late."""
    try:
        from G722 import G722
    except ImportError as e:
        raise AugmentConfigError("the g722 codec needs the G722 package (pip install G722), or drop g722 from "
                                 "augment.effects.codec.formats") from e
    codec = G722(SAMPLE_RATE, bit_rate)
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
    return np.asarray(codec.decode(codec.encode(pcm)), dtype=np.float32) / 32768


def _undo_delay(decoded: np.ndarray, reference: np.ndarray, max_lag: int = 4000) -> np.ndarray:
    """Shift ``decoded`` so it lines up with ``reference`` (encoders add a few hundred samples of delay)."""
    n = min(len(decoded), len(reference))
    if n < 64:
        return decoded
    corr = signal.correlate(decoded[: n + max_lag], reference[:n], mode="full", method="fft")
    lags = np.arange(-n + 1, len(decoded[: n + max_lag]))
    ok = np.abs(lags) <= max_lag
    lag = int(lags[ok][np.argmax(corr[ok])])
    return decoded[lag:] if lag > 0 else np.concatenate([np.zeros(-lag, np.float32), decoded])


def gain(audio: np.ndarray, rng: np.random.Generator, settings: Mapping) -> np.ndarray:
    return (audio * 10 ** (rng.uniform(settings["min_db"], settings["max_db"]) / 20)).astype(np.float32)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy): ~1 ms per second of audio, where torchaudio takes 50+ ms for odd ratios."""
    g = np.gcd(int(from_rate), int(to_rate))
    return signal.resample_poly(audio, to_rate // g, from_rate // g).astype(np.float32)


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    return np.pad(audio, (0, max(0, n - len(audio))))[:n].astype(np.float32)


def _match_rms(out: np.ndarray, reference: np.ndarray) -> np.ndarray:
    ref = np.sqrt(np.mean(reference.astype(np.float64) ** 2))
    now = np.sqrt(np.mean(out.astype(np.float64) ** 2))
    return (out * (ref / now if now > 1e-12 else 1.0)).astype(np.float32)


APPLY = {
    "resynth": resynthesise,
    "formant": lambda audio, rng, s: warp_formants(audio, rng.uniform(s["min_factor"], s["max_factor"])),
    "reverb": add_reverb,
    "eq": microphone_eq,
    "telephone": telephone,
    "codec": codec_round_trip,
    "gain": gain,
}
