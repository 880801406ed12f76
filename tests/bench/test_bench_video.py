"""scripts/bench_video.py on a tiny SYNTHETIC clip: the record names the shape and each variant's step time and peak
memory (a plumbing check; the real numbers come from the full shape, docs/msaf.md)."""

from __future__ import annotations

import importlib.util
import json

from repro.config import CONFIG_DIR


def load_script():
    spec = importlib.util.spec_from_file_location("bench_video", CONFIG_DIR.parent / "scripts" / "bench_video.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_run_writes_each_variant(tmp_path):
    out = tmp_path / "video.json"
    bench = load_script()
    assert bench.main(["--device", "cpu", "--batch", "2", "--frames", "8", "--size", "32", "--steps", "2",
                       "--warmup", "1", "--variants", "fp32,fp32_channels_last", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["shape"] == [2, 3, 8, 32, 32] and record["device"] == "cpu"
    assert set(record["results"]) == {"fp32", "fp32_channels_last"}
    for result in record["results"].values():
        assert result["steps_timed"] == 2 and result["step_s"]["median"] > 0
        assert result["peak_memory_bytes"] > 100 * 2**20 and result["peak_memory_kind"] == "rss"


def test_bf16_is_offered_only_where_cuda_is():
    bench = load_script()
    assert bench.default_variants("cpu") == ["fp32", "fp32_channels_last"]
    assert bench.default_variants("cuda") == ["fp32", "fp32_channels_last", "bf16", "bf16_channels_last"]
