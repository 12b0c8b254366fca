"""Atomic, durable file writes: a reader sees the old file or the new one, never half."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes 0600 files; outputs get the usual permissions (0666 minus the umask) like open() would.
FILE_MODE = 0o666 & ~_umask()


class OutputExistsError(FileExistsError):
    """Refusing to replace a file the user did not ask to overwrite."""


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", overwrite: bool = True, **open_kwargs) -> Iterator[IO]:
    """Write to a temp file in the same folder, fsync, then rename over ``path``.

    The temp file lives beside the target so the rename never crosses file
    systems; on any error it is removed and ``path`` is untouched.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} exists; pass overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in ``folder`` survive power loss."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
