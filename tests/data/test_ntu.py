"""NTU skeleton reader (repro.data.ntu) on its SYNTHETIC fixture (repro.data.fixtures_ntu: 8 subjects × 4 actions ×
2 replications + one all-empty sample): the parse-once memory-mapped cache, the missing-sample exclusion, the protocol
splits, the time resize, a partial release, bad files, and `train.py data=ntu_skeleton fusion=unimodal_skeleton`."""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import repro.data.ntu as ntu
from repro.data.base import DataError
from repro.data.fixtures_ntu import MISSING_SAMPLE
from repro.data.ntu import NTUSkeletonReader, random_crop, resize_time
from repro.data.ntu_names import PROTOCOLS, parse_ntu_name
from repro.data.ntu_skeleton import subtract_origin, synthetic_frames, write_skeleton_file
from repro.train import run
from tests.conftest import compose_train


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return NTUSkeletonReader.write_fixture(tmp_path_factory.mktemp("data") / "ntu")


@pytest.fixture
def folder(pristine, tmp_path) -> Path:
    """A private copy (tests add files and caches)."""
    return Path(shutil.copytree(pristine, tmp_path / "ntu"))


def _load(folder, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is a partial release (8 of 40 subjects)
        return NTUSkeletonReader(folder, **kwargs).load()


def _fail(*args, **kwargs):
    raise AssertionError("parse_skeleton called: the cache was not used")


def test_cache_built_once_then_memory_mapped_and_rebuilt_when_a_file_is_added(folder, monkeypatch):
    first = _load(folder)
    cache = folder / "cache"
    assert sorted(p.name for p in cache.iterdir()) == ["skeleton_frames.npy", "skeleton_index.json",
                                                      "skeleton_offsets.npy"]
    monkeypatch.setattr(ntu, "parse_skeleton", _fail)
    second = _load(folder)  # parses nothing
    frames = second["train"].arrays["skeleton"].cache.frames
    assert isinstance(frames, np.memmap) and frames.shape[1:] == (3, 25, 2)
    assert torch.equal(first["test"][3]["skeleton"], second["test"][3]["skeleton"])
    monkeypatch.undo()
    write_skeleton_file(folder / "nturgbd_skeletons" / "S001C001P001R001A010.skeleton",
                        synthetic_frames(np.random.default_rng(1), 20))
    third = _load(folder)
    assert len(third["train"]) == len(first["train"]) + 1 and "S001C001P001R001A010" in third["train"].ids
    index = json.loads((cache / "skeleton_index.json").read_text())
    assert len(index["names"]) == 66 and index["empty"] == [f"{MISSING_SAMPLE}.skeleton"]


def test_missing_samples_excluded_and_counted(folder, caplog):
    with caplog.at_level(logging.INFO, logger="repro.data.ntu"):
        kept = _load(folder)
    assert "1 of 65 samples have no skeleton data and are excluded" in caplog.text
    assert all(MISSING_SAMPLE not in d.ids for d in kept.values())
    assert MISSING_SAMPLE in _load(folder, exclude_missing=False)["train"].ids


@pytest.mark.parametrize("protocol", ["mfas", "msaf_quirk"])
def test_protocol_splits_by_subject(folder, protocol):
    data = _load(folder, protocol=protocol)
    proto = PROTOCOLS[protocol]
    for split, subjects in (("train", proto.train), ("val", proto.val), ("test", proto.test)):
        present = {parse_ntu_name(str(i)).subject for i in data[split].ids}
        assert present and present <= set(subjects), (split, present)
        labels = [parse_ntu_name(str(i)).label for i in data[split].ids]
        assert data[split].labels.tolist() == labels and set(labels) == {0, 1, 2, 3}
    sizes = {s: len(d) for s, d in data.items()}
    # mfas: subjects 1, 4, 8, 13 train, 2, 5 dev; msaf_quirk: all 6 CS-train subjects train, dev = test subjects 3, 6
    assert sizes == ({"train": 32, "val": 16, "test": 16} if protocol == "mfas" else
                     {"train": 48, "val": 16, "test": 16})


def test_sample_is_origin_subtracted_and_resized_to_the_window(folder):
    data = _load(folder)["val"]  # not cropped
    x = data[0]["skeleton"]
    assert x.shape == (3, 32, 25, 2) and x.dtype == torch.float32
    windows = data.arrays["skeleton"]
    raw = np.array(windows.cache.sequence(int(windows.rows[0])))
    np.testing.assert_allclose(x.numpy(), resize_time(subtract_origin(raw), 32), rtol=0, atol=0)
    present = x[:, :, :, 0].abs().sum(dim=(0, 2)) > 0
    assert torch.all(x[:, present, 1, 0] == 0)  # the spine middle of body 0 is the origin wherever body 0 is present
    assert _load(folder, window=8)["train"][0]["skeleton"].shape == (3, 8, 25, 2)


def test_time_resize_is_linear_in_time_by_hand():
    xyz = np.zeros((3, 3, 25, 2), dtype=np.float32)
    xyz[0, :, 0, 0] = [0.0, 10.0, 30.0]
    out = resize_time(xyz, 4)
    # align_corners=False: source positions (i + 0.5)·3/4 − 0.5 = −0.125 (clamped to 0), 0.625, 1.375, 2.125 (→ 2)
    np.testing.assert_allclose(out[0, :, 0, 0], [0.0, 6.25, 17.5, 30.0], rtol=1e-6)
    assert out.shape == (3, 4, 25, 2) and not out[1:].any() and not out[:, :, 1:].any()
    assert not resize_time(np.zeros((3, 0, 25, 2), np.float32), 4).any()


def test_training_crop_as_the_authors_augcrop(folder):
    ramp = np.broadcast_to(np.arange(200, dtype=np.float32)[None, :, None, None], (3, 200, 25, 2))
    torch.manual_seed(0)
    crops = [random_crop(ramp, 0.5)[0, :, 0, 0] for _ in range(50)]
    for c in crops:  # a contiguous window of >= max(0.5 · 200, 64) = 100 frames
        assert 100 <= len(c) <= 200 and np.array_equal(c, np.arange(c[0], c[0] + len(c)))
    assert len({(c[0], len(c)) for c in crops}) > 10
    short = ramp[:, :50]
    assert np.array_equal(random_crop(short, 0.5), short)  # shorter than 64 frames: kept whole
    data = _load(folder)
    assert data["train"].arrays["skeleton"].crop == 0.5 and data["val"].arrays["skeleton"].crop is None
    assert data["test"].arrays["skeleton"].crop is None
    assert _load(folder, temporal_crop=None)["train"].arrays["skeleton"].crop is None


def test_partial_release_warns_once(folder):
    reader = NTUSkeletonReader(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader.load()
        reader.load()
    partial = [w for w in caught if "partial NTU release" in str(w.message)]
    assert len(partial) == 1 and "32 of 40 subjects absent" in str(partial[0].message)


def test_bad_skeleton_file_is_one_line_naming_it(folder):
    bad = folder / "nturgbd_skeletons" / "S001C001P003R001A002.skeleton"
    lines = bad.read_text().splitlines()
    bad.write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # a truncated copy
    with pytest.raises(DataError) as err:
        _load(folder)
    message = str(err.value)
    assert "\n" not in message and str(bad) in message and "truncated" in message


def test_missing_folder_and_foreign_file_are_one_line_errors(folder, tmp_path):
    with pytest.raises(DataError, match="missing folder .*nturgbd_skeletons"):
        _load(tmp_path / "nowhere")
    (folder / "nturgbd_skeletons" / "notes.skeleton").write_text("1\n0\n")
    with pytest.raises(DataError, match="notes.skeleton: not an NTU RGB\\+D 60 sample name"):
        _load(folder)


def test_train_hcn_on_the_fixture_beats_chance(folder, tmp_path):
    """`python train.py data=ntu_skeleton fusion=unimodal_skeleton` in-process; 4 balanced classes: chance 0.25.
    Measured (seed 0, 15 epochs of 4 batches): val and test acc 0.875."""
    cfg = compose_train(["data=ntu_skeleton", "fusion=unimodal_skeleton", *NTUSkeletonReader.fixture_run_overrides,
                         "trainer.max_epochs=15", "optimizer.lr=1e-3", "callbacks=none", "count_flops=false"],
                        tmp_path / "run", folder.parent)
    run(cfg)
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["synthetic"] is True and record["params"]["total"] == 1_062_652
    assert record["metrics"]["test"]["acc"] >= 0.25 + 0.35
