"""Audio encoders with one interface: ``forward(waveform [B, N], lengths [B]) -> ([B, T, D], frame lengths [B])``.

Two families:
- ``HFEncoder``: any Hugging Face audio encoder with 50 Hz hidden states
  (wav2vec2, HuBERT, WavLM), from a hub id, a local folder, or a config dict.
- ``LogMelEncoder``: log-mel spectrogram + a few convolutions, ~50 Hz; small,
  fast on CPU, and trainable with no pretrained weights.

Padded batches: group-norm wav2vec2 models change their output when a clip is
padded, attention mask or not (measured). Clips of different lengths are
therefore encoded one by one at their own length; equal lengths (training
windows) go through as one batch. The result equals encoding each clip alone.
"""
from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HUB_HOST = "huggingface.co"
CMN_RANGE_DB = 30.0  # cmn: frames this far below the loudest in the window weigh nothing (pauses, room tone)


class EncoderLoadError(RuntimeError):
    """A pretrained encoder that cannot be had; the message says both ways out."""


class _Encoder(nn.Module):
    output_dim: int
    frame_rate: float  # encoder frames per second
    frame_offset: float  # seconds: the centre of encoder frame 0
    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = waveform.shape[1]
        if torch.jit.is_tracing() or bool((lengths == n).all()):
            return self.encode(waveform), self.frame_lengths(lengths)
        outputs = [self.encode(waveform[i : i + 1, : int(lengths[i])])[0] for i in range(waveform.shape[0])]
        return nn.utils.rnn.pad_sequence(outputs, batch_first=True), self.frame_lengths(lengths)

    def encode(self, waveform: torch.Tensor) -> torch.Tensor:  # unpadded [B, N] -> [B, T, D]
        raise NotImplementedError

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def set_step(self, step: int) -> None:
        """Called by training at every step (for freezing schedules)."""


