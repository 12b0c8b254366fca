"""Helpers the tests share (importable as ``support``; fixtures live in conftest.py)."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
CONFIGS = REPO / "configs"


def compose_train(overrides: list[str]):
    """The real train config, composed with Hydra's compose API."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=overrides)


def vrma_tracks(path: str | Path):
    """A ``.vrma`` read with pygltflib: (key times, {"preset:aa" | "custom:PP": [keys, 3] translations})."""
    import numpy as np
    from pygltflib import GLTF2

    gltf = GLTF2().load_binary(str(path))

    def accessor(index: int) -> np.ndarray:
        acc = gltf.accessors[index]
        width = {"SCALAR": 1, "VEC3": 3}[acc.type]
        start = (gltf.bufferViews[acc.bufferView].byteOffset or 0) + (acc.byteOffset or 0)
        return np.frombuffer(gltf.binary_blob(), np.float32, acc.count * width, start).reshape(acc.count, width)

    ext = gltf.extensions["VRMC_vrm_animation"]
    node_expression = {e["node"]: f"{kind}:{name}" for kind, table in ext["expressions"].items()
                       for name, e in table.items()}
    anim = gltf.animations[0]
    inputs = {anim.samplers[c.sampler].input for c in anim.channels}
    assert len(inputs) == 1, "every track keys the same frames"
    tracks = {}
    for channel in anim.channels:
        sampler = anim.samplers[channel.sampler]
        assert channel.target.path == "translation" and sampler.interpolation == "LINEAR"
        tracks[node_expression[channel.target.node]] = accessor(sampler.output)
    return accessor(inputs.pop())[:, 0], tracks


def viseme_script(fps: float, script: list[tuple[str, float]]):
    """oculus15 curves where each (viseme, seconds) segment has that viseme at 0.9 and every other at 0.05."""
    import numpy as np

    from lipsync.curves import Curves
    from lipsync.rigs import VISEMES

    rows = []
    for viseme, seconds in script:
        row = np.full(len(VISEMES), 0.05, np.float32)
        row[VISEMES.index(viseme)] = 0.9
        rows += [row] * int(round(seconds * fps))
    return Curves(np.stack(rows), VISEMES, fps)
