"""Each data error gives the fix for that error and names the key the user set (issue 13 §7)."""

from __future__ import annotations

import numpy as np
import pytest

from repro.data.avmnist import AVMNISTReader
from repro.data.base import DataError, folder_key_from_overrides
from repro.data.datamodule import MultimodalDataModule
from repro.data.fixtures import write_avmnist
from tests.conftest import compose_train


def error_line(reader: AVMNISTReader) -> str:
    with pytest.raises(DataError) as err:
        reader.load()
    text = str(err.value)
    assert "\n" not in text
    return text


def reader_for(root, key=None) -> AVMNISTReader:
    reader = AVMNISTReader(root, val_size=10)
    reader.folder_key = key
    return reader


def test_folder_key_from_overrides():
    assert folder_key_from_overrides(["data=avmnist", "paths.data_dir=/d"], "data.reader.root") == "paths.data_dir"
    assert folder_key_from_overrides(["paths.data_dir=/d", "data.reader.root=/d/x"], "data.reader.root") == \
        "data.reader.root"
    assert folder_key_from_overrides(["++data.reader.root=/x"], "data.reader.root") == "data.reader.root"
    assert folder_key_from_overrides(["data=avmnist"], "data.reader.root") is None


def test_missing_folder_names_the_key_the_user_set(tmp_path):
    via_data_dir = error_line(reader_for(tmp_path / "avmnist", "paths.data_dir"))
    assert "does not exist" in via_data_dir and "your paths.data_dir has no avmnist/" in via_data_dir
    via_root = error_line(reader_for(tmp_path / "avmnist", "data.reader.root"))
    assert "your data.reader.root is not that folder" in via_root and "paths.data_dir" not in via_root
    neither = error_line(reader_for(tmp_path / "avmnist"))
    assert "paths.data_dir=" in neither and "data.reader.root=" in neither  # both ways offered


def test_truncated_file_says_copy_it_again(tmp_path):
    root = write_avmnist(tmp_path / "avmnist", n_train=50, n_test=20)  # SYNTHETIC
    path = root / "audio" / "train_data.npy"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a download cut short
    text = error_line(reader_for(root, "paths.data_dir"))
    assert str(path) in text and "truncated" in text and "copy it again" in text
    assert "does not exist" not in text


def test_label_count_mismatch_says_use_one_download(tmp_path):
    root = write_avmnist(tmp_path / "avmnist", n_train=50, n_test=20)  # SYNTHETIC
    np.save(root / "train_labels.npy", np.zeros(49, np.int64))
    text = error_line(reader_for(root, "paths.data_dir"))
    assert "50 image samples" in text and "49 labels" in text and "from one download" in text
    assert "truncated or not a .npy" not in text


def test_datamodule_tells_the_reader_the_overridden_key(tmp_path):
    overrides = ["data=avmnist", f"data.reader.root={tmp_path / 'nowhere'}"]
    datamodule = MultimodalDataModule.from_config(compose_train(overrides, tmp_path), overrides=overrides)
    with pytest.raises(DataError, match=r"your data\.reader\.root is not that folder"):
        datamodule.setup()
