"""AV-MNIST reader against its SYNTHETIC fixtures in both layouts, and every bad-input error (one line)."""

from __future__ import annotations

import numpy as np
import pytest

from repro.data.avmnist import AVMNISTReader
from repro.data.base import DataError
from repro.data.fixtures import write_avmnist


@pytest.fixture()
def avmnist(tmp_path):
    return write_avmnist(tmp_path / "avmnist", n_train=50, n_test=20)


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_multibench_layout_splits_and_scaling(avmnist):
    splits = AVMNISTReader(avmnist, val_size=10).load()
    assert {k: len(v) for k, v in splits.items()} == {"train": 40, "val": 10, "test": 20}
    sample = splits["train"][0]
    assert sample["image"].shape == (1, 28, 28) and sample["audio"].shape == (1, 112, 112)
    assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0  # MultiBench: / 255
    raw = np.load(avmnist / "image" / "train_data.npy")[0].reshape(1, 28, 28)
    assert np.allclose(sample["image"].numpy(), raw / 255.0, atol=1e-6)
    # validation = the LAST val_size training samples (MultiBench)
    assert splits["val"][0]["id"] == "train40"


def test_mfas_layout_and_quirk_scaling(tmp_path):
    root = write_avmnist(tmp_path / "m", layout="mfas", n_train=50, n_test=20)
    reader = AVMNISTReader(root, scaling="mfas", search_train_end=30, search_val_end=45)
    assert reader.resolve_layout() == "mfas"
    splits = reader.load()
    assert {k: len(v) for k, v in splits.items()} == {"train": 30, "val": 15, "test": 20}
    raw = np.load(root / "images" / "train_data.npy")[0].reshape(1, 28, 28)
    assert np.allclose(splits["train"][0]["image"].numpy(), (raw - 0.1307) / 0.3081, atol=1e-3)
    raw_audio = np.load(root / "audio" / "train_data.npy")[0]
    assert np.allclose(splits["train"][0]["audio"].numpy()[0], raw_audio)


def test_missing_directory(tmp_path):
    with pytest.raises(DataError) as err:
        AVMNISTReader(tmp_path / "nowhere").load()
    assert "does not exist" in one_line(err) and "README" in str(err.value)


def test_missing_file(avmnist):
    (avmnist / "audio" / "test_data.npy").unlink()
    with pytest.raises(DataError) as err:
        AVMNISTReader(avmnist, val_size=10).load()
    assert "test_data.npy" in one_line(err) and "fix:" in str(err.value)


def test_wrong_shape(avmnist):
    np.save(avmnist / "image" / "train_data.npy", np.zeros((50, 28, 28), np.float32))
    with pytest.raises(DataError) as err:
        AVMNISTReader(avmnist, val_size=10).load()
    assert "expected (N, 784)" in one_line(err)


def test_wrong_dtype(avmnist):
    np.save(avmnist / "audio" / "train_data.npy", np.full((50, 112, 112), "x"))
    with pytest.raises(DataError) as err:
        AVMNISTReader(avmnist, val_size=10).load()
    assert "dtype" in one_line(err)


def test_labels_out_of_range(avmnist):
    labels = np.load(avmnist / "train_labels.npy")
    labels[3] = 12
    np.save(avmnist / "train_labels.npy", labels)
    with pytest.raises(DataError) as err:
        AVMNISTReader(avmnist, val_size=10).load()
    assert "expected 0..9" in one_line(err)


def test_mismatched_counts(avmnist):
    np.save(avmnist / "train_labels.npy", np.zeros(49, np.int64))
    with pytest.raises(DataError) as err:
        AVMNISTReader(avmnist, val_size=10).load()
    assert "expected equal counts" in one_line(err)


def test_corrupt_npy(avmnist):
    (avmnist / "image" / "test_data.npy").write_bytes(b"not an npy file")
    with pytest.raises(DataError) as err:
        AVMNISTReader(avmnist, val_size=10).load()
    assert "cannot read" in one_line(err)


def test_fixture_is_labelled_synthetic(avmnist):
    assert "SYNTHETIC" in (avmnist / "SYNTHETIC.txt").read_text()
