"""The NTU skeleton cache build (repro.data.ntu.build_cache): a process pool over the files gives the very cache one
process gives (order kept), an interrupted build resumes where its last checkpoint left it, and the worker count is
resolved as the config says. SYNTHETIC .skeleton files in the release's format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import repro.data.ntu as ntu
from repro.data.base import DataError
from repro.data.ntu_skeleton import parse_skeleton, synthetic_frames, write_skeleton_file


def write_files(folder: Path, n: int = 12) -> list[Path]:
    """`n` SYNTHETIC files of 5..16 frames; every 3rd has two bodies, file 4 has only empty frames."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    files = []
    for k in range(n):
        frames = 5 + k % 12
        empty = range(frames) if k == 4 else (0,) if k % 5 == 1 else ()
        path = folder / f"S001C001P{1 + k % 3:03d}R001A{1 + k:03d}.skeleton"
        files.append(write_skeleton_file(path, synthetic_frames(rng, frames, 1 + (k % 3 == 0), empty)))
    return files


def cache_files(cache: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(cache.iterdir())}


def test_two_workers_build_the_same_cache_as_one(tmp_path, monkeypatch):
    files = write_files(tmp_path / "skel")
    monkeypatch.setattr(ntu, "FILES_PER_WORKER", 4)  # let 12 files use a pool
    assert ntu.resolve_workers(2, len(files)) == 2
    ntu.build_cache(files, tmp_path / "one", parse_workers=1)
    ntu.build_cache(files, tmp_path / "two", parse_workers=2)
    one, two = cache_files(tmp_path / "one"), cache_files(tmp_path / "two")
    assert list(one) == ["skeleton_frames.npy", "skeleton_index.json", "skeleton_offsets.npy"]
    assert one == two  # byte for byte
    cache = ntu.load_cache(files, tmp_path / "two")
    lengths = [5 + k % 12 for k in range(12)]
    assert cache.offsets.tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist()
    for k in (0, 3, 4, 11):
        np.testing.assert_array_equal(cache.sequence(k), parse_skeleton(files[k]).xyz)
    assert cache.index["empty"] == [files[4].name]


def test_an_interrupted_build_resumes_at_its_last_checkpoint(tmp_path, monkeypatch):
    files = write_files(tmp_path / "skel")
    ntu.build_cache(files, tmp_path / "fresh")
    calls = []

    def failing_parse(path):
        calls.append(Path(path).name)
        if len(calls) == 8:
            raise KeyboardInterrupt  # the user stops the build while file 8 is parsed
        return parse_skeleton(path)

    monkeypatch.setattr(ntu, "parse_skeleton", failing_parse)
    with pytest.raises(KeyboardInterrupt):
        ntu.build_cache(files, tmp_path / "resumed", checkpoint_every=3)
    progress = json.loads((tmp_path / "resumed" / ntu.PROGRESS_FILE).read_text())
    assert progress["done"] == 6 and not (tmp_path / "resumed" / ntu.INDEX_FILE).exists()
    calls.clear()
    ntu.build_cache(files, tmp_path / "resumed", checkpoint_every=3)
    assert calls == [p.name for p in files[6:]]  # only the files after the checkpoint are parsed again
    assert cache_files(tmp_path / "resumed") == cache_files(tmp_path / "fresh")


def test_worker_count_and_bad_first_line(tmp_path):
    assert ntu.resolve_workers(None, 10 * ntu.FILES_PER_WORKER) == min(10, len(os.sched_getaffinity(0)))
    assert ntu.resolve_workers(8, 30) == 1  # a fixture-sized folder parses in this process
    with pytest.raises(DataError, match="parse_workers=0: expected a positive number"):
        ntu.resolve_workers(0, 100)
    bad = tmp_path / "S001C001P001R001A001.skeleton"
    bad.write_text("frames\n")
    with pytest.raises(DataError, match=r"A001\.skeleton: line 1: expected the frame count"):
        ntu.build_cache([bad], tmp_path / "cache")
