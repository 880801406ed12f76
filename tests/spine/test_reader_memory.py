"""Readers load only the modalities the network reads, memory-mapped, and splits are views (issue 13 §7)."""

from __future__ import annotations

import numpy as np

from repro.data.avmnist import AVMNISTReader
from repro.data.base import contiguous_slice
from repro.data.datamodule import MultimodalDataModule
from repro.data.fixtures import write_avmnist
from repro.train import build_datamodule, build_net
from tests.conftest import compose_train


def test_modality_subset_loads_only_those_arrays_memory_mapped(tmp_path):
    root = write_avmnist(tmp_path / "avmnist", n_train=50, n_test=20)  # SYNTHETIC
    reader = AVMNISTReader(root, val_size=10)
    reader.modalities = ("image",)
    (root / "audio" / "train_data.npy").write_bytes(b"never opened")  # an image-only load must not read it
    splits = reader.load()
    for split, dataset in splits.items():
        assert list(dataset.arrays) == ["image"], split
        assert isinstance(dataset.arrays["image"], np.memmap), split  # a view on the file, not a copy
    assert set(splits["train"][0]) == {"image", "label", "id"}


def test_all_modalities_by_default_and_splits_are_views(tmp_path):
    root = write_avmnist(tmp_path / "avmnist", n_train=50, n_test=20)  # SYNTHETIC
    splits = AVMNISTReader(root, val_size=10).load()
    train, val = splits["train"].arrays["audio"], splits["val"].arrays["audio"]
    assert isinstance(train, np.memmap) and isinstance(val, np.memmap)
    assert (len(train), len(val)) == (40, 10)
    full = np.load(root / "audio" / "train_data.npy")
    assert np.array_equal(val[0], full[40])  # val = the last 10 training samples


def test_contiguous_slice():
    assert contiguous_slice(np.arange(3, 8)) == slice(3, 8)
    assert contiguous_slice(np.array([0, 2, 3])) is None
    assert contiguous_slice(np.array([], dtype=np.int64)) is None


def test_train_reads_only_the_networks_modalities(data_dir, tmp_path):
    cfg = compose_train(["data=avmnist", "fusion=unimodal_image", "data.reader.val_size=20"], tmp_path, data_dir)
    datamodule: MultimodalDataModule = build_datamodule(cfg)
    datamodule.read_only(build_net(cfg).modalities)
    datamodule.setup()
    assert {s: list(d.arrays) for s, d in datamodule.splits.items()} == {s: ["image"] for s in ("train", "val", "test")}


def test_pages_are_released_periodically_and_samples_stay_right(tmp_path, monkeypatch):
    root = write_avmnist(tmp_path / "avmnist", n_train=50, n_test=20)  # SYNTHETIC
    train = AVMNISTReader(root, val_size=10).load()["train"]
    train.release_every = 4
    calls = []
    release = train.release_pages
    monkeypatch.setattr(train, "release_pages", lambda: (calls.append(1), release()))
    raw = np.load(root / "audio" / "train_data.npy")
    for i in range(10):  # values read after a release are the file's (MultiBench scaling: / 255)
        assert np.allclose(train[i]["audio"].numpy()[0], raw[i] / 255.0, atol=1e-6)
    assert len(calls) == 2  # after the 4th and the 8th sample
