"""scripts/bench_ntu.py at tiny sizes (--quick): every variant ran in its own process and reports its step times,
peak RSS and load; the ratios in the record are computed from the record's own medians (a plumbing check — the
measured numbers are results/bench/ntu_models_cpu.json, docs/ntu.md "Benchmarks"). SYNTHETIC random input."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_script


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_quick_models_record_fields_and_ratios(tmp_path):
    out = tmp_path / "ntu_models.json"
    bench = load_script("bench_ntu")
    assert bench.main(["--quick", "--nets", "hcn,resnet", "--steps", "2", "--warmup", "0", "--threads", "1",
                       "--hcn-rounds", "2", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["synthetic"] is True and record["quick"] is True and record["threads"] == 1
    assert record["omp_wait_policy"] == "PASSIVE" and len(record["loadavg_start"]) == 3
    results = record["results"]
    assert set(results) == {"hcn", "resnet"}
    assert set(results["hcn"]["ours"]) == {"fp32"} and set(results["resnet"]["authors"]) == {"fp32", "channels_last"}
    params = {"hcn": 1_062_652, "resnet": 46_265_468}
    for net, by_impl in results.items():
        for by_layout in by_impl.values():
            for r in by_layout.values():
                assert "error" not in r, r
                steps = 4 if net == "hcn" else 2  # HCN: 2 rounds of 2 steps, pooled
                assert r["steps_timed"] == steps == len(r["step_s"]["all"]) and r["torch_threads"] == 1
                middle = sorted(r["step_s"]["all"])[steps // 2 - 1:steps // 2 + 1]
                assert r["step_s"]["median"] == pytest.approx(sum(middle) / 2)
                assert r["params"] == params[net]
                assert r["peak_rss_bytes"] >= r["rss_before_build_bytes"] > 50 * 2**20
    assert results["hcn"]["ours"]["fp32"]["input_shape"] == [4, 3, 32, 25, 2]
    assert len(results["hcn"]["authors"]["fp32"]["round_medians"]) == 2
    for net, by_layout in record["ratio_ours_over_authors"].items():
        for layout, ratio in by_layout.items():
            ours, theirs = results[net]["ours"][layout], results[net]["authors"][layout]
            assert ratio["time"] == ours["step_s"]["median"] / theirs["step_s"]["median"]
            assert ratio["peak_rss"] == ours["peak_rss_bytes"] / theirs["peak_rss_bytes"]
    assert set(record["ratio_ours_over_authors"]["resnet"]) == {"fp32", "channels_last"}
    gain = record["channels_last_over_fp32"]["resnet"]["ours"]
    assert gain == (results["resnet"]["ours"]["channels_last"]["step_s"]["median"]
                    / results["resnet"]["ours"]["fp32"]["step_s"]["median"])


def test_msaf_suite_runs_on_cpu_quick(tmp_path):
    out = tmp_path / "msaf.json"
    bench = load_script("bench_ntu")
    assert bench.main(["--suite", "msaf", "--device", "cpu", "--quick", "--steps", "1", "--warmup", "0",
                       "--threads", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["benchmark"] == "msaf_ntu_step" and record["device"] == "cpu"
    assert record["shape"] == {"video": [2, 8, 3, 32, 32], "skeleton": [2, 3, 32, 25, 2]}
    r = record["results"]["fp32"]
    assert set(record["results"]) == {"fp32"}  # bf16 autocast is timed on CUDA only
    # I3D 12,348,764 + HCN 1,062,652 + MSAF's two modules on I3D 135,984 (README, issue 15)
    assert r["params"] == 12_348_764 + 1_062_652 + 135_984
    assert r["steps_timed"] == 1 and r["clips_per_s"] == pytest.approx(2 / r["step_s"]["median"])


def test_unknown_net_is_a_one_line_error(tmp_path):
    bench = load_script("bench_ntu")
    with pytest.raises(SystemExit, match="unknown nets/layouts \\['vgg'\\]"):
        bench.main(["--quick", "--nets", "vgg", "--out", str(tmp_path / "x.json")])
