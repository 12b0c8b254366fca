"""Shared fixtures. Tests never reach a model hub: the hub is offline for the whole suite."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json
import shutil
from pathlib import Path

import pytest

from support import DEMO


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory) -> Path:
    """A small real corpus: the first 16 train and 4 val clips of the demo corpus, copied."""
    out = tmp_path_factory.mktemp("mini_corpus")
    entries = [json.loads(line) for line in (DEMO / "manifest.jsonl").read_text().splitlines() if line.strip()]
    chosen = [e for e in entries if e["split"] == "train"][:16] + [e for e in entries if e["split"] == "val"][:4]
    for e in chosen:
        for key in ("audio", "curves", "alignment"):
            if key in e:
                (out / e[key]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(DEMO / e[key], out / e[key])
    (out / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in chosen))
    return out

