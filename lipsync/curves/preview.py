"""Preview video (``.preview.mp4``): a drawn mouth that the curves move, over the audio.

To check a conversion by eye and ear without importing it anywhere: play the
file and watch the lips close on p/b/m, the lower lip touch the teeth on f/v,
the mouth open and round with the vowels. The mouth is drawn from the same
open/form values as the ``live2d`` format, its outline picked by the same cue
as the ``rhubarb-tsv`` file (closed lips on A, teeth on the lip on G); the
cue's letter and the two strongest visemes are written beside it. H.264 and
AAC in MP4 (PyAV), so any player and browser plays it.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lipsync.atomic import atomic_write
from lipsync.audio import SAMPLE_RATE, load_audio
from lipsync.curves import Curves, CurvesError
from lipsync.curves.live2d import mouth_parameters
from lipsync.curves.rhubarb import cue_runs

SIZE = 256  # square frames, pixels
SKIN, LIP, CAVITY, TEETH, INK = (236, 200, 170), (176, 60, 70), (60, 20, 30), (245, 245, 240), (40, 40, 40)
CENTRE = (SIZE // 2, SIZE // 2 + 20)
HALF_WIDTH, MAX_HALF_HEIGHT = 60, 50  # the mouth at rest width and fully open, form 0


def draw_mouth(open_: float, form: float, cue: str, caption: str, font) -> np.ndarray:
    """One [SIZE, SIZE, 3] uint8 frame."""
    image = Image.new("RGB", (SIZE, SIZE), SKIN)
    draw = ImageDraw.Draw(image)
    cx, cy = CENTRE
    w = HALF_WIDTH * (1 + 0.3 * form)
    if cue == "A":  # lips pressed together
        draw.rounded_rectangle((cx - w, cy - 7, cx + w, cy + 7), radius=7, fill=LIP)
        draw.line((cx - w + 6, cy, cx + w - 6, cy), fill=CAVITY, width=2)
    elif cue == "G":  # upper teeth on the lower lip
        draw.rounded_rectangle((cx - w, cy - 12, cx + w, cy + 14), radius=10, fill=LIP)
        draw.rectangle((cx - w * 0.7, cy - 6, cx + w * 0.7, cy + 4), fill=TEETH)
    else:
        h = 6 + MAX_HALF_HEIGHT * open_
        draw.ellipse((cx - w, cy - h, cx + w, cy + h), fill=LIP)
        inner_w, inner_h = w - 8, max(h - 9, 1)
        draw.ellipse((cx - inner_w, cy - inner_h, cx + inner_w, cy + inner_h), fill=CAVITY)
        if inner_h > 8:  # the upper teeth show once the mouth is open
            draw.chord((cx - inner_w, cy - inner_h, cx + inner_w, cy + inner_h), 200, 340, fill=TEETH)
    draw.text((12, 8), cue, fill=INK, font=font)
    draw.text((12, SIZE - 28), caption, fill=INK, font=font)
    return np.asarray(image)


def write_preview(curves: Curves, path: str | Path, audio_path: str | Path, overwrite: bool = True) -> None:
    import av  # only this format needs PyAV's FFmpeg

    open_, form = mouth_parameters(curves)  # refuses curves without the oculus15 visemes first
    if not audio_path or not Path(audio_path).is_file():
        raise CurvesError(f"the preview needs the audio the curves came from; {str(audio_path)!r} is not a file")
    audio = load_audio(audio_path, allow_silent=True)
    cues = [shape for start, end, shape in cue_runs(curves) for _ in range(end - start)]  # each frame's cue
    font = ImageFont.load_default(size=18)
    order = np.argsort(-curves.values, axis=1)[:, :2]
    with atomic_write(path, "wb", overwrite=overwrite) as f:
        with av.open(f, mode="w", format="mp4") as container:
            video = container.add_stream("libx264", rate=Fraction(curves.fps).limit_denominator(1001))
            video.width = video.height = SIZE
            video.pix_fmt = "yuv420p"
            video.options = {"crf": "23", "preset": "veryfast"}
            sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            samples_per_frame = SAMPLE_RATE / curves.fps
            for i in range(curves.n_frames):
                top = "  ".join(f"{curves.channels[c]} {curves.values[i, c]:.2f}" for c in order[i])
                rgb = draw_mouth(float(open_[i]), float(form[i]), cues[i], f"{i / curves.fps:6.2f} s  {top}", font)
                container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
                chunk = audio[round(i * samples_per_frame):round((i + 1) * samples_per_frame)]
                if len(chunk):  # interleaved with the video, a frame's worth at a time
                    frame = av.AudioFrame.from_ndarray(chunk.astype(np.float32)[None, :], format="flt", layout="mono")
                    frame.sample_rate = SAMPLE_RATE
                    container.mux(sound.encode(frame))
            container.mux(video.encode(None))
            container.mux(sound.encode(None))
