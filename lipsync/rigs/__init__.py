"""Rigs: named, ordered channel sets, defined as data files beside this module.

A rig is what the model's output means: ``oculus15`` visemes (the default),
``arkit52`` blendshapes, or a custom list of names in a YAML file
(``channels: [a, b, c]``). Phone alignments turn into curves through the
oculus15 viseme table; other rigs say how each viseme poses them
(``from_oculus15``), or cannot be driven from phones at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

RIG_DIR = Path(__file__).parent
BUILTIN_RIGS = ("oculus15", "arkit52")
VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")


class RigError(ValueError):
    """A rig name or rig file that cannot be used."""


@dataclass(frozen=True, eq=False)
class Rig:
    name: str
    channels: tuple[str, ...]
    # [15, C] weights posing this rig from oculus15 visemes; None: not drivable from phones.
    from_oculus15: np.ndarray | None = None
    livelink_columns: tuple[str, ...] | None = None
    livelink_extra_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.channels)

    @property
    def rest_pose(self) -> np.ndarray | None:
        """The pose for silence (the ``sil`` viseme's row), or None for a rig not posed from visemes."""
        return None if self.from_oculus15 is None else self.from_oculus15[VISEMES.index("sil")]

    def index(self, channel: str) -> int:
        try:
            return self.channels.index(channel)
        except ValueError:
            raise RigError(f"rig {self.name!r} has no channel {channel!r}; it has {', '.join(self.channels)}") from None


def load_rig(name_or_path: str | Path) -> Rig:
    """A built-in rig by name (``oculus15``, ``arkit52``) or a custom rig from a YAML file."""
    text = str(name_or_path)
    if text in BUILTIN_RIGS:
        return _load_rig_file(RIG_DIR / f"{text}.yaml")
    path = Path(text)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _load_rig_file(path.resolve())
    raise RigError(
        f"unknown rig {text!r}: use one of {', '.join(BUILTIN_RIGS)} or a YAML file with 'channels: [name, ...]'"
    )


@lru_cache(maxsize=None)
def _load_rig_file(path: Path) -> Rig:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise RigError(f"{path}: cannot read rig file ({e})") from e
    channels = spec.get("channels")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) and c for c in channels):
        raise RigError(f"{path}: 'channels' must be a non-empty list of names")
    if len(set(channels)) != len(channels):
        dupes = sorted({c for c in channels if channels.count(c) > 1})
        raise RigError(f"{path}: duplicate channel names {dupes}")
    name = spec.get("name", path.stem)
    weights = None
    if name == "oculus15":
        if tuple(channels) != VISEMES:
            raise RigError(f"{path}: oculus15 channels must be exactly {' '.join(VISEMES)}")
        weights = np.eye(len(VISEMES), dtype=np.float32)
    elif "from_oculus15" in spec:
        weights = _viseme_weights(path, spec["from_oculus15"], channels)
    livelink = spec.get("livelink_columns")
    if livelink is not None and len(livelink) != len(channels):
        raise RigError(f"{path}: livelink_columns has {len(livelink)} names for {len(channels)} channels")
    return Rig(
        name=name,
        channels=tuple(channels),
        from_oculus15=weights,
        livelink_columns=tuple(livelink) if livelink else None,
        livelink_extra_columns=tuple(spec.get("livelink_extra_columns", ())),
    )


def _viseme_weights(path: Path, table: dict, channels: list[str]) -> np.ndarray:
    weights = np.zeros((len(VISEMES), len(channels)), dtype=np.float32)
    for viseme, pose in table.items():
        if viseme not in VISEMES:
            raise RigError(f"{path}: from_oculus15 names unknown viseme {viseme!r}")
        for channel, value in (pose or {}).items():
            if channel not in channels:
                raise RigError(f"{path}: from_oculus15.{viseme} names unknown channel {channel!r}")
            weights[VISEMES.index(viseme), channels.index(channel)] = float(value)
    return weights
