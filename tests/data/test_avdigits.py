"""Tests for the embedded AV-Digits set (`repro.data.avdigits`).

The first derivation of the audio spectrograms takes a few seconds, so one module-scoped cache
directory is shared by the tests that need the derived arrays; error-path tests use copies of the
package files in `tmp_path`.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from repro.data.avdigits import (
    AVDIGITS_DIR,
    DATA_FILE,
    MANIFEST_FILE,
    SPLITS,
    load_avdigits,
    sha256_file,
)

MANIFEST = json.loads((AVDIGITS_DIR / MANIFEST_FILE).read_text())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("avdigits_cache")


@pytest.fixture(scope="module")
def data(cache):
    return load_avdigits(cache_dir=cache)


def test_shapes_dtypes_sizes(data):
    assert set(data) == set(SPLITS)
    for split in SPLITS:
        n = MANIFEST["sizes"][split]
        d = data[split]
        assert d["image"].shape == (n, 784) and d["image"].dtype == np.uint8
        assert d["audio"].shape == (n, 112, 112) and d["audio"].dtype == np.uint8
        assert d["label"].shape == (n,) and d["label"].dtype == np.int64
        assert d["voice"].shape == (n,)


def test_labels_cover_all_classes(data):
    for split in SPLITS:
        labels = np.asarray(data[split]["label"])
        assert labels.min() >= 0 and labels.max() <= 9
        assert set(np.unique(labels)) == set(range(10)), split


def test_values_are_not_degenerate(data):
    # Spectrograms use the full 0..255 range per sample (max → 255); images are not blank.
    audio = np.asarray(data["val"]["audio"][:50])
    assert (audio.reshape(50, -1).max(axis=1) == 255).all()
    assert np.asarray(data["val"]["image"][:50]).std() > 10


def test_voices_disjoint_between_splits(data):
    if not MANIFEST.get("disjoint_voices"):
        pytest.skip("manifest does not promise disjoint voices")
    seen = {s: set(np.asarray(data[s]["voice"]).tolist()) for s in SPLITS}
    for split in SPLITS:
        assert seen[split] <= set(MANIFEST["voices"][split])
    assert not seen["train"] & seen["test"]
    assert not seen["train"] & seen["val"]


def test_manifest_sha256_matches_files():
    assert MANIFEST["files"], "manifest lists no files"
    for name, info in MANIFEST["files"].items():
        assert sha256_file(AVDIGITS_DIR / name) == info["sha256"], name


def test_deterministic_and_cached_load_fast(data, cache, tmp_path):
    start = time.perf_counter()
    again = load_avdigits(cache_dir=cache)
    assert time.perf_counter() - start < 5.0
    for split in SPLITS:
        for field in ("image", "audio", "label", "voice"):
            assert np.array_equal(np.asarray(again[split][field]), np.asarray(data[split][field]))


def test_fresh_derivation_matches_cache(data, tmp_path):
    # Derive a slice again from scratch (no cache) and compare: the derivation is deterministic.
    from repro.data.avdigits import derive_split

    with np.load(AVDIGITS_DIR / DATA_FILE) as npz:
        z = {k: npz[k] for k in npz.files}
    n = 64
    for key in [k for k in z if k.startswith("val_")]:
        z[key] = z[key][:n]
    fresh = derive_split(z, "val")
    for field in ("image", "audio", "label", "voice"):
        assert np.array_equal(fresh[field], np.asarray(data["val"][field][:n])), field


def _copy_package(tmp_path):
    dst = tmp_path / "pkg"
    shutil.copytree(AVDIGITS_DIR, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_missing_file_gives_clear_error(tmp_path):
    pkg = _copy_package(tmp_path)
    (pkg / DATA_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"avdigits\.npz.*make_avdigits\.py"):
        load_avdigits(cache_dir=tmp_path / "cache", data_dir=pkg)


def test_missing_manifest_gives_clear_error(tmp_path):
    pkg = _copy_package(tmp_path)
    (pkg / MANIFEST_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"manifest\.json.*make_avdigits\.py"):
        load_avdigits(cache_dir=tmp_path / "cache", data_dir=pkg)


def test_corrupt_file_gives_clear_error(tmp_path):
    pkg = _copy_package(tmp_path)
    with open(pkg / DATA_FILE, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ValueError, match=r"avdigits\.npz is corrupt.*make_avdigits\.py"):
        load_avdigits(cache_dir=tmp_path / "cache", data_dir=pkg)
