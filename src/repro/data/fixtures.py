"""Fixture writers: tiny SYNTHETIC datasets in each reader's exact on-disk format, for tests and `SMOKE=1`.

Nothing written here is real data and no number computed on it is a reproduction. Each writer creates
the same file names, keys, shapes and dtypes as the real release, with class-dependent patterns so that a
model can learn something in a few steps (which lets tests check that training actually moves).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repro.data.avmnist import LAYOUT_IMAGE_DIR

SYNTHETIC_NOTE = "SYNTHETIC fixture data written by repro.data.fixtures - not a real dataset"


def _class_patterns(rng: np.random.Generator, num_classes: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0, 255, size=(num_classes, *shape))


def _noisy(rng, patterns, labels, noise: float) -> np.ndarray:
    x = patterns[labels] + rng.normal(0, noise, size=(len(labels), *patterns.shape[1:]))
    return np.clip(x, 0, 255).astype(np.uint8)


def write_avmnist(
    root: str | Path, layout: str = "multibench", n_train: int = 80, n_test: int = 40, seed: int = 0,
    num_classes: int = 10, noise: float = 90.0,
) -> Path:
    """Write a tiny AV-MNIST in the MultiBench (`image/`) or MFAS (`images/`) layout. Returns `root`."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    image_patterns = _class_patterns(rng, num_classes, (784,))
    audio_patterns = _class_patterns(rng, num_classes, (112, 112))
    (root / LAYOUT_IMAGE_DIR[layout]).mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        # The real release stores float arrays in 0..255; mimic that dtype.
        np.save(root / LAYOUT_IMAGE_DIR[layout] / f"{split}_data.npy",
                _noisy(rng, image_patterns, labels, noise).astype(np.float32))
        np.save(root / "audio" / f"{split}_data.npy", _noisy(rng, audio_patterns, labels, noise).astype(np.float32))
        np.save(root / f"{split}_labels.npy", labels.astype(np.int64))
    (root / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return root


def write_folds(root: str | Path, n_groups: int = 6, per_group: int = 12, num_classes: int = 4, seed: int = 0) -> Path:
    """Write the SYNTHETIC grouped dataset read by `repro.data.synthetic.GroupFoldReader`.

    Layout: ``image.npy`` (N,1,28,28) uint8, ``audio.npy`` (N,1,112,112) uint8 (both class patterns plus
    noise), ``label.npy`` (N,), ``group.npy`` (N,) the group (think: actor) of each sample.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(per_group) % num_classes, n_groups)
    groups = np.repeat(np.arange(n_groups), per_group)
    np.save(root / "image.npy", _noisy(rng, _class_patterns(rng, num_classes, (1, 28, 28)), labels, 90.0))
    np.save(root / "audio.npy", _noisy(rng, _class_patterns(rng, num_classes, (1, 112, 112)), labels, 90.0))
    np.save(root / "label.npy", labels.astype(np.int64))
    np.save(root / "group.npy", groups.astype(np.int64))
    (root / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return root
