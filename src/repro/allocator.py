"""Run CPU training under tcmalloc (gperftools) when the system has it: same speed, about half the peak memory.

Why: glibc's malloc serves every tensor below its (dynamic, up to 32 MiB) mmap threshold from the heap and does not
give the freed middle of the heap back, so a CPU training process keeps the high-water mark of a fragmented heap.
Measured on MulT at the unaligned MOSEI shape (2-core CPU, README "MulT and MICA at the unaligned MOSEI shape"):
peak RSS 2.6–3.0 GiB under glibc, 1.35 GiB under tcmalloc at the same step time. Fixing glibc's mmap threshold
gives the same memory but costs +25–40 % step time (fresh zeroed pages for every large tensor), so it is not used.

How: a preload library must be in place before the process starts, so `prefer_tcmalloc()` — called by the
`train.py`, `search.py` and `scripts/bench.py` entry points before anything else — re-executes the same command
once with `LD_PRELOAD=<libtcmalloc>` when the library is found and not loaded yet (the technique of Intel's
PyTorch CPU launcher). Nothing happens when:
- `REPRO_ALLOCATOR=system` is set (keep glibc), or tcmalloc is already in LD_PRELOAD;
- the platform is not Linux, or no libtcmalloc is installed (Debian/Ubuntu: `apt install libtcmalloc-minimal4`).
Child processes (DDP ranks, joblib workers, the table runner's runs) inherit the environment; so does a SLURM job
(submitit), and on a node without the library ld.so prints one warning line and the job runs under glibc. tcmalloc's
"large alloc" reports are silenced (TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD), since tensors of several GB are normal.
This module imports nothing heavy: it runs before torch is imported.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

ENV_CHOICE = "REPRO_ALLOCATOR"  # "tcmalloc" (default: when found) | "system"
CHOICES = ("tcmalloc", "system")
LIBRARIES = ("tcmalloc_minimal", "tcmalloc")  # the minimal build first: no heap profiler
LARGE_ALLOC_REPORT = "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"


def find_tcmalloc() -> str | None:
    """The soname of an installed libtcmalloc (e.g. 'libtcmalloc_minimal.so.4'), or None."""
    for name in LIBRARIES:
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def allocator_in_use(environ: dict[str, str] | None = None) -> str:
    """'tcmalloc' when LD_PRELOAD has it, else 'system' (what benchmark records report)."""
    environ = os.environ if environ is None else environ
    return "tcmalloc" if "tcmalloc" in environ.get("LD_PRELOAD", "") else "system"


def preload_environment(environ: dict[str, str], library: str | None, platform: str = sys.platform
                        ) -> dict[str, str] | None:
    """The environment to re-execute with, or None when the process should go on as it is.

    Raises ValueError (one line) for an unknown REPRO_ALLOCATOR value.
    """
    choice = environ.get(ENV_CHOICE, "tcmalloc")
    if choice not in CHOICES:
        raise ValueError(f"{ENV_CHOICE}={choice!r} is not one of {CHOICES}; unset it or set "
                         f"{ENV_CHOICE}=system to keep the C library's malloc")
    if choice == "system" or not platform.startswith("linux") or library is None:
        return None
    if allocator_in_use(environ) == "tcmalloc":
        return None
    preload = environ.get("LD_PRELOAD", "")
    updated = dict(environ)
    updated["LD_PRELOAD"] = f"{library} {preload}".strip()
    updated.setdefault(LARGE_ALLOC_REPORT, str(1 << 40))
    return updated


def prefer_tcmalloc() -> None:
    """Re-execute this command under tcmalloc when possible (see the module docstring); otherwise return."""
    if allocator_in_use() == "tcmalloc" or os.environ.get(ENV_CHOICE) == "system":
        return  # already re-executed (or asked not to): skip the library lookup
    try:
        environ = preload_environment(dict(os.environ), find_tcmalloc())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if environ is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)
