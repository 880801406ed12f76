"""A SYNTHETIC grouped dataset with leave-groups-out cross-validation folds.

It exists to exercise fold handling end to end (`fold=<k>` → reader-defined splits → `fold` in the results
record) before the real fold-based readers (RAVDESS actor folds) arrive. The split rule mirrors MSAF's
RAVDESS protocol: groups sorted, fold k tests on groups [k·g, (k+1)·g), trains on the rest, and — like
MSAF, which has no separate validation set — validates on the test fold unless `val_groups` > 0, in which
case the next groups (cyclically) are held out for validation instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repro.data.base import ArrayDataset, DataError, Reader, Scaling, check_labels, load_npy

HINT = "write it with `python -m repro.data fixture data=synthetic_folds out=<root>` (SYNTHETIC test data)"


class GroupFoldReader(Reader):
    name = "synthetic_folds"
    prepare_hint = HINT
    synthetic = True  # this format exists only as a fixture
    data_format = ("image.npy (N,1,28,28), audio.npy (N,1,112,112) uint8, label.npy (N,), group.npy (N,): "
                   "SYNTHETIC grouped samples, folds = groups left out")
    synthetic_mark = "always (the format exists only as a fixture)"
    fixture_run_overrides = ("fold=0",)  # a run trains on one fold

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures import write_folds

        return write_folds(folder, **options)

    def __init__(self, root: str | Path, groups_per_fold: int = 2, val_groups: int = 0, num_classes: int = 4):
        self.root = Path(root)
        self.groups_per_fold = groups_per_fold
        self.val_groups = val_groups
        self.num_classes = num_classes
        self._groups = None

    def _load_groups(self) -> np.ndarray:
        if self._groups is None:
            self._groups = load_npy(self.root / "group.npy", HINT, mmap=False)
        return self._groups

    @property
    def num_folds(self) -> int:  # type: ignore[override]
        if not (self.root / "group.npy").is_file():
            return 1  # unknown until the data exists; load() reports the missing file
        n_groups = len(np.unique(self._load_groups()))
        if n_groups % self.groups_per_fold:
            raise DataError(f"{self.root}: {n_groups} groups do not split into folds of {self.groups_per_fold}")
        return n_groups // self.groups_per_fold

    def load(self, fold: int | None = None) -> dict[str, ArrayDataset]:
        if not self.root.is_dir():
            raise DataError(f"dataset folder {self.root} does not exist; fix: {HINT}")
        self.check_fold(fold)
        groups = self._load_groups()
        order = np.unique(groups)
        k, g = int(fold), self.groups_per_fold
        test_groups = order[k * g:(k + 1) * g]
        val_groups = test_groups
        if self.val_groups:
            val_groups = np.roll(order, -(k + 1) * g)[: self.val_groups]
        labels = check_labels(load_npy(self.root / "label.npy", HINT, mmap=False), self.root / "label.npy",
                              self.num_classes, HINT)
        full = ArrayDataset(
            {"image": load_npy(self.root / "image.npy", HINT), "audio": load_npy(self.root / "audio.npy", HINT)},
            labels,
            np.array([f"g{gr}_{i}" for i, gr in enumerate(groups)]),
            {"image": Scaling(0, 255), "audio": Scaling(0, 255)},
        )
        in_test = np.isin(groups, test_groups)
        in_val = np.isin(groups, val_groups)
        train_idx = np.flatnonzero(~in_test & ~in_val)
        return {
            "train": full.subset(train_idx),
            "val": full.subset(np.flatnonzero(in_val)),
            "test": full.subset(np.flatnonzero(in_test)),
        }
