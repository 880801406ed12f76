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
    folder = Path(shutil.copytree(pristine, tmp_path / "ntu"))
    (folder / RGB_DIR / ".S001C001P001R001A001_rgb.avi.k2j3.avi").write_bytes(b"half")  # an interrupted prepare's
    splits = _load(folder)
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


# ---------------------------------------------------------------------------------------------------------------
# the authors' frame loading, re-stated


def _authors_load_video_slots(n: int) -> list[int]:
    """anita-hu/mfas datasets/ntu.py load_video, re-stated on frame indices: -1 = a slot left zero."""
    taken = np.linspace(0, n, 24).astype(int)
    video, np_idx = [-1] * 24, 0
    for fr_idx in range(n):
        if fr_idx in taken:
            video[np_idx] = fr_idx
            np_idx += 1
    return video


@pytest.mark.parametrize("n", [1, 3, 10, 23, 24, 25, 47, 100, 137])
def test_loaded_slots_default_and_quirk(n):
    from repro.data.ntu_rgb import EMPTY, loaded_slots

    default = loaded_slots(n)
    assert len(default) == 24 and default[0] == 0 and default[-1] == n - 1 and (default >= 0).all()
    assert np.array_equal(default, np.round(np.linspace(0, n - 1, 24)).astype(int))
    quirk = loaded_slots(n, quirk_last_frame_zero=True)
    assert quirk.tolist() == _authors_load_video_slots(n)
    assert quirk[-1] == EMPTY  # the last of the 24 is never read
    if n < 24:
        assert (quirk == EMPTY).sum() == 24 - len(set(np.linspace(0, n, 24).astype(int)) - {n})


def test_crop_and_normalize_len_as_the_authors():
    from repro.data.ntu_rgb import crop_slots, normalize_len

    slots = np.arange(24)
    for u in (0.0, 0.3, 0.77, 0.999):
        ratio = 1.0 - 0.5 * u
        begin = (24 - int(24 * ratio)) // 2  # AugCrop's RGB branch
        assert np.array_equal(crop_slots(slots, 0.5, u), slots[begin:24 - begin])
    assert np.array_equal(normalize_len(slots, 32), np.linspace(0, 23, 32).astype(int))
    assert np.array_equal(normalize_len(slots[3:21], 8), slots[3:21][np.linspace(0, 17, 8).astype(int)])


def _ramp(path: Path, n: int, size: int = 64) -> Path:
    """A lossless avi whose frame k has green 4·k + 8 (k < 60), blue 0, and red markers at the left: columns 0-3 are
    255 (outside the central crop of 56 of 64), column 4 is 200 (its first column)."""
    from repro.data.fixtures_ntu import write_avi

    frames = np.stack([np.full((size, size, 3), 4 * k + 8, np.uint8) for k in range(n)])
    frames[:, :, :4, 0] = 255  # the margin the central crop cuts off
    frames[:, :, 4, 0] = 200  # the crop's first column
    frames[:, :, :, 2] = 0  # blue 0: the channel order is visible
    return write_avi(path, frames, codec="rawvideo", pix_fmt="bgr24")


def _frame_numbers(clip: np.ndarray) -> list[int]:
    """Frame index of each frame of a (T, 3, S, S) clip from `_ramp` (−1 = a zero frame)."""
    green = clip[:, 1].reshape(len(clip), -1).mean(axis=1)
    return [-1 if g == 0 else int(round((g - 8) / 4)) for g in green]


@pytest.mark.parametrize("n", [40, 10])
@pytest.mark.parametrize("quirk", [False, True])
def test_clip_decodes_the_authors_frames(tmp_path, n, quirk):
    """Eval path: the 24 loaded slots, NormalizeLen to 8, each frame the decoded frame it names (or zero)."""
    from repro.data.ntu_rgb import NTUClips, loaded_slots, normalize_len

    clips = NTUClips([_ramp(tmp_path / "S001C001P001R001A001_rgb.avi", n)], frames=8, frame_size=56,
                     quirk_last_frame_zero=quirk)
    clip = clips[0]
    assert clip.shape == (8, 3, 56, 56) and clip.dtype == np.uint8
    assert _frame_numbers(clip) == normalize_len(loaded_slots(n, quirk), 8).tolist()
    clips32 = NTUClips(clips.paths, frames=32, frame_size=56, quirk_last_frame_zero=quirk)
    numbers = _frame_numbers(clips32[0])
    assert (numbers[-1] == -1) == quirk  # the QUIRK's zero last slot reaches the network's last frame
    assert -1 not in numbers[:-1] or (quirk and n < 24)


