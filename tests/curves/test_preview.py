"""The preview video, decoded back: frames, audio, and what the drawn mouth does."""
import av
import numpy as np
import pytest
import soundfile as sf

from lipsync.curves import CurvesError
from lipsync.curves.preview import CAVITY, CENTRE, MAX_HALF_HEIGHT, SIZE, TEETH
from lipsync.curves.writers import write_outputs
from lipsync.rigs import load_rig
from support import viseme_script

OCULUS = load_rig("oculus15")
SCRIPT = [("sil", 0.32), ("aa", 0.4), ("PP", 0.32), ("FF", 0.32), ("ou", 0.32), ("sil", 0.24)]  # 48 frames at 25 fps


def _near(frame: np.ndarray, colour) -> np.ndarray:
    """Pixels of the mouth's band (not the captions above and below) near ``colour``: H.264 moves colours a little."""
    band = frame[CENTRE[1] - MAX_HALF_HEIGHT - 8:CENTRE[1] + MAX_HALF_HEIGHT + 8]
    return np.abs(band.astype(int) - colour).sum(axis=2) < 60


def _share(frame: np.ndarray, colour) -> float:
    return float(_near(frame, colour).mean())


def test_preview_draws_the_mouth_over_the_audio(tmp_path):
    curves = viseme_script(25.0, SCRIPT)
    audio = tmp_path / "line.wav"
    t = np.arange(int(curves.duration * 16000)) / 16000
    sf.write(audio, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    (path,) = write_outputs(curves, tmp_path / "line", ["preview"], OCULUS, metadata={"source": {"path": str(audio)}})
    assert path.name == "line.preview.mp4"

    with av.open(str(path)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", SIZE, SIZE)
        assert video.average_rate == 25 and (sound.codec_context.name, sound.rate) == ("aac", 16000)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        heard = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    assert len(frames) == curves.n_frames == 48
    assert abs(len(heard) / 16000 - curves.duration) < 0.1 and np.abs(heard).max() > 0.2  # the tone, not silence

    def mid(i: int) -> np.ndarray:  # the middle frame of script segment i
        start = sum(round(s * 25) for _, s in SCRIPT[:i])
        return frames[start + round(SCRIPT[i][1] * 25) // 2]

    rest, aa, pp, ff, ou = (mid(i) for i in range(5))
    # measured in the mouth's band: aa 0.18 dark and 0.07 teeth; closed and at rest 0.008 dark (the line
    # between the lips) and no teeth; f/v 0.03 teeth and nothing dark; the dark of "oo" 67 px wide, of "aa" 105
    assert _share(aa, CAVITY) > 0.1 and _share(aa, TEETH) > 0.03  # wide open: dark inside, upper teeth
    for closed in (pp, rest):
        assert _share(closed, CAVITY) < 0.015 and _share(closed, TEETH) < 0.001
    assert _share(ff, TEETH) > 0.015 and _share(ff, CAVITY) < 0.002  # teeth on the lower lip
    width = [np.ptp(np.flatnonzero(_near(f, CAVITY).any(axis=0))) for f in (aa, ou)]
    assert width[1] < 0.8 * width[0]  # "oo" is rounder, narrower than "aa"


def test_preview_needs_the_audio(tmp_path):
    with pytest.raises(CurvesError, match="needs the audio"):
        write_outputs(viseme_script(25.0, SCRIPT), tmp_path / "x", ["preview"], OCULUS)
    assert not list(tmp_path.iterdir())
