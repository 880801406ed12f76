"""`data.transforms` (repro.data.transforms): pure-torch per-modality train / eval transforms run by the datamodule.

Video transforms are tested on small random (T, C, H, W) clips; the datamodule path on a SYNTHETIC AV-MNIST
fixture (`repro.data.fixtures.write_avmnist`)."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from repro.data.avmnist import AVMNISTReader
from repro.data.base import ArrayDataset
from repro.data.datamodule import MultimodalDataModule
from repro.data.fixtures import write_avmnist
from repro.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    HorizontalFlip,
    Normalize,
    RandomResizedCrop,
    TransformedDataset,
    TransformError,
    parse_transforms,
    random_resized_crop_box,
)
from tests.conftest import compose_train

VIDEO_TRAIN = {"video": [{"name": "random_resized_crop", "size": 16, "scale": [0.5, 1.0]}, {"name": "hflip"}]}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clip(t: int = 6, h: int = 32, w: int = 24, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    x = torch.rand(t, 3, h, w, generator=gen(seed)) * 255
    return x.to(dtype)


def one_line_error(config) -> str:
    with pytest.raises(TransformError) as err:
        parse_transforms(config)
    assert "\n" not in str(err.value)
    return str(err.value)


# ---- the transforms themselves --------------------------------------------------------------------------------


def test_random_transforms_are_deterministic_under_a_seed():
    pipeline = parse_transforms({"train": VIDEO_TRAIN})["train"]["video"]
    x = clip()
    assert torch.equal(pipeline(x, gen(0)), pipeline(x, gen(0)))
    outputs = [pipeline(x, gen(s)) for s in range(4)]
    assert any(not torch.equal(outputs[0], o) for o in outputs[1:])


def test_eval_transforms_are_deterministic_whatever_the_seed():
    pipeline = parse_transforms({"eval": {"video": [{"name": "center_crop", "size": 16}, {"name": "bgr_to_rgb"},
                                                    {"name": "imagenet_normalize"}]}})["eval"]["video"]
    x = clip(dtype=torch.uint8)
    out = pipeline(x, gen(0))
    assert torch.equal(out, pipeline(x, gen(123)))
    # the same by hand: centre 16x16 of 32x24 → rows 8..23, cols 4..19; channels reversed; /255, ImageNet stats
    expected = x[..., 8:24, 4:20].flip(-3).float() / 255
    expected = (expected - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(pipeline(x.float(), gen(0)), out)  # float 0..255, as readers give uint8 frames
    already_scaled = parse_transforms({"eval": {"video": [{"name": "imagenet_normalize", "max_value": 1}]}})
    torch.testing.assert_close(already_scaled["eval"]["video"](x[..., 8:24, 4:20].flip(-3).float() / 255, gen(0)), out)


def test_a_random_transform_in_eval_is_a_one_line_error():
    message = one_line_error({"eval": {"video": [{"name": "hflip"}]}})
    assert "data.transforms.eval.video" in message and "data.transforms.train" in message


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_shapes_are_as_configured_and_dtypes_preserved(dtype):
    x = clip(dtype=dtype)  # (6, 3, 32, 24)
    assert RandomResizedCrop(16)(x, gen(0)).shape == (6, 3, 16, 16)
    assert RandomResizedCrop([16, 20], per_frame=True)(x, gen(0)).shape == (6, 3, 16, 20)
    assert RandomResizedCrop(16)(x, gen(0)).dtype == dtype
    assert RandomResizedCrop(16)(x[0], gen(0)).shape == (3, 16, 16)  # one image (C, H, W)
    assert CenterCrop(20)(x, gen(0)).shape == (6, 3, 20, 20)
    assert CenterCrop([40, 24])(x, gen(0)).shape == (6, 3, 40, 24)  # larger than the frame: zero-padded
    assert HorizontalFlip()(x, gen(0)).shape == x.shape


def test_per_clip_crop_is_one_box_on_every_frame_and_per_frame_crops_differ():
    base = torch.rand(1, 3, 32, 32, generator=gen(1)) * 100
    offsets = torch.arange(8.0).view(8, 1, 1, 1) * 10  # frame t = the same picture + 10·t
    x = base + offsets
    for seed in range(5):
        out = RandomResizedCrop(16, scale=(0.3, 0.6))(x, gen(seed))
        torch.testing.assert_close(out - offsets, (out[0] - offsets[0]).expand_as(out), atol=1e-3, rtol=0)  # one box
    out = RandomResizedCrop(16, scale=(0.3, 0.6), per_frame=True)(x, gen(0))
    pictures = out - offsets
    assert not all(torch.allclose(pictures[t], pictures[0]) for t in range(1, 8))


def test_flip_flips_per_clip_or_per_frame():
    x = clip()
    assert torch.equal(HorizontalFlip(p=1.0)(x, gen(0)), x.flip(-1))
    assert torch.equal(HorizontalFlip(p=0.0)(x, gen(0)), x)
    x = clip(t=32)
    out = HorizontalFlip(p=0.5, per_frame=True)(x, gen(0))
    flipped = [torch.equal(out[t], x[t].flip(-1)) for t in range(32)]
    assert all(f or torch.equal(out[t], x[t]) for t, f in enumerate(flipped))
    assert 0 < sum(flipped) < 32


def test_scale_above_one_means_the_whole_frame_as_in_the_authors_code():
    """torchvision's RandomResizedCrop (MSAF RAVDESS, scale=(0.8, 1.4)): a draw larger than the frame is rejected;
    after 10 rejections the crop is the centred box of the frame with the aspect ratio clamped into `ratio`."""
    x = clip(h=24, w=24)
    for seed in range(5):
        torch.testing.assert_close(RandomResizedCrop(24, scale=(1.1, 1.4))(x, gen(seed)), x)
    assert random_resized_crop_box(100, 300, (1.2, 1.4), (3 / 4, 4 / 3), gen(0)) == (0, 83, 100, 133)
    assert random_resized_crop_box(300, 100, (1.2, 1.4), (3 / 4, 4 / 3), gen(0)) == (83, 0, 133, 100)
    boxes = [random_resized_crop_box(224, 224, (0.8, 1.4), (3 / 4, 4 / 3), gen(s)) for s in range(300)]
    whole = sum(box == (0, 0, 224, 224) for box in boxes)
    assert 0 < whole < 300  # some draws fall back to the whole frame, the others crop
    for top, left, h, w in boxes:
        assert top >= 0 and left >= 0 and top + h <= 224 and left + w <= 224
        assert h * w >= 0.79 * 224 * 224  # never below the lower scale (up to rounding), never zoomed out


def test_normalize_with_given_values_per_feature():
    x = torch.arange(12.0).view(3, 4)  # 3 features (MFCC-like: features × time)
    out = Normalize(mean=[1.0, 5.0, 9.0], std=[2.0, 2.0, 2.0], axis=0)(x, gen(0))
    torch.testing.assert_close(out[:, 1], torch.zeros(3))
    torch.testing.assert_close(out[0], (torch.arange(4.0) - 1) / 2)


def test_unknown_transform_name_or_parameter_is_one_line():
    message = one_line_error({"train": {"video": [{"name": "nope"}]}})
    assert "data.transforms.train.video[0]" in message and "'nope'" in message and "random_resized_crop" in message
    message = one_line_error({"train": {"video": [{"name": "hflip", "prob": 0.5}]}})
    assert "prob" in message and "parameters: p, per_frame" in message
    message = one_line_error({"train": {"video": [{"name": "random_resized_crop", "size": 8, "scale": [1.4, 0.8]}]}})
    assert "scale must be [min, max]" in message
    assert "unknown key" in one_line_error({"training": {}})
    assert "cannot import" in one_line_error({"train": {"video": [{"_target_": "repro.data.transforms.Nope"}]}})


def test_a_target_names_a_transform_class():
    parsed = parse_transforms({"train": {"video": [{"_target_": "repro.data.transforms.HorizontalFlip", "p": 1.0}]}})
    x = clip()
    assert torch.equal(parsed["train"]["video"](x, gen(0)), x.flip(-1))


# ---- through the datamodule (SYNTHETIC AV-MNIST) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def avmnist(tmp_path_factory):
    """A SYNTHETIC AV-MNIST folder: 40 train (30 train + 10 val) and 20 test samples."""
    return write_avmnist(tmp_path_factory.mktemp("data") / "avmnist", n_train=40, n_test=20)


def datamodule(root, transforms=None, **kwargs) -> MultimodalDataModule:
    return MultimodalDataModule(AVMNISTReader(root, val_size=10), batch_size=8, transforms=transforms, **kwargs)


def stacked(dataset, modality: str) -> torch.Tensor:
    return torch.stack([dataset[i][modality] for i in range(len(dataset))])


def test_no_transforms_leaves_the_datamodule_as_it_was(avmnist):
    for transforms in (None, {}, {"train": {}, "eval": {}}):
        dm = datamodule(avmnist, transforms)
        assert all(dm.dataset(split) is dm.splits[split] for split in ("train", "val", "test"))


def test_train_transforms_on_train_only_and_eval_transforms_on_val_and_test(avmnist):
    norm = {"name": "normalize", "axis": 1}  # per frequency row of the (1, 112, 112) spectrograms
    dm = datamodule(avmnist, {"train": {"audio": [norm, {"name": "hflip", "p": 1.0}]}, "eval": {"audio": [norm]}})
    dm.setup()
    raw_train = stacked(dm.splits["train"], "audio").double()
    mean, std = raw_train.mean(dim=(0, 1, 3), keepdim=True)[0], raw_train.std(dim=(0, 1, 3), keepdim=True,
                                                                                correction=0)[0]
    train = stacked(dm.dataset("train"), "audio")
    torch.testing.assert_close(train, ((raw_train - mean) / std).flip(-1).float(), atol=1e-4, rtol=1e-4)
    # mean ≈ 0, std ≈ 1 per feature on the train split
    torch.testing.assert_close(train.double().mean(dim=(0, 1, 3)), torch.zeros(112, dtype=torch.float64), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(train.double().std(dim=(0, 1, 3), correction=0), torch.ones(112, dtype=torch.float64),
                               atol=1e-4, rtol=0)
    for split in ("val", "test"):  # train statistics, no flip
        raw = stacked(dm.splits[split], "audio").double()
        torch.testing.assert_close(stacked(dm.dataset(split), "audio"), ((raw - mean) / std).float(), atol=1e-4,
                                   rtol=1e-4)
    batch = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(batch["audio"], stacked(dm.dataset("val"), "audio")[:8])
    torch.testing.assert_close(batch["image"], stacked(dm.splits["val"], "image")[:8])  # untouched modality


def test_unknown_modality_is_one_line(avmnist):
    dm = datamodule(avmnist, {"train": {"video": [{"name": "hflip"}]}})
    with pytest.raises(TransformError) as err:
        dm.setup()
    message = str(err.value)
    assert "\n" not in message and "data.transforms.train.video" in message and "audio, image" in message


def train_epoch(root, seed: int, num_workers: int) -> torch.Tensor:
    L.seed_everything(seed, workers=True, verbose=False)
    transforms = {"train": {"audio": [{"name": "random_resized_crop", "size": 112, "scale": [0.3, 1.0]},
                                      {"name": "hflip"}]}}
    dm = MultimodalDataModule(AVMNISTReader(root, val_size=10), batch_size=8, num_workers=num_workers,
                              transforms=transforms)
    return torch.cat([b["audio"] for b in dm.train_dataloader()])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_batches_are_reproducible_under_a_seed(avmnist, num_workers):
    first = train_epoch(avmnist, 0, num_workers)
    assert torch.equal(first, train_epoch(avmnist, 0, num_workers))
    assert not torch.equal(first, train_epoch(avmnist, 1, num_workers))


def test_each_worker_draws_its_own_augmentations():
    """4 identical samples, 2 workers, batches of 1: samples 0 and 1 are read by different workers."""
    picture = torch.arange(3 * 16 * 16, dtype=torch.float32).view(1, 3, 16, 16).numpy()
    same = ArrayDataset({"video": np.repeat(picture, 4, axis=0)}, np.zeros(4, dtype=np.int64))
    pipeline = parse_transforms({"train": {"video": [{"name": "random_resized_crop", "size": 8}]}})["train"]
    loader = DataLoader(TransformedDataset(same, pipeline, seed=0), batch_size=1, num_workers=2)
    torch.manual_seed(0)
    out = [b["video"][0] for b in loader]
    assert not torch.equal(out[0], out[1])  # worker 0 vs worker 1
    torch.manual_seed(0)
    assert all(torch.equal(a, b["video"][0]) for a, b in zip(out, loader, strict=True))


def test_without_workers_the_draws_ignore_the_global_rng(avmnist):
    transforms = {"train": {"audio": [{"name": "random_resized_crop", "size": 112, "scale": [0.3, 1.0]}]}}
    first = stacked(datamodule(avmnist, transforms, transform_seed=3).dataset("train"), "audio")
    torch.rand(1000)  # e.g. the model's initialisation and dropout drawing from the global RNG in between
    assert torch.equal(first, stacked(datamodule(avmnist, transforms, transform_seed=3).dataset("train"), "audio"))
    assert not torch.equal(first, stacked(datamodule(avmnist, transforms, transform_seed=4).dataset("train"), "audio"))


def test_the_example_experiment_composes_and_builds(tmp_path):
    cfg = compose_train(["experiment=avdigits_transforms"], tmp_path)
    from repro.train import build_datamodule

    dm = build_datamodule(cfg)  # what train.py builds: the config's transforms reach the datamodule
    assert set(dm.transforms["train"]) == {"image", "audio"} and set(dm.transforms["eval"]) == {"audio"}
    dm.setup()
    assert dm.dataset("test")[0]["audio"].shape == (1, 112, 112)
