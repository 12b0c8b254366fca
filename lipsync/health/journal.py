"""``<run_dir>/health.jsonl``: one JSON object per line for every reading and decision.

Each line is appended with a single write on a file opened in append mode and
flushed, so a crash leaves whole lines behind (at most the last one torn). Lines
that end a run (stop, abort, hang) are also fsynced.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

JOURNAL_NAME = "health.jsonl"


class HealthJournal:
    def __init__(self, run_dir: str | Path | None):
        self.path = Path(run_dir) / JOURNAL_NAME if run_dir is not None else None
        self._lock = threading.Lock()

    def write(self, kind: str, durable: bool = False, **fields: Any) -> dict[str, Any]:
        now = time.time()
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}",
                  "t": round(now, 3), "kind": kind, **fields}
        if self.path is None:
            return record
        line = json.dumps(record, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                if durable:
                    os.fsync(f.fileno())
        return record


def read_journal(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / JOURNAL_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
