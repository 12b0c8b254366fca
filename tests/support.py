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