class HFEncoder(_Encoder):
    """A Hugging Face audio encoder (wav2vec2 / HuBERT / WavLM) through ``AutoModel``.

    freeze: "frozen" (no encoder weights train), "cnn" (the convolutional
    feature encoder stays frozen, the transformer trains) or "none".
    unfreeze_after_steps: with "frozen", fine-tune (as "cnn") from that step on.
    layer_weights: learn a softmax-weighted sum over all hidden layers instead
    of taking the last one.
    normalize: zero-mean, unit-variance per clip, as wav2vec2's feature
    extractor does (``do_normalize``).
    """

    def __init__(
        self,
        pretrained: str | None = None,
        config: dict | None = None,
        freeze: str = "cnn",
        unfreeze_after_steps: int | None = None,
        layer_weights: bool = False,
        normalize: bool = True,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if freeze not in ("frozen", "cnn", "none"):
            raise ValueError(f"model.encoder.freeze must be frozen, cnn or none, got {freeze!r}")
        if pretrained:
            self.model = _from_pretrained(AutoModel, pretrained)
        elif config:
            config = dict(config)
            self.model = AutoModel.from_config(AutoConfig.for_model(config.pop("model_type"), **config))
        else:
            raise ValueError("model.encoder needs 'pretrained' (hub id or local folder) or 'config' (a model config)")
        self.pretrained = pretrained
        hf = self.model.config
        self.output_dim = hf.hidden_size
        self.kernels, self.strides = tuple(hf.conv_kernel), tuple(hf.conv_stride)
        hop, field = 1, 1
        for k, s in zip(self.kernels, self.strides):
            field += (k - 1) * hop
            hop *= s
        self.frame_rate, self.frame_offset = 16000 / hop, (field - 1) / 2 / 16000
        self.freeze, self.unfreeze_after_steps, self.normalize = freeze, unfreeze_after_steps, normalize
        self.layer_logits = nn.Parameter(torch.zeros(hf.num_hidden_layers + 1)) if layer_weights else None
        self._frozen_all = None
        self.set_step(0)

    def hf_config(self) -> dict:
        """The encoder's own config, enough to rebuild it without the hub (checkpoints store it)."""
        return self.model.config.to_dict()

    def set_step(self, step: int) -> None:
        freeze_all = self.freeze == "frozen" and (self.unfreeze_after_steps is None or step < self.unfreeze_after_steps)
        if freeze_all == self._frozen_all:
            return
        self._frozen_all = freeze_all
        for p in self.model.parameters():
            p.requires_grad_(not freeze_all)
        if not freeze_all and self.freeze in ("cnn", "frozen"):
            self.model.freeze_feature_encoder()

    def train(self, mode: bool = True):
        super().train(mode)
        if self._frozen_all:  # a frozen encoder also keeps dropout and masking off
            self.model.eval()
        return self

    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            mean = waveform.mean(dim=1, keepdim=True)
            std = waveform.var(dim=1, keepdim=True, unbiased=False).add(1e-7).sqrt()
            waveform = (waveform - mean) / std
        if self.layer_logits is None:
            return self.model(waveform).last_hidden_state
        hidden = torch.stack(self.model(waveform, output_hidden_states=True).hidden_states, dim=0)
        weights = torch.softmax(self.layer_logits, dim=0).view(-1, 1, 1, 1)
        return (hidden * weights).sum(dim=0)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        out = lengths
        for k, s in zip(self.kernels, self.strides):
            out = torch.div(out - k, s, rounding_mode="floor") + 1
        return out.clamp(min=0)


class LogMelEncoder(_Encoder):
    """Log-mel (100 Hz) -> conv -> strided conv (~50 Hz).

    The short-time Fourier transform is a fixed convolution with a windowed
    DFT basis rather than ``torch.stft``, so the ONNX export needs no complex
    numbers. Each frame's log-mel vector is normalised across mel bins, which
    makes the features indifferent to the recording's gain.

    ``level``: also feed each frame's overall log energy, which that
    normalisation removes. Without it a quiet frame (a stop closure, a pause
    with room tone) is blown up to the same scale as a vowel, and only its
    noise floor's spectral shape is left, which differs between synthesizers
    and microphones.

    ``lifter``: keep only the first ``lifter`` cepstral coefficients of each
    log-mel frame (the spectral envelope), dropping the pitch harmonics and
    the fine structure of the excitation, which differ most between a
    formant synthesizer, diphones and a vocoder while the mouth shape does not.

    ``cmn_window_s``: subtract from the normalised features each mel bin's mean
    over a sliding window of this many seconds, weighted by loudness (a frame
    weighs 1 at the window's loudest, 0 from 30 dB below: speech, not pauses).
    What stays the same over the window (a voice's average spectrum, a
    microphone's colour) is taken out; what changes from sound to sound stays.
    It looks half a window either side, well inside the overlap of chunked
    conversion.

    ``freq_conv``: channels of 2-D convolutions over (mel bin, time), each
    followed by max-pooling 2 mel bins into one, before the 1-D convolutions.
    A longer or shorter vocal tract moves every formant by about the same
    number of mel bins; these filters see a pattern wherever it lies on the
    mel axis, where a 1-D convolution over time learns each bin apart.

    spec_augment (training only; eval and export never see it): per clip, a
    random spectral tilt and smooth EQ curve (``tilt_db``, ``eq_db``: the most
    dB added at either end of the mel axis) and ``freq_masks`` bands of up to
    ``freq_mask_bins`` mel bins blanked. Microphones, rooms and synthesizers
    differ most in spectral colour; the mouth shape does not depend on it.
    """

    def __init__(
        self,
        n_mels: int = 80,
        hidden: int = 256,
        sample_rate: int = 16000,
        n_fft: int = 400,
        spec_augment: dict | None = None,
        level: bool = False,
        lifter: int | None = None,
        cmn_window_s: float | None = None,
        freq_conv: list[int] | None = None,
    ):
        super().__init__()
        if cmn_window_s is not None and not 0 < cmn_window_s <= 3.0:
            raise ValueError(f"model.encoder.cmn_window_s={cmn_window_s} must be in (0, 3] seconds or null")
        self.cmn_frames = None if cmn_window_s is None else 2 * round(cmn_window_s * 50) + 1  # odd, 100 Hz frames
        self.spec_augment = SpecAugment(n_mels, **spec_augment) if spec_augment else None
        self.level = level
        if lifter is not None and not 0 < lifter <= n_mels:
            raise ValueError(f"model.encoder.lifter={lifter} must be in [1, n_mels={n_mels}] or null")
        self.lifter = lifter
        import torchaudio.functional as AF

        self.hop, self.n_fft = sample_rate // 100, n_fft
        t = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        basis = torch.cat([torch.cos(2 * torch.pi * k * t / n_fft), -torch.sin(2 * torch.pi * k * t / n_fft)]) * window
        self.register_buffer("dft", basis.unsqueeze(1).float(), persistent=False)  # [2F, 1, n_fft]
        fbank = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate)
        self.register_buffer("fbank", fbank.T.contiguous(), persistent=False)  # [n_mels, F]
        if lifter is not None:  # keep the first `lifter` cepstral coefficients: an orthonormal DCT-II projection
            i = torch.arange(n_mels, dtype=torch.float64)
            dct = torch.cos(torch.pi / n_mels * (i + 0.5) * torch.arange(lifter, dtype=torch.float64)[:, None])
            dct = dct * torch.sqrt(torch.full((lifter, 1), 2.0 / n_mels))
            dct[0] /= 2**0.5
            self.register_buffer("smooth", (dct.T @ dct).float(), persistent=False)  # [n_mels, n_mels]
        self.norm = nn.LayerNorm(n_mels)
        self.freq_conv = nn.ModuleList()
        bins, channels = n_mels, 1
        for out_channels in freq_conv or []:
            if bins < 2:
                raise ValueError(f"model.encoder.freq_conv={list(freq_conv)}: {n_mels} mel bins halve to 1 "
                                 "before the last layer; use fewer layers")
            self.freq_conv.append(nn.Conv2d(channels, out_channels, kernel_size=(5, 3), padding=(2, 1)))
            bins, channels = bins // 2, out_channels
        self.conv1 = nn.Conv1d(bins * channels + int(level), hidden, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel_size=3, stride=2, padding=1)
        self.out_norm = nn.LayerNorm(hidden)
        self.output_dim = hidden
        # Centred STFT frames at 100 Hz, then stride 2: frame k is centred at k * 20 ms.
        self.frame_rate, self.frame_offset = sample_rate / (2 * self.hop), 0.0

    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        x = self.features(waveform)
        if len(self.freq_conv):
            x = self.frequency_patterns(x)
        x = F.gelu(self.conv1(x))
        return self.out_norm(F.gelu(self.conv2(x)).transpose(1, 2))

    def frequency_patterns(self, x: torch.Tensor) -> torch.Tensor:
        """[B, n_mels (+1 level), T100] -> [B, channels x pooled bins (+1), T100]: the 2-D convolutions."""
        n_mels = self.norm.normalized_shape[0]
        y = x[:, :n_mels].unsqueeze(1)  # [B, 1, n_mels, T100]
        for conv in self.freq_conv:
            y = F.max_pool2d(F.gelu(conv(y)), kernel_size=(2, 1))
        return torch.cat([y.flatten(1, 2), x[:, n_mels:]], dim=1)

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """The convolutions' input [B, n_mels (+1 with level), T100]."""
        padded = F.pad(waveform.unsqueeze(1), (self.n_fft // 2, self.n_fft // 2))  # centred frames
        spec = F.conv1d(padded, self.dft, stride=self.hop)  # [B, 2F, T100]
        real, imag = spec.chunk(2, dim=1)
        mel = torch.matmul(self.fbank, real * real + imag * imag).clamp(min=1e-5).log()  # [B, n_mels, T100]
        if self.lifter is not None:
            mel = torch.matmul(self.smooth, mel)
        if self.training and self.spec_augment is not None:
            mel = self.spec_augment.colour(mel)
        x = self.norm(mel.transpose(1, 2)).transpose(1, 2)
        if self.level or self.cmn_frames is not None:  # each frame's mel power (natural log) [B, 1, T100]
            log_power = torch.logsumexp(mel, dim=1, keepdim=True)
        if self.cmn_frames is not None:
            x = x - self._loud_frames_mean(x, log_power)
        if self.training and self.spec_augment is not None:
            x = self.spec_augment.mask(x)
        if self.level:  # scaled to about [-1.5, 2] (floor -7.1, full-scale speech ~9)
            x = torch.cat([x, log_power / 5.0], dim=1)
        return x

    def _loud_frames_mean(self, x: torch.Tensor, log_power: torch.Tensor) -> torch.Tensor:
        """Each bin's mean over a sliding window; a frame weighs 1 at the window's loudest, 0 from 30 dB below it."""
        db = log_power * (10 / math.log(10))
        pad = self.cmn_frames // 2
        floor = F.max_pool1d(db, self.cmn_frames, stride=1, padding=pad) - CMN_RANGE_DB
        w = ((db - floor) / CMN_RANGE_DB).clamp(0.0, 1.0)
        num = F.avg_pool1d(x * w, self.cmn_frames, stride=1, padding=pad, count_include_pad=True)
        den = F.avg_pool1d(w, self.cmn_frames, stride=1, padding=pad, count_include_pad=True)
        return num / (den + 1e-4)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        t100 = torch.div(lengths, self.hop, rounding_mode="floor") + 1
        return torch.div(t100 - 1, 2, rounding_mode="floor") + 1


class SpecAugment(nn.Module):
    """Random spectral colour and frequency masks on log-mel features [B, n_mels, T], one draw per clip."""

    def __init__(self, n_mels: int, tilt_db: float = 0.0, eq_db: float = 0.0, freq_masks: int = 0, freq_mask_bins: int = 0):
        super().__init__()
        if min(tilt_db, eq_db, freq_masks, freq_mask_bins) < 0 or freq_mask_bins >= n_mels:
            raise ValueError(
                f"model.encoder.spec_augment: tilt_db={tilt_db}, eq_db={eq_db}, freq_masks={freq_masks} must be >= 0 "
                f"and freq_mask_bins={freq_mask_bins} in [0, n_mels={n_mels})"
            )
        self.n_mels, self.freq_masks, self.freq_mask_bins = n_mels, freq_masks, freq_mask_bins
        db_to_log_power = torch.log(torch.tensor(10.0)).item() / 10
        self.tilt, self.eq = tilt_db * db_to_log_power, eq_db * db_to_log_power
        axis = torch.linspace(0.0, 1.0, n_mels)
        self.register_buffer("ramp", 2 * axis - 1, persistent=False)  # -1 .. 1 over the mel axis
        # Three smooth cosine shapes: an EQ curve is a random mix of them.
        self.register_buffer("cosines", torch.stack([torch.cos(torch.pi * k * axis) for k in (1, 2, 3)]), persistent=False)

    def colour(self, mel: torch.Tensor) -> torch.Tensor:
        b = mel.shape[0]
        tilt = (torch.rand(b, 1, device=mel.device) * 2 - 1) * self.tilt * self.ramp
        mix = (torch.rand(b, 3, device=mel.device) * 2 - 1) / 3
        eq = self.eq * (mix @ self.cosines)
        return mel + (tilt + eq).unsqueeze(-1)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        if not self.freq_masks or not self.freq_mask_bins:
            return x
        b = x.shape[0]
        bins = torch.arange(self.n_mels, device=x.device)
        keep = torch.ones(b, self.n_mels, device=x.device, dtype=torch.bool)
        for _ in range(self.freq_masks):
            width = torch.randint(0, self.freq_mask_bins + 1, (b, 1), device=x.device)
            start = (torch.rand(b, 1, device=x.device) * (self.n_mels - width + 1)).floor()
            keep &= ~((bins >= start) & (bins < start + width))
        return x * keep.unsqueeze(-1)  # normalised features: 0 is the frame's mean


def _from_pretrained(auto_model, pretrained: str):
    """Load from a local folder, the local hub cache, or the hub; fail in seconds when none can work."""
    local = Path(pretrained).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise EncoderLoadError(f"model.encoder.pretrained={pretrained}: folder has no config.json")
        return auto_model.from_pretrained(str(local))
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(pretrained, "config.json")
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if not isinstance(cached, str) and (offline or not _hub_reachable()):
        reason = "HF_HUB_OFFLINE is set" if offline else f"{HUB_HOST} cannot be reached"
        raise EncoderLoadError(
            f"cannot load encoder {pretrained!r}: it is not in the local Hugging Face cache and {reason}. "
            f"Either point at a local copy (model.encoder.pretrained=/path/to/{pretrained.split('/')[-1]}, a folder "
            "saved with save_pretrained) or train with no pretrained weights (experiment=scratch)."
        )
    return auto_model.from_pretrained(pretrained, local_files_only=isinstance(cached, str) and offline)


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False
