"""RAVDESS readers (repro.data.ravdess) on the SYNTHETIC fixture the registry writes (24 actors × 2 clips, prepared
from small mp4s / wavs by the real preparation): MSAF's folds and the validation protocol, the frame / size / BGR
switches, the config's transforms, a partial release, and the one-line errors of a missing or damaged folder."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from repro.config import CONFIG_DIR
from repro.data.base import DataError
from repro.data.datamodule import MultimodalDataModule
from repro.data.ravdess import RavdessAudioReader, RavdessReader, frame_subset
from repro.data.transforms import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return RavdessReader.write_fixture(tmp_path_factory.mktemp("data") / "ravdess")


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory) -> Path:
    return RavdessAudioReader.write_fixture(tmp_path_factory.mktemp("data") / "ravdess_audio")


def _actors(dataset) -> set[int]:
    return {int(str(i)[6:8]) for i in dataset.ids}


@pytest.mark.parametrize("select_on", ["test", "val"])
def test_six_folds_by_actor(folder, select_on):
    reader = RavdessReader(folder, select_on=select_on, frames=8, frame_size=32)
    seen_test, seen_val = [], []
    for k in range(6):
        splits = reader.load(k)
        test, val, train = (_actors(splits[s]) for s in ("test", "val", "train"))
        assert test == set(range(4 * k + 1, 4 * k + 5))  # MSAF: sorted actors, 4 consecutive ids per fold
        assert sum(a % 2 for a in test) == 2  # two male (odd) and two female (even) actors
        assert not train & test and len(splits["test"]) == 8
        if select_on == "test":
            assert val == test and len(train) == 20
        else:
            following = (k + 1) % 6  # the next fold's actors: never a test actor of fold k
            assert val == set(range(4 * following + 1, 4 * following + 5)) and not val & test
            assert not val & train and len(train) == 16
        assert sorted(torch.unique(torch.as_tensor(splits["test"].labels)).tolist()) == list(range(8))
        seen_test += sorted(test)
        seen_val += sorted(val)
    assert sorted(seen_test) == list(range(1, 25)) and sorted(seen_val) == list(range(1, 25))
    assert reader.synthetic is True


def test_frames_size_and_bgr_switches(folder):
    name = json.loads((folder / "manifest.json").read_text())["clips"][0]["name"]
    stored = np.load(folder / f"{name}.video.npy")
    full = RavdessReader(folder).load_all()
    assert full.arrays["video"].shape[1:] == (30, 3, 224, 224) and full.arrays["video"].dtype == np.uint8
    sample = full[0]
    assert sample["id"] == name and sample["video"].shape == (30, 3, 224, 224)
    assert torch.equal(sample["video"], torch.from_numpy(stored).float())  # uint8 on disk → float 0..255, unchanged
    assert frame_subset(8).tolist() == [0, 4, 8, 12, 17, 21, 25, 29]
    small = RavdessReader(folder, frames=8, frame_size=32).load_all()[0]["video"]
    expected = torch.nn.functional.interpolate(torch.from_numpy(stored[frame_subset(8)]).float(), size=(32, 32),
                                               mode="bilinear", align_corners=False, antialias=True)
    assert small.shape == (8, 3, 32, 32) and (small - expected).abs().max() <= 0.5 + 1e-4  # uint8 rounding
    bgr = RavdessReader(folder, frames=8, frame_size=32, quirk_bgr=True).load_all()[0]["video"]
    assert torch.equal(bgr, small.flip(1)) and not torch.equal(bgr, small)
    with pytest.raises(DataError, match="frames=31"):
        RavdessReader(folder, frames=31)


def test_config_transforms_train_and_eval(folder):
    cfg = OmegaConf.create({"data": OmegaConf.load(CONFIG_DIR / "data" / "ravdess.yaml")})
    cfg.data.reader.frame_size = 32
    reader = RavdessReader(folder, select_on="val", frames=8, frame_size=32)
    dm = MultimodalDataModule(reader, fold=0, batch_size=4, transforms=cfg.data.transforms, transform_seed=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (4, 8, 3, 32, 32) and batch["video"].dtype == torch.float32
    assert batch["audio"].shape == (4, 13, 212)
    assert -2.2 < batch["video"].min() and batch["video"].max() < 2.7  # ImageNet-normalised, not 0..255
    raw = dm.splits["test"][0]["video"]
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(dm.dataset("test")[0]["video"], (raw / 255 - mean) / std, atol=1e-5)  # eval: only that
    per_frame = OmegaConf.to_container(cfg.data.transforms, resolve=True)["train"]["video"]
    assert per_frame[0]["scale"] == [0.8, 1.4] and per_frame[0]["per_frame"] is False and per_frame[0]["size"] == 32


def test_audio_reader(audio_folder):
    reader = RavdessAudioReader(audio_folder, select_on="test")
    splits = reader.load(5)
    assert _actors(splits["test"]) == {21, 22, 23, 24} and set(splits["train"].arrays) == {"audio"}
    assert splits["train"][0]["audio"].shape == (13, 212) and reader.synthetic is True
    manifest = json.loads((audio_folder / "manifest.json").read_text())
    assert manifest["counts"]["stereo"] > 0 and manifest["counts"]["resampled"] == 48


def test_partial_release_warns_once_and_folds_need_all_actors(folder, tmp_path):
    partial = tmp_path / "ravdess"
    partial.mkdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["clips"] = [c for c in manifest["clips"] if c["actor"] <= 20]
    (partial / "manifest.json").write_text(json.dumps(manifest))
    for actor in range(1, 21):
        (partial / f"Actor_{actor:02d}").symlink_to(folder / f"Actor_{actor:02d}")
    reader = RavdessReader(partial)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        everything = reader.load_all()
        reader.load_all()
    assert len(everything) == 40
    assert [str(w.message).count("Actor_2") for w in caught] == [4]  # one warning naming Actor_21..24
    with pytest.raises(DataError, match="needs all 24 RAVDESS actors; missing Actor_21, Actor_22, Actor_23, Actor_24"):
        reader.load(0)


def test_missing_folder_is_one_line_with_the_download(tmp_path):
    with pytest.raises(DataError) as err:
        RavdessReader(tmp_path / "nowhere").load(0)
    text = str(err.value)
    assert "\n" not in text and str(tmp_path / "nowhere") in text
    assert "1188976" in text and "3255102" in text and "scripts/prepare_ravdess.py" in text
    with pytest.raises(DataError, match="--audio-only"):
        RavdessAudioReader(tmp_path / "nowhere").load(0)


def test_damaged_clip_is_one_line_naming_it(folder, tmp_path):
    copy = tmp_path / "ravdess"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("raw"))
    clip = copy / "Actor_03/01-01-05-01-01-01-03.video.npy"
    clip.write_bytes(clip.read_bytes()[:1000])
    with pytest.raises(DataError, match=f"{clip} is truncated"):
        RavdessReader(copy).load(0)
    (copy / "manifest.json").write_text("{")
    with pytest.raises(DataError, match="manifest.json"):
        RavdessReader(copy).load(0)
