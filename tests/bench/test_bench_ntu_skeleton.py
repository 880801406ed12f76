"""scripts/bench_ntu_skeleton.py at a small size (300 SYNTHETIC files from 20 templates): the generated folder has the
release's statistics, both builds ran (1 and 2 parse workers) and produced byte-identical caches, and the rates and
release extrapolation are computed from the record's own numbers (the measured run:
results/bench/ntu_skeleton_parse.json)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_script


def test_small_run_writes_identical_caches_and_consistent_rates(tmp_path):
    bench = load_script("bench_ntu_skeleton")
    out = tmp_path / "parse.json"
    assert bench.main(["--files", "300", "--templates", "20", "--tmp", str(tmp_path), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    g = record["generated"]
    assert record["synthetic"] is True and g["files"] == 300 and g["templates"] == 20
    assert 30 <= g["min_frames"] <= g["mean_frames"] <= g["max_frames"] <= 300
    assert g["files_without_any_body"] == 15  # template 7 of 20 is all-empty: files 7, 27, ..., 287
    assert record["caches_identical"] is True and len(set(record["cache_sha256"].values())) == 1
    for workers in ("1", "2"):
        build = record["builds"][workers]
        assert build["files"] == 300 and build["parse_workers"] == int(workers)
        assert build["files_per_s"] == pytest.approx(300 / build["seconds"])
        assert build["release_minutes"] == pytest.approx(56_880 / build["files_per_s"] / 60)
        assert build["cache_bytes"] > g["mean_frames"] * 300 * 3 * 25 * 2 * 4  # float32 frames + offsets + index
    assert record["builds"]["2"]["worker_peak_rss_bytes"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["parse.json"]  # the generated release is deleted


def test_release_names_are_distinct_and_parse():
    from repro.data.ntu_names import parse_ntu_name

    bench = load_script("bench_ntu_skeleton")
    names = bench.release_names(56_880)
    # 56,880 = 3 setups × 14,400 + 2 cameras × 4,800 + 34 performers × 120: the last is S004 C003 P034 R002 A060
    assert len(set(names)) == 56_880 and names[-1] == "S004C003P034R002A060"
    assert parse_ntu_name(names[-1]).subject == 34
