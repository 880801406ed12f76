"""scripts/bench_ntu_data.py at a tiny size (4 clips of 30 frames, 8×32² samples, no workers; one 96×54 source
video): the record holds every clip it was asked for, the batch shape the model gets, both storages' sizes and the
preparation's rate (a plumbing check; the measured numbers are results/bench/ntu_data.json, docs/ntu.md)."""

from __future__ import annotations

import json

from tests.conftest import load_script


def test_bench_writes_its_record(tmp_path):
    out = tmp_path / "ntu_data.json"
    bench = load_script("bench_ntu_data")
    assert bench.main(["--clips", "4", "--frames", "30", "--video-frames", "8", "--frame-size", "32", "--repeats", "1",
                       "--workers", "0", "--batch", "2", "--prepare-files", "1", "--source-size", "96x54",
                       "--source-frames", "10", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    loader, store, prep = record["loader"], record["frame_store"], record["preparation"]
    assert record["synthetic"] is True and record["benchmark"] == "ntu_data"
    assert loader["clips_requested"] == loader["clips_read_per_pass"] == store["clips_read_per_pass"] == 4
    assert loader["batch_shape"] == store["batch_shape"] == [2, 8, 3, 32, 32]
    assert loader["clips_per_s"]["median"] > 0 and len(loader["clips_per_s"]["all"]) == 1
    assert store["bytes_per_sample"] == 24 * 3 * 32 * 32 and store["release_bytes"] == 56_880 * 24 * 3 * 32 * 32
    assert 1_000 < loader["bytes_per_sample"] < 200_000  # a 30-frame 256² MPEG-4 avi
    assert prep["files"] == 1 and prep["source"]["size"] == [96, 54] and prep["files_per_cpu_s"] > 0
    assert prep["release_hours_per_core"] == 56_880 / prep["files_per_cpu_s"] / 3600
    assert len(loader["loadavg"]["before"]) == 3
