"""Give freed CPU tensor memory back to the operating system (glibc malloc tuning for CPU training).

Why: glibc serves an allocation from `mmap` (returned to the system on free) only above its mmap threshold, and it
RAISES that threshold to the size of every mmapped block it frees (up to 32 MiB). After the first training step
every activation tensor below 32 MiB (at the unaligned MOSEI shape: all of MulT's (24, 500, 40) activations) comes
from the heap, whose freed middle is not given back: the process keeps the high-water mark of a fragmented heap.
Measured on MulT at that shape (scripts/bench.py --suite mult): peak RSS 2.4–2.7 GiB with the default, 1.4 GiB
with a fixed threshold — the tensors alive at any time are the same.

`release_freed_memory()` fixes the threshold (mallopt M_MMAP_THRESHOLD, which also switches off the dynamic
adjustment), so blocks of at least `threshold` bytes are always mmapped. Costs: an mmap/munmap and fresh zeroed
pages per large tensor. Called by `train.py` and the benchmarks; `REPRO_MALLOC_DEFAULTS=1` leaves malloc alone.
No effect (returns False) where glibc is not the C library (macOS, musl) or the environment already sets
MALLOC_MMAP_THRESHOLD_.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
DEFAULT_THRESHOLD = 256 * 1024


def release_freed_memory(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes; True when it was set."""
    if os.environ.get("REPRO_MALLOC_DEFAULTS") == "1" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))
