"""scripts/bench.py --quick runs end to end on the embedded AV-Digits set and writes both JSON files.

A plumbing check, not a timed test: the numbers of a 3-step run mean little, only that they are positive.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from repro.config import CONFIG_DIR
from tests.conftest import load_script

SCRIPT = CONFIG_DIR.parent / "scripts" / "bench.py"
FUSIONS = ("concat", "msaf")


def avdigits_missing() -> str | None:
    try:
        from repro.data.avdigits import AVDIGITS_DIR, MANIFEST_FILE
    except ImportError as err:
        return f"repro.data.avdigits cannot be imported ({err})"
    if not (AVDIGITS_DIR / MANIFEST_FILE).is_file():
        return f"the embedded AV-Digits set is not built ({AVDIGITS_DIR / MANIFEST_FILE} is missing)"
    return None


def load_bench():
    return load_script("bench")


@pytest.mark.slow  # CI time: `make test-full` runs it
@pytest.mark.timeout(120)
def test_quick_bench_writes_positive_numbers(tmp_path: Path):
    reason = avdigits_missing()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--suite", "avdigits", "--fusions", ",".join(FUSIONS), "--out",
         str(out)],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "samples/s" in proc.stdout

    fus = json.loads((out / "fusion_throughput.json").read_text())
    assert fus["schema"] == "repro.bench/1" and fus["quick"] is True
    assert set(fus["cpu"]) == set(FUSIONS)
    for name in FUSIONS:
        r = fus["cpu"][name]
        assert "error" not in r, r
        assert r["batch_size"] == 64 and r["steps_timed"] == 3
        assert r["samples_per_s"]["median"] > 0 and r["step_ms"]["median"] > 0
        assert r["params"]["total"] >= r["params"]["fusion"] > 0
        assert r["forward_flops_per_sample"] > 0
    assert fus["torch_threads"] >= 1 and fus["hardware"]["cpu_count"] >= 1
    assert (fus["gpu"] is None) == bool(fus["gpu_reason"])

    data = json.loads((out / "data_loading.json").read_text())
    load = data["load_avdigits"]
    for phase in ("first_use", "cached"):
        assert load[phase]["load_and_read_s"] > 0 and load[phase]["sizes"]["train"] > 0
    assert isinstance(load["target_met"], bool)
    assert data["train_dataloader"]["samples_per_s"]["median"] > 0


def test_unknown_fusion_is_rejected():
    bench = load_bench()
    with pytest.raises(SystemExit, match="unsupported fusion"):
        bench.choose_fusions("avdigits", "concat,nope")
    assert bench.quantiles([1.0, 2.0, 3.0, 4.0, 5.0]) == {"median": 3.0, "q1": 2.0, "q3": 4.0}


@pytest.mark.slow
def test_quick_cmu_bench_times_every_sequence_model(tmp_path: Path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--suite", "cmu", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    record = json.loads((out / "sequence_throughput.json").read_text())
    for data, rec in record["datasets"].items():
        for name, r in rec["cpu"].items():
            assert "error" not in r, (data, name, r)
            assert r["samples_per_s"]["median"] > 0 and r["forward_flops_per_sample"] > 0


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_profile_step_reports_the_pea_and_mmd_ranges(tmp_path: Path):
    """`--profile` on a tiny SYNTHETIC unaligned fixture: MICA's named ranges are timed, MulT has none."""
    from repro.config import compose_train
    from repro.data.fixtures_paired import write_paired_mult_pickles

    bench = load_bench()
    write_paired_mult_pickles(tmp_path / "data" / "mosei", dataset="mosei", n=(8, 4, 4))
    for fusion in ("mica", "mult"):
        cfg = compose_train(["data=mosei_unaligned", f"fusion={fusion}", "data.batch_size=4", "data.check_steps=false"],
                            output_dir=tmp_path / fusion, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
        batches = bench.full_batches(bench.build_datamodule(cfg).train_dataloader(), 2, 4)
        profile = bench.profile_step(cfg, batches)
        assert profile["step_s"] > 0 and profile["top_self_cpu"][0]["self_cpu_s"] > 0
        expected = set(bench.PROFILE_RANGES) if fusion == "mica" else set()
        assert set(profile["ranges_cpu_s"]) == expected
        assert all(seconds > 0 for seconds in profile["ranges_cpu_s"].values())
