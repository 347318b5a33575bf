"""Writing files so that none is ever left half written: the bytes go to a temporary file beside
the target, which is renamed to the target's name only when writing has completed (and, for a
fetched file, been verified); on any failure the temporary file is removed and the target is
untouched. Used by the data layer's fetch, the results files and the stand-ins' checkpoints."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same folder, created if needed) to write to; renamed to
    ``path`` when the block completes, removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """An open handle (``mode`` "w" for text, "wb" for bytes) on a temporary file that becomes
    ``path`` when the block completes (:func:`atomic_path`)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    with (
        atomic_path(path) as temporary,
        open(temporary, mode, **({"newline": ""} if mode == "w" else {})) as handle,
    ):
        yield handle
