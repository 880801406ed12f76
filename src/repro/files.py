"""Atomic file writes, the one implementation every layer uses (results records, prepared datasets, caches).

A file is written into a temporary file in its own folder, flushed to disk, then moved over the target with
`os.replace`: a reader never sees half a file, and an interrupted write leaves the old file (and no temporary one)
behind. No repro imports: data preparation and the results records both build on it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np


def atomic_write(path: str | Path, write: Callable[[IO], object], binary: bool = False, suffix: str = "") -> None:
    """`write(file)` into a temporary file beside `path`, fsync, then `os.replace` it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    """`np.save` of `array` (C-contiguous, no pickles) to `path`, atomically."""
    atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False), binary=True)