def test_training_crop_draws_from_torch(tmp_path):
    from repro.data.ntu_rgb import NTUClips, crop_slots, loaded_slots, normalize_len

    clips = NTUClips([_ramp(tmp_path / "S001C001P001R001A001_rgb.avi", 60)], frames=8, frame_size=56, crop=0.5)
    seed = next(s for s in range(100) if float(torch.rand((), generator=torch.Generator().manual_seed(s))) > 0.5)
    torch.manual_seed(seed)
    got = _frame_numbers(clips[0])
    torch.manual_seed(seed)
    u = float(torch.rand(()))
    assert got == normalize_len(crop_slots(loaded_slots(60), 0.5, u), 8).tolist()
    assert got[0] > 0 and got[-1] < 59  # a crop of the middle (u > 0.5: at most 18 of the 24 slots)


def test_central_crop_resize_and_bgr(tmp_path):
    from repro.data.ntu_rgb import NTUClips, resized_size

    path = _ramp(tmp_path / "S001C001P001R001A001_rgb.avi", 30)
    rgb = NTUClips([path], frames=4, frame_size=56)[0]  # 64 = 56·256/224: no resize, start 32 − 28 = 4
    assert resized_size(56) == 64 and resized_size(224) == 256 and resized_size(32) == 37
    assert (rgb[:, 0] != 255).all() and (rgb[:, 0, :, 0] == 200).all()  # VisualRandomCrop's box starts at 4
    bgr = NTUClips([path], frames=4, frame_size=56, bgr=True)[0]
    assert np.array_equal(bgr, rgb[:, ::-1]) and (bgr[:, 0] == 0).all()
    small = NTUClips([path], frames=4, frame_size=32)[0]  # 64 → 37, then the central 32
    assert small.shape == (4, 3, 32, 32)


# ---------------------------------------------------------------------------------------------------------------
# bad input: one line naming the file, never a misalignment


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_undecodable_avi_is_one_line_naming_it(folder):
    bad = folder / RGB_DIR / "S001C001P003R001A002_rgb.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI not a video" * 8)
    splits = _load(folder)
    index = list(splits["test"].ids).index("S001C001P003R001A002")
    with pytest.raises(Exception) as err:
        splits["test"][index]
    assert err.type.__name__ == "DataError" and str(bad) in _one_line(err) and "cannot decode" in str(err.value)


def test_clip_without_frames_is_one_line(tmp_path):
    from repro.data.base import DataError
    from repro.data.ntu_rgb import NTUClips

    full = _ramp(tmp_path / "full.avi", 5).read_bytes()
    empty = tmp_path / "S001C001P001R001A001_rgb.avi"
    empty.write_bytes(full[:full.index(b"movi") + 4])  # the header, no frame
    with pytest.raises(DataError) as err:
        NTUClips([empty], frames=8, frame_size=56)[0]
    assert str(empty) in _one_line(err) and "no video frames" in str(err.value)


def test_short_clip_repeats_real_frames_or_leaves_the_authors_zeros(tmp_path):
    from repro.data.ntu_rgb import NTUClips

    path = _ramp(tmp_path / "S001C001P001R001A001_rgb.avi", 3)
    assert _frame_numbers(NTUClips([path], frames=24, frame_size=56)[0]) == np.round(np.linspace(0, 2, 24)).tolist()
    quirk = _frame_numbers(NTUClips([path], frames=24, frame_size=56, quirk_last_frame_zero=True)[0])
    assert quirk == [0, 1, 2] + [-1] * 21  # linspace(0, 3, 24) holds 0, 1, 2 (each once) and 3 (never read)


def test_rgb_file_without_skeleton_is_one_line(folder):
    from repro.data.base import DataError

    orphan = folder / RGB_DIR / "S001C001P001R001A009_rgb.avi"
    shutil.copyfile(folder / RGB_DIR / "S001C001P001R001A001_rgb.avi", orphan)
    with pytest.raises(DataError) as err:
        _load(folder)
    assert str(orphan) in _one_line(err) and "no skeleton partner" in str(err.value)


def test_skeleton_without_rgb_is_one_line(folder):
    from repro.data.base import DataError

    (folder / RGB_DIR / "S001C001P004R002A003_rgb.avi").unlink()
    with pytest.raises(DataError) as err:
        _load(folder)
    text = _one_line(err)
    assert "S001C001P004R002A003.skeleton has no RGB video" in text and "S001C001P004R002A003_rgb.avi" in text


def test_missing_rgb_folder_and_foreign_rgb_name(folder):
    from repro.data.base import DataError

    (folder / RGB_DIR / "notes.avi").write_bytes(b"x")
    with pytest.raises(DataError, match="notes.avi: not an NTU RGB\\+D 60 sample name"):
        _load(folder)
    shutil.rmtree(folder / "nturgbd_rgb")
    with pytest.raises(DataError) as err:
        _load(folder)
    assert str(folder / RGB_DIR) in _one_line(err) and "prepare_ntu.py" in str(err.value)


