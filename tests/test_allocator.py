"""repro.allocator: with the fixed glibc mmap threshold, freed tensors leave the process (Linux/glibc only)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from repro.allocator import release_freed_memory

PROBE = textwrap.dedent("""
    import os, sys, torch
    from repro.allocator import release_freed_memory
    eager = sys.argv[1] == "eager"
    if eager:
        assert release_freed_memory()
    def resident():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    torch.ones(4 << 20).sum()  # a 16 MiB block freed: glibc raises its dynamic mmap threshold to 16 MiB
    start = resident()
    blocks = [torch.ones(1 << 19) for _ in range(200)]  # 200 x 2 MiB = 400 MiB, interleaved
    del blocks[::2]  # free every other block: holes in the middle of the heap
    print((resident() - start) / 2**20)
""")


def resident_growth_mib(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                          env={"PATH": "", "REPRO_MALLOC_DEFAULTS": "0"})
    return float(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_blocks_are_returned_with_the_fixed_threshold():
    eager, default = resident_growth_mib("eager"), resident_growth_mib("default")
    assert eager < 260  # the 200 MiB still alive (+ slack)
    assert default > 350  # glibc's default keeps the freed holes resident: what the fix is for


def test_opt_out(monkeypatch):
    monkeypatch.setenv("REPRO_MALLOC_DEFAULTS", "1")
    assert release_freed_memory() is False
