"""AV-MNIST reader (MFAS §4.1, Table 1-2) in both released layouts, and the embedded AV-Digits set.

On-disk layouts (IMPLEMENTATION-NOTES §3.4; PEERS.md, MultiBench):
- ``multibench``: ``image/{train,test}_data.npy`` (N,784), ``audio/{train,test}_data.npy`` (N,112,112),
  ``{train,test}_labels.npy`` (N,). Validation = the last ``val_size`` (5000) training samples.
- ``mfas``: the same files under ``images/`` (plural). MFAS's search split: train = training indices
  [0, 50000), dev = [50000, 55000); test = the test files.
``layout: auto`` picks whichever folder exists.

Value scaling, as each source does it:
- ``multibench`` (default): both modalities divided by 255 (``datasets/avmnist/get_data.py``).
- ``mfas`` (QUIRK): the authors' loader normalises the *raw* 0..255 image values with MNIST's 0..1
  statistics, ``(x - 0.1307) / 0.3081``, and leaves the spectrogram un-normalised.

The embedded AV-Digits set (``repro.data.avdigits``) holds arrays with the same shapes and 0..255 value
range, and is served through the same dataset class with the same scaling rules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repro.data.base import (
    ArrayDataset,
    DataError,
    Reader,
    Scaling,
    check_array,
    check_labels,
    has_synthetic_mark,
    load_npy,
)

SHAPES = {"image": (1, 28, 28), "audio": (1, 112, 112)}
RAW_SHAPES = {"image": (784,), "audio": (112, 112)}  # per sample, as the .npy files store them
SCALINGS = {
    "multibench": {"image": Scaling(0.0, 255.0), "audio": Scaling(0.0, 255.0)},
    "mfas": {"image": Scaling(0.1307, 0.3081), "audio": Scaling(0.0, 1.0)},
}
LAYOUT_IMAGE_DIR = {"multibench": "image", "mfas": "images"}
PREPARE_HINT = "download AV-MNIST (README, 'Datasets: AV-MNIST')"


def scaling_for(name: str) -> dict[str, Scaling]:
    if name not in SCALINGS:
        raise DataError(f"unknown AV-MNIST scaling {name!r}; choose one of {sorted(SCALINGS)}")
    return SCALINGS[name]


class AVMNISTReader(Reader):
    """Reads a real AV-MNIST release from ``root``."""

    name = "avmnist"
    prepare_hint = PREPARE_HINT
    data_format = ("image/{train,test}_data.npy (N,784) [MFAS: images/], audio/{train,test}_data.npy (N,112,112), "
                   "{train,test}_labels.npy (N,): MultiBench's AV-MNIST .npy release")
    fixture_run_overrides = ("data.reader.val_size=20",)  # the fixture has 80 training samples, not 60,000

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures import write_avmnist

        return write_avmnist(folder, **options)

    def __init__(
        self,
        root: str | Path,
        layout: str = "auto",
        split_scheme: str = "auto",
        scaling: str = "multibench",
        val_size: int = 5000,
        search_train_end: int = 50000,
        search_val_end: int = 55000,
        num_classes: int = 10,
    ):
        self.root = Path(root)
        self.layout = layout
        self.split_scheme = split_scheme
        self.scaling = scaling_for(scaling)
        self.val_size = val_size
        self.search_train_end = search_train_end
        self.search_val_end = search_val_end
        self.num_classes = num_classes

    def resolve_layout(self) -> str:
        if not self.root.is_dir():
            raise DataError(f"AV-MNIST folder {self.root} does not exist; fix: "
                            f"{self.point_at(self.root, 'the AV-MNIST folder')}, or {PREPARE_HINT}")
        if self.layout != "auto":
            if self.layout not in LAYOUT_IMAGE_DIR:
                raise DataError(f"unknown AV-MNIST layout {self.layout!r}; choose auto, multibench or mfas")
            return self.layout
        for layout, folder in LAYOUT_IMAGE_DIR.items():
            if (self.root / folder).is_dir():
                return layout
        raise DataError(
            f"{self.root} has neither image/ (MultiBench layout) nor images/ (MFAS layout); fix: "
            f"{self.point_at(self.root, 'the folder holding image/ or images/, audio/ and the labels')}"
        )

    def _read_split(self, layout: str, split: str) -> ArrayDataset:
        """The split's arrays, memory-mapped (float32 in the release; `ArrayDataset` converts one sample at a time),
        only for the modalities the model reads (`Reader.modalities`)."""
        paths = {"image": self.root / LAYOUT_IMAGE_DIR[layout] / f"{split}_data.npy",
                 "audio": self.root / "audio" / f"{split}_data.npy"}
        arrays = {m: check_array(load_npy(path, PREPARE_HINT), path, (None, *RAW_SHAPES[m]), PREPARE_HINT)
                  for m, path in paths.items() if self.reads(m)}
        label_path = self.root / f"{split}_labels.npy"
        labels = check_labels(load_npy(label_path, PREPARE_HINT, mmap=False), label_path, self.num_classes,
                              PREPARE_HINT)
        counts = {m: len(a) for m, a in arrays.items()}
        if any(n != len(labels) for n in counts.values()):
            held = ", ".join(f"{n} {m} samples ({paths[m]})" for m, n in counts.items())
            raise DataError(
                f"{self.root}: {split} split has {held} but {len(labels)} labels ({label_path}); expected equal "
                f"counts; fix: the files come from different releases or one was cut short: copy all of them from "
                f"one download of {split} (image, audio and labels)"
            )
        ids = np.array([f"{split}{i}" for i in range(len(labels))])
        return ArrayDataset(arrays, labels, ids, self.scaling, SHAPES)

    def load(self, fold: int | None = None) -> dict[str, ArrayDataset]:
        self.check_fold(fold)
        layout = self.resolve_layout()
        self.synthetic = has_synthetic_mark(self.root)  # repro.data.fixtures.write_avmnist leaves it
        scheme = self.split_scheme if self.split_scheme != "auto" else (
            "mfas_search" if layout == "mfas" else "multibench"
        )
        train_all = self._read_split(layout, "train")
        test = self._read_split(layout, "test")
        n = len(train_all)
        if scheme == "multibench":
            if not 0 < self.val_size < n:
                raise DataError(f"{self.root}: val_size={self.val_size} must be in (0, {n}) for {n} training samples")
            train_idx, val_idx = np.arange(n - self.val_size), np.arange(n - self.val_size, n)
        elif scheme == "mfas_search":
            if not 0 < self.search_train_end < self.search_val_end <= n:
                raise DataError(
                    f"{self.root}: MFAS search split needs 0 < {self.search_train_end} < {self.search_val_end} "
                    f"<= {n} training samples; set data.reader.search_train_end/search_val_end"
                )
            train_idx = np.arange(self.search_train_end)
            val_idx = np.arange(self.search_train_end, self.search_val_end)
        else:
            raise DataError(f"unknown AV-MNIST split scheme {scheme!r}; choose auto, multibench or mfas_search")
        return {"train": train_all.subset(train_idx), "val": train_all.subset(val_idx), "test": test}


class AVDigitsReader(Reader):
    """The embedded AV-Digits set (real MNIST digits + real and synthetic spoken digits; see its README)."""

    name = "avdigits"
    prepare_hint = "reinstall the package or rebuild with `python scripts/make_avdigits.py`"
    data_format = ("avdigits.npz (PCA image coefficients, mu-law utterances and noise, per-sample mixing) + "
                   "manifest.json (sha256 of each file): scripts/make_avdigits.py's folder; null = the embedded set")
    synthetic_mark = "a SYNTHETIC.txt file in data.reader.data_dir (the embedded set is real data)"
    path_key = "data.reader.data_dir"

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        """A tiny SYNTHETIC variant in make_avdigits.py's format. The embedded set itself needs no fixture (it
        ships with the package); this one lets a user try the path of a locally built variant (`avdigits_full`,
        19 MB to build) and checks the folder-reading code without the sources."""
        from repro.data.fixtures import write_avdigits

        return write_avdigits(folder, **options)

    def __init__(self, scaling: str = "multibench", cache_dir: str | Path | None = None,
                 data_dir: str | Path | None = None):
        self.scaling = scaling_for(scaling)
        self.cache_dir = cache_dir
        # None = the embedded set; else a folder built by scripts/make_avdigits.py (e.g. the 55k/5k/10k variant).
        self.data_dir = data_dir

    def load(self, fold: int | None = None) -> dict[str, ArrayDataset]:
        from repro.data.avdigits import load_avdigits

        self.check_fold(fold)
        try:
            splits = load_avdigits(cache_dir=self.cache_dir, data_dir=self.data_dir)
        except (FileNotFoundError, ValueError) as err:  # load_avdigits' one-line messages: a user error here
            raise DataError(str(err)) from None
        self.synthetic = self.data_dir is not None and has_synthetic_mark(Path(self.data_dir))
        out = {}
        for split in ("train", "val", "test"):
            s = splits[split]
            ids = np.array([f"{split}{i}" for i in range(len(s["label"]))])
            out[split] = ArrayDataset(
                {m: s[m] for m in ("image", "audio") if self.reads(m)}, np.asarray(s["label"], dtype=np.int64), ids,
                self.scaling, SHAPES,
            )
        return out
