"""scripts/bench_ravdess_data.py's loader part on a small SYNTHETIC layout at real clip size: the record holds the
batch shape the model gets, a positive rate, the CPU cost per clip and the load averages (a plumbing check; the
measured numbers are results/bench/ravdess_data.json, docs/msaf.md)."""

from __future__ import annotations

import json

from tests.conftest import load_script


def load_bench():
    return load_script("bench_ravdess_data")


def test_loader_part_writes_its_record(tmp_path):
    out = tmp_path / "ravdess_data.json"
    bench = load_bench()
    assert bench.main(["--parts", "loader", "--clips", "24", "--repeats", "1", "--workers", "0",
                       "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    loader = record["loader"]
    assert record["synthetic"] is True and record["preparation"] is None
    assert loader["batch_shape"] == [4, 30, 3, 224, 224] and loader["clips"] == 20  # fold 0: 20 training actors
    assert loader["clips_per_s"]["median"] > 0 and loader["cpu_ms_per_clip"] > 0
    assert loader["target"] == 50.0 and len(loader["loadavg"]["before"]) == 3
