"""Predicted vs true curves, one panel per clip: the plot people look at
instead of reading numbers. Solid lines are targets, dashed are predictions;
the strip under each panel shows the argmax viseme (top: true, bottom: predicted)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lipsync.atomic import atomic_write  # noqa: E402

# The channels that tell the story at a glance; others are in the argmax strip.
FOCUS = ("PP", "FF", "aa", "ih", "oh", "ou", "sil", "mouthClose", "jawOpen", "mouthPucker", "mouthRollLower")


def curves_figure(clips: list[tuple[str, np.ndarray, np.ndarray]], channels: tuple[str, ...], fps: float):
    """clips: (id, pred [T, C], true [T, C]). Returns a matplotlib Figure."""
    focus = [c for c in FOCUS if c in channels] or list(channels[:6])
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(clips), 1, figsize=(12, 2.6 * len(clips)), squeeze=False)
    for ax, (clip_id, pred, true) in zip(axes[:, 0], clips):
        t = np.arange(len(true)) / fps
        for k, name in enumerate(focus):
            c = channels.index(name)
            ax.plot(t, true[:, c], color=colours(k), lw=1.6, label=name)
            ax.plot(t, pred[:, c], color=colours(k), lw=1.2, ls="--")
        strip = np.stack([true.argmax(1), pred.argmax(1)])
        ax.imshow(strip, aspect="auto", cmap="tab20", vmin=0, vmax=max(len(channels) - 1, 1),
                  extent=(0, len(true) / fps, -0.25, -0.05), interpolation="nearest")
        ax.set_ylim(-0.27, 1.05)
        ax.set_xlim(0, len(true) / fps)
        ax.set_title(f"{clip_id}  (solid: target, dashed: predicted; strip: argmax true/pred)", fontsize=9)
        ax.legend(loc="upper right", fontsize=7, ncol=len(focus))
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path) -> None:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=90)
    plt.close(fig)
