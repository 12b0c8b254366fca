"""Shared fixtures. Tests never reach a model hub: the hub is offline for the whole suite."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
