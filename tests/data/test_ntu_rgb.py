"""``data=ntu`` (repro.data.ntu_rgb: skeletons + RGB avi) on its SYNTHETIC fixture (repro.data.fixtures_ntu.write_ntu:
the skeleton fixture + one 64×64 MPEG-4 avi per sample): the batch contract (keys, shapes, dtypes), pairing by sample
stem, the authors' frame loading (default and QUIRK), temporal crop, NormalizeLen, central crop, BGR QUIRK, bad input,
and `train.py data=ntu` with the unimodal fusions."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from repro.data.fixtures_ntu import MISSING_SAMPLE, RGB_PATTERNS
from repro.data.ntu_rgb import RGB_DIR, NTUReader
from repro.train import run
from tests.conftest import compose_train

SMOKE = {"frames": 8, "frame_size": 32}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return NTUReader.write_fixture(tmp_path_factory.mktemp("data") / "ntu")


@pytest.fixture
def folder(pristine, tmp_path) -> Path:
    """A private copy (tests add, remove and damage files)."""
    return Path(shutil.copytree(pristine, tmp_path / "ntu"))


def _load(folder, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is a partial release (8 of 40 subjects)
        return NTUReader(folder, **{**SMOKE, **kwargs}).load()


def test_samples_have_the_contract_keys_shapes_and_pairs(pristine, tmp_path):
    splits = _load(Path(shutil.copytree(pristine, tmp_path / "ntu")))
    assert {s: len(d) for s, d in splits.items()} == {"train": 32, "val": 16, "test": 16}
    assert all(MISSING_SAMPLE not in d.ids for d in splits.values())  # excluded from both sides
    sample = splits["test"][5]
    assert set(sample) == {"video", "skeleton", "label", "id"}
    assert sample["video"].shape == (8, 3, 32, 32) and sample["video"].dtype == torch.float32
    assert sample["skeleton"].shape == (3, 32, 25, 2) and sample["skeleton"].dtype == torch.float32
    assert 0 <= float(sample["video"].min()) and float(sample["video"].max()) <= 255  # uint8 pixels, not yet normalised
    assert int(sample["label"]) == int(sample["id"][-3:]) - 1
    clips = splits["test"].arrays["video"]
    assert [p.name for p in clips.paths] == [f"{s}_rgb.avi" for s in splits["test"].ids]  # paired by stem


def test_video_shows_the_action(pristine, tmp_path):
    """The fixture's RGB carries the label (so an RGB model can learn): the mean colour of a test clip's centre is
    nearest to its own action's blob colour for every test sample."""
    splits = _load(Path(shutil.copytree(pristine, tmp_path / "ntu")))
    colours = np.array([RGB_PATTERNS[a][0] for a in sorted(RGB_PATTERNS)], dtype=np.float64)
    for i in range(len(splits["test"])):
        sample = splits["test"][i]
        centre = sample["video"][:, :, 10:22, 10:22].mean(dim=(0, 2, 3)).numpy()
        nearest = int(np.argmin(((colours - centre) ** 2).sum(axis=1)))
        assert nearest == int(sample["label"]), sample["id"]


def test_train_hcn_on_ntu_beats_chance(pristine, tmp_path):
    """`python train.py data=ntu fusion=unimodal_skeleton` in-process; 4 balanced classes: chance 0.25."""
    cfg = compose_train(["data=ntu", "fusion=unimodal_skeleton", *NTUReader.fixture_run_overrides,
                         "data.batch_size=8", "trainer.max_epochs=8", "optimizer.lr=1e-3", "callbacks=none",
                         "count_flops=false"], tmp_path / "run", pristine.parent)
    run(cfg)
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["synthetic"] is True and record["params"]["total"] == 1_062_652
    assert record["metrics"]["test"]["acc"] >= 0.25 + 0.35


def test_train_i3d_on_ntu_runs_on_the_fixture(pristine, tmp_path):
    """`python train.py data=ntu fusion=unimodal_video`: I3D (12,348,764 params with 60 classes) on 8×32² clips."""
    cfg = compose_train(["data=ntu", "fusion=unimodal_video", *NTUReader.fixture_run_overrides,
                         "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
                         "+trainer.limit_test_batches=1", "callbacks=none", "count_flops=false"],
                        tmp_path / "run", pristine.parent)
    run(cfg)
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["synthetic"] is True and record["params"]["total"] == 12_348_764
    assert np.isfinite(record["metrics"]["test"]["loss"])


def test_rgb_folder_layout_is_the_prepared_one(pristine):
    assert (pristine / RGB_DIR / f"{MISSING_SAMPLE}_rgb.avi").is_file()  # the release has RGB for the 302
    assert "SYNTHETIC" in (pristine / "SYNTHETIC.txt").read_text()
