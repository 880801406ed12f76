"""Loading efficiency of the MulT/MMSA pickle readers (`repro.data.cmu`, IMPLEMENTATION-NOTES §4.1): the dataset
holds the unpickled float32 arrays themselves (no copy), cleaning is in place, the chunked mask / non-finite scans
agree with the plain formulas and allocate no array-sized temporaries. The full MOSEI-sized benchmark
(scripts/bench_cmu_load.py) runs as a slow test."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from repro.data import cmu
from repro.data.fixtures_cmu import MULT_NEGINF_PER_SPLIT, write_mmsa_pickle, write_mult_pickle
from tests.conftest import load_script


def capture_unpickled(monkeypatch) -> list:
    seen = []
    original = cmu._load_pickle

    def spy(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(cmu, "_load_pickle", spy)
    return seen


@pytest.mark.parametrize("aligned", [True, False])
def test_mult_dataset_holds_the_unpickled_arrays(tmp_path, monkeypatch, aligned):
    monkeypatch.setattr(cmu, "SCAN_ROWS", 5)  # several chunks per split
    write_mult_pickle(root=tmp_path, dataset="mosei", aligned=aligned, T=10)
    seen = capture_unpickled(monkeypatch)
    reader = cmu.MulTPickleReader(tmp_path, dataset="mosei", aligned=aligned)
    splits = reader.load()
    data = seen[0]
    for split, skey in cmu.FILE_SPLITS.items():
        for m in cmu.MODALITIES:
            raw, held = data[skey][m], splits[split].arrays[m]
            assert raw.dtype == np.float32 and held is raw and np.shares_memory(raw, held)
        # the audio -inf entries were zeroed in place, in the unpickled array
        assert np.isfinite(data[skey]["audio"]).all()
    assert reader.audio_neginf == {s: MULT_NEGINF_PER_SPLIT for s in cmu.FILE_SPLITS}


def test_mmsa_dataset_holds_the_unpickled_arrays(tmp_path, monkeypatch):
    write_mmsa_pickle(tmp_path / "unaligned_50.pkl", aligned=False)
    seen = capture_unpickled(monkeypatch)
    ds = cmu.MMSAPickleReader(tmp_path, "unaligned_50.pkl").load()["train"]
    for m in cmu.MODALITIES:
        assert np.shares_memory(seen[0]["train"][m], ds.arrays[m])


def test_chunked_scans_match_plain_formulas(monkeypatch):
    monkeypatch.setattr(cmu, "SCAN_ROWS", 3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 6, 4)).astype(np.float32)
    x[:, :2] = 0.0
    x[4, 3, 1] = 0.0
    x[7, 5] = 0.0
    x[1, 4, 2], x[8, 2, 0], x[9, 5, 3], x[2, 3, 3] = -np.inf, np.inf, np.nan, -np.inf
    x[3, 3] = 0.0  # interior all-zero step
    x[6] = 0.0  # all-zero sample
    # plain formulas: real from the first non-zero step on (left) / up to the last one (right)
    nonzero = (x != 0).any(-1)
    assert np.array_equal(cmu.nonzero_mask(x), np.cumsum(nonzero, axis=-1) > 0)
    assert np.array_equal(cmu.nonzero_mask(x, padding="right"), np.cumsum(nonzero[:, ::-1], axis=-1)[:, ::-1] > 0)
    assert cmu.nonzero_mask(x)[7, 5] and cmu.nonzero_mask(x)[3, 3] and not cmu.nonzero_mask(x)[6].any()
    assert cmu.count_nonfinite(x, count_neginf=True) == (2, 2)
    assert cmu.count_nonfinite(x) == (0, 4)
    y = x.copy()
    assert cmu.zero_nonfinite_(y) is y
    assert np.array_equal(y, np.where(np.isfinite(x), x, 0))


def test_clean_copies_a_read_only_array_only_when_it_must():
    reader = cmu.MulTPickleReader("unused", dataset="mosei", nonfinite="zero")
    clean = np.ones((4, 3, 2), dtype=np.float32)
    clean.flags.writeable = False
    assert reader._clean(clean, "audio", "train", "w") is clean
    dirty = clean.copy()
    dirty[0, 0, 0] = -np.inf
    dirty.flags.writeable = False
    out = reader._clean(dirty, "audio", "train", "w")
    assert out is not dirty and out[0, 0, 0] == 0 and np.isneginf(dirty[0, 0, 0])
    writable = dirty.copy()
    assert reader._clean(writable, "vision", "val", "w") is writable and writable[0, 0, 0] == 0
    assert reader.audio_neginf == {"train": 1} and reader.nonfinite == {"train": {"audio": 0}, "val": {"vision": 1}}


def test_masks_and_cleaning_allocate_no_array_sized_temporaries():
    x = np.random.default_rng(0).normal(size=(2000, 50, 74)).astype(np.float32)  # 29.6 MB
    x[::7, :10] = 0.0
    x[5, 20, 3] = -np.inf
    x[3, 30] = 0.0  # an interior zero step: the run rule works on the (N, T) bools, in place
    reader = cmu.MulTPickleReader("unused", dataset="mosei")
    tracemalloc.start()
    try:
        mask = cmu.nonzero_mask(x)
        out = reader._clean(x, "audio", "train", "w")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out is x and x[5, 20, 3] == 0 and mask.shape == (2000, 50) and mask[3, 30] and not mask[7, :10].any()
    # at most a few chunk-sized bool temporaries (the old full-size `x != 0` / `np.isfinite(x)` were 25 % of x each)
    chunk_bools = cmu.SCAN_ROWS * 50 * 74
    assert peak - mask.nbytes <= 4 * chunk_bools < 0.15 * x.nbytes  # np.isneginf makes 3 chunk-sized ones


@pytest.mark.slow
def test_mosei_sized_aligned_load_meets_targets(tmp_path):
    bench = load_script("bench_cmu_load")
    try:
        record = bench.main(["--out", str(tmp_path / "data"), "--record", str(tmp_path / "bench")])
    finally:  # pytest keeps recent tmp dirs: do not leave 1.9 GB behind
        bench.pickle_path(tmp_path / "data", aligned=True).unlink(missing_ok=True)
    assert record["split_sizes"] == {"train": 16326, "val": 1871, "test": 4659}
    assert record["first_batch_shapes"]["audio"] == [24, 50, 74]
    assert record["load_and_first_batch_s"] <= 15.0
    assert record["rss_growth_over_arrays"] <= 1.1
    assert (tmp_path / "bench" / "cmu_load_aligned.json").is_file()
