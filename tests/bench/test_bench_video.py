"""scripts/bench_video.py on a tiny SYNTHETIC clip: the record names the shape and each variant's step time and peak
memory (a plumbing check; the real numbers come from the full shape, docs/msaf.md)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_script


def load_bench():
    return load_script("bench_video")


def test_tiny_cpu_run_writes_each_variant(tmp_path):
    out = tmp_path / "video.json"
    bench = load_bench()
    assert bench.main(["--device", "cpu", "--batch", "2", "--frames", "8", "--size", "32", "--steps", "2",
                       "--warmup", "1", "--eval-steps", "3", "--variants", "fp32,fp32_channels_last",
                       "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["shape"] == [2, 3, 8, 32, 32] and record["device"] == "cpu"
    assert set(record["results"]) == {"fp32", "fp32_channels_last"}
    for result in record["results"].values():
        assert result["steps_timed"] == 2 and result["step_s"]["median"] > 0
        assert result["peak_memory_bytes"] > 100 * 2**20 and result["peak_memory_kind"] == "rss"
        # the fold-epoch totals: the timed train steps' sum (of two: twice their median), the eval forwards apart
        assert result["train_total_s"] == pytest.approx(2 * result["step_s"]["median"])
        assert result["eval_steps_timed"] == 3 and 0 < result["eval_total_s"]


def test_bf16_is_offered_only_where_cuda_is():
    bench = load_bench()
    assert bench.default_variants("cpu") == ["fp32", "fp32_channels_last"]
    assert bench.default_variants("cuda") == ["fp32", "fp32_channels_last", "bf16", "bf16_channels_last"]


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_msaf_network_through_the_config_path_in_its_own_process(tmp_path):
    """`--net msaf --isolate`: the RAVDESS MSAF network (its preset) on a tiny SYNTHETIC batch, one child process per
    variant; the record names the network, its parameter count and the load average around the timed steps."""
    out = tmp_path / "msaf.json"
    bench = load_bench()
    assert bench.main(["--device", "cpu", "--net", "msaf", "--isolate", "--batch", "2", "--frames", "8", "--size",
                       "32", "--steps", "1", "--warmup", "0", "--variants", "fp32_ckpt", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["net"] == "msaf" and list(record["results"]) == ["fp32_ckpt"]
    result = record["results"]["fp32_ckpt"]
    assert result["params"] == 25_940_724 and result["steps_timed"] == 1
    assert len(result["loadavg_before"]) == 3 and result["peak_memory_bytes"] > 100 * 2**20


def test_unknown_variant_exits_2_naming_the_choices(tmp_path, capsys):
    bench = load_bench()
    assert bench.main(["--device", "cpu", "--variants", "fp16", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "fp16" in err and "fp32_ckpt" in err and err.count("\n") == 1
    assert not (tmp_path / "x.json").exists()
