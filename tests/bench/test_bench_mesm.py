"""scripts/bench_mesm.py at tiny sizes: the `stages` and `eval` parts write their records, with the FLOPs of the sparse
blocks falling with p and every ratio computed from the record's own medians (a plumbing check — the measured numbers
are results/bench/mesm_cpu.json, docs/mesm.md "Speed"); `--device cuda` without a GPU writes a record saying it was
skipped. SYNTHETIC random input, the tiny text encoder."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from tests.conftest import load_script


def run(tmp_path, *argv) -> dict:
    bench = load_script("bench_mesm")
    bench.main(["--text", "tiny", "--threads", "1", "--steps", "2", "--warmup", "0", "--batch", "2",
                "--out", str(tmp_path), *argv])
    (path,) = tmp_path.glob("mesm_*.json")
    return json.loads(path.read_text())


def test_stages_and_eval_records_are_consistent(tmp_path):
    record = run(tmp_path, "--parts", "stages,eval", "--ps", "0.3,0.9")
    assert record["omp_wait_policy"] == "PASSIVE" and record["shape"]["frames_per_utterance"] == 9
    for modality, rows in record["stages"].items():
        assert rows["frames"] == 2 * (9 if modality == "video" else 12)
        fractions = [rows[p]["flops_fraction_of_dense"] for p in ("p0.3", "p0.9")]
        assert 0 < fractions[0] < fractions[1] < 1.05, (modality, fractions)
        for p in ("p0.3", "p0.9"):
            assert rows[p]["speedup_vs_dense"] == pytest.approx(
                rows["dense"]["median_s"] / rows[p]["median_s"], rel=0.02, abs=2e-3)
    assert set(record["eval"]) == {"batch2_p0.5", "batch2_p0.7"}
    for row in record["eval"].values():
        own, dense = statistics.median(row["all_feature_ms"]), statistics.median(row["all_dense_ms"])
        assert len(row["all_feature_ms"]) == 2 and own > 0 and dense > 0
        assert row["feature_over_dense"] == pytest.approx(own / dense, rel=0.02)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the record written without a GPU")
def test_cuda_without_a_gpu_writes_a_skipped_record(tmp_path):
    record = run(tmp_path, "--device", "cuda", "--parts", "eval")
    assert "no CUDA device" in record["skipped"] and "eval" not in record