def test_partial_release_warns_once_and_splits_what_is_present(folder):
    for subject in (5, 6):  # one dev and one test subject gone from both sides
        for p in [*folder.glob(f"nturgbd_skeletons/*P{subject:03d}*"), *folder.glob(f"{RGB_DIR}/*P{subject:03d}*")]:
            p.unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = NTUReader(folder, **SMOKE).load()
    partial = [w for w in caught if "partial NTU release" in str(w.message)]
    assert len(partial) == 1 and "34 of 40 subjects absent" in str(partial[0].message)
    assert {s: len(d) for s, d in splits.items()} == {"train": 32, "val": 8, "test": 8}


def test_pairing_is_by_stem_whatever_the_listing_order(tmp_path):
    """The sorted listings differ position by position: the RGB side also holds the file of a sample whose skeleton
    is excluded (no skeleton data), and mixes the release's ``_rgb.avi`` with a bare ``.avi``; the files come in
    shuffled. Positional pairing (the authors' zip of two sorted lists) would give A002 the video of A001."""
    from repro.data.base import DataError
    from repro.data.ntu_rgb import pair_by_stem, rgb_by_stem

    rgb_names = ["S001C001P001R001A003.avi", "S001C001P001R001A001_rgb.avi", "S001C002P001R001A002_rgb.avi",
                 "S001C001P001R001A002_rgb.avi"]
    skeletons = ["S001C002P001R001A002.skeleton", "S001C001P001R001A003.skeleton", "S001C001P001R001A002.skeleton",
                 "S001C001P001R001A001.skeleton"]
    excluded = {"S001C001P001R001A001"}
    kept_sorted = sorted(n for n in skeletons if n[:20] not in excluded)
    positional = dict(zip(kept_sorted, sorted(rgb_names)))
    assert positional["S001C001P001R001A002.skeleton"] == "S001C001P001R001A001_rgb.avi"  # the authors' way: wrong
    paired = pair_by_stem(rgb_by_stem([tmp_path / n for n in rgb_names]), skeletons, excluded, tmp_path, tmp_path)
    assert {s: p.name for s, p in paired.items()} == {
        "S001C001P001R001A002": "S001C001P001R001A002_rgb.avi", "S001C001P001R001A003": "S001C001P001R001A003.avi",
        "S001C002P001R001A002": "S001C002P001R001A002_rgb.avi"}
    with pytest.raises(DataError, match="two RGB files"):
        rgb_by_stem([tmp_path / "S001C001P001R001A001_rgb.avi", tmp_path / "S001C001P001R001A001.avi"])


def test_config_frames_follow_the_backbone(tmp_path):
    """configs/data/ntu.yaml: T = backbone.video_frames (I3D 32, inflated ResNet-50 8), 32 without it; the
    modalities entry follows T and frame_size."""
    from omegaconf import OmegaConf

    for overrides, frames in (([], 32), (["backbone.video_frames=8"], 8), (["~backbone.video_frames"], 32)):
        cfg = compose_train(["data=ntu", "fusion=unimodal_video", *overrides], tmp_path / "run", tmp_path)
        data = OmegaConf.to_container(cfg.data, resolve=True)
        assert data["reader"]["frames"] == frames and data["modalities"]["video"] == [frames, 3, 224, 224]
        assert data["family"] == "video_skeleton" and data["modalities"]["skeleton"] == [3, 32, 25, 2]
        assert data["reader"]["parse_workers"] is None  # every core (repro.data.ntu.resolve_workers)


def test_dataloader_with_two_workers_reads_every_training_clip_normalised(pristine, tmp_path):
    """The datamodule with 2 workers (forked; the crops draw from each worker's seeded torch RNG) and the config's
    train transforms: every training sample once per epoch, ImageNet-normalised."""
    from omegaconf import OmegaConf

    from repro.config import CONFIG_DIR
    from repro.data.datamodule import MultimodalDataModule

    folder = Path(shutil.copytree(pristine, tmp_path / "ntu"))
    transforms = OmegaConf.load(CONFIG_DIR / "data" / "ntu.yaml").transforms
    dm = MultimodalDataModule(NTUReader(folder, **SMOKE), batch_size=4, num_workers=2, transforms=transforms,
                              transform_seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids = []
        for batch in dm.train_dataloader():
            assert batch["video"].shape[1:] == (8, 3, 32, 32) and batch["skeleton"].shape[1:] == (3, 32, 25, 2)
            assert float(batch["video"].min()) >= -2.2 and float(batch["video"].max()) <= 2.7  # (x/255 − mean)/std
            ids += batch["id"]
    assert sorted(ids) == sorted(dm.splits["train"].ids.tolist())
