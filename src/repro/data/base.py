"""Reader contract, the in-memory array dataset, and the input checks every reader uses.

Readers hold arrays (memory-mapped where the format allows: `load_npy`; never copied whole: `subset` slices)
and hand them to `ArrayDataset`, which converts one sample at a
time to float tensors with a per-modality affine scaling (`(x - shift) / scale`), so uint8 data stays uint8
in memory. Array-likes that are not numpy arrays work too (e.g. `repro.data.mmimdb.H5Rows`, a lazy
per-row view of an HDF5 dataset): the dataset only needs `len(a)`, `a[i]` for one sample, and `a[index]`
returning another array-like (which is how `subset` stays a view). Multilabel datasets pass
`label_dtype=torch.float32` so a multi-hot label row is not truncated to integers.
Bad input raises `DataError`: one line naming the file, what was expected and the fix.
"""

from __future__ import annotations

import mmap
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A dataset on disk is missing or malformed. The message is one line: file, expectation, fix."""


@dataclass(frozen=True)
class Scaling:
    """Affine value scaling `(x - shift) / scale` applied when a sample is read.

    `shift` and `scale` are scalars, or tuples with one value per channel (the first axis of a sample),
    e.g. ImageNet mean/std normalisation of 0..255 pixels: shift = 255·mean, scale = 255·std.
    """

    shift: float | tuple[float, ...] = 0.0
    scale: float | tuple[float, ...] = 1.0

    def is_identity(self) -> bool:
        return bool(np.all(np.asarray(self.shift) == 0.0) and np.all(np.asarray(self.scale) == 1.0))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_identity():
            return x
        return (x - self._operand(self.shift, x)) / self._operand(self.scale, x)

    @staticmethod
    def _operand(v, x: torch.Tensor):
        if np.ndim(v) == 0:
            return float(v)  # scalars stay Python floats (the behaviour before per-channel values existed)
        # per-channel: one value per entry of the sample's first axis, broadcast over the rest
        return torch.as_tensor(v, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


class ArrayDataset(Dataset):
    """Samples from aligned arrays: `arrays[modality][i]`, `labels[i]`, `ids[i]`."""

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        labels: np.ndarray,
        ids: np.ndarray | None = None,
        scaling: Mapping[str, Scaling] | None = None,
        shapes: Mapping[str, tuple[int, ...]] | None = None,
        label_dtype: torch.dtype = torch.long,
    ):
        n = len(labels)
        for m, a in arrays.items():
            if len(a) != n:
                raise DataError(f"modality {m!r} has {len(a)} samples but there are {n} labels")
        self.arrays = dict(arrays)
        self.labels = labels
        self.ids = ids if ids is not None else np.arange(n)
        self.scaling = dict(scaling or {})
        self.shapes = dict(shapes or {})
        # long = class indices (cross-entropy); float32 = multi-hot rows (multilabel BCE).
        self.label_dtype = label_dtype

    # A memory-map's pages count in the process's resident set once read, so one pass over AV-MNIST's spectrograms
    # would make the whole 3 GB file resident. Every this many samples read, the mapped pages are handed back to
    # the kernel (they stay in the page cache: re-reading costs no disk access), which bounds the RSS to the
    # pages of the last few thousand samples.
    release_every = 4096

    def __len__(self) -> int:
        return len(self.labels)

    def release_pages(self) -> None:
        """Drop the resident pages of every memory-mapped array (`madvise(MADV_DONTNEED)`; Linux)."""
        for a in self.arrays.values():
            mapping = getattr(a, "_mmap", None)  # np.memmap's mmap object, shared by its slices (views)
            if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                mapping.madvise(mmap.MADV_DONTNEED)

    def _tensor(self, m: str, i: int) -> torch.Tensor:
        x = torch.from_numpy(np.array(self.arrays[m][i], dtype=np.float32))  # copy: memmaps are read-only
        if m in self.shapes:
            x = x.reshape(self.shapes[m])
        s = self.scaling.get(m)
        if s is not None:
            x = s.apply(x)
        return x

    def __getitem__(self, i: int) -> dict:
        self._reads = getattr(self, "_reads", 0) + 1
        if self._reads % self.release_every == 0:
            self.release_pages()
        sample = {m: self._tensor(m, i) for m in self.arrays}
        sample["label"] = torch.as_tensor(self.labels[i]).to(self.label_dtype)
        sample["id"] = str(self.ids[i])
        return sample

    def subset(self, index: np.ndarray) -> ArrayDataset:
        """A view on the given sample indices (used for index-range splits and folds).

        A contiguous ascending range of a numpy array (a memory-map included) is taken as a slice, which numpy
        returns as a view: fancy indexing would copy it (AV-MNIST's 55k train spectrograms are 2.8 GB)."""
        rows = contiguous_slice(index)
        return ArrayDataset(
            {m: a[rows] if rows is not None and isinstance(a, np.ndarray) else a[index]
             for m, a in self.arrays.items()},
            self.labels[index],
            self.ids[index],
            self.scaling,
            self.shapes,
            self.label_dtype,
        )


def contiguous_slice(index) -> slice | None:
    """`slice(a, b)` when `index` is the integer range a, a+1, ..., b-1 (non-empty), else None."""
    index = np.asarray(index)
    if index.ndim != 1 or index.dtype.kind not in "iu" or index.size == 0:
        return None
    first = int(index[0])
    if not np.array_equal(index, np.arange(first, first + index.size)):
        return None
    return slice(first, first + index.size)


class Reader:
    """One on-disk format. Subclasses implement `load(fold)`.

    `num_folds` > 0 means the reader defines cross-validation folds and `fold` must be in
    [0, num_folds); 0 means fixed splits and `fold` must be None.
    `synthetic` is True once `load` has read SYNTHETIC fixture data (each reader knows its fixture's mark:
    a `SYNTHETIC.txt` beside the files, a `SYNTHETIC` key, an hdf5 attribute); it goes into every results record.
    """

    name: str = "reader"
    num_folds: int = 0
    # The modalities the model reads (set by the datamodule before `load`; None = all). A reader that can skip a
    # modality's files honours it (AV-MNIST: an image-only run never opens the 3 GB of spectrograms); the others
    # load everything as before.
    modalities: tuple[str, ...] | None = None
    prepare_hint: str = "see the README section 'Datasets'"
    synthetic: bool = False

    # What the dataset registry (`repro.data.registry`) and `python -m repro.data` tell a user about the format.
    data_format: str = ""  # the on-disk layout, one line
    synthetic_mark: str = "a SYNTHETIC.txt file in the dataset folder"  # how `load` sets `synthetic`
    path_key: str = "data.reader.root"  # the config key that points the reader at its folder
    # The key the user actually set to point at the folder (`path_key` or `paths.data_dir`), told by the layer that
    # sees the command line (`folder_key_from_overrides`); the errors' fixes name it. None: neither was set.
    folder_key: str | None = None
    # Reader arguments that select a variant of the format (MulT's `dataset`, `aligned`): the registry passes their
    # values in a data config to `write_fixture`, so each data config gets the fixture of its variant.
    fixture_options: tuple[str, ...] = ()
    # Overrides every run on this reader's SYNTHETIC fixture needs (tables' SMOKE mode adds them), e.g.
    # `data.check_steps=false` where the fixture's sequences are shorter than the release's.
    fixture_overrides: tuple[str, ...] = ()
    # What else a run on the fixture needs: its split sizes where the data config's defaults need the full release,
    # a fold where the reader defines folds (a table's `smoke` section sets its own; `python -m repro.data fixture`
    # prints them in the commands it suggests).
    fixture_run_overrides: tuple[str, ...] = ()

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        """Write this format's SYNTHETIC fixture into `folder` (the folder `path_key` names); returns it.

        `options` are the reader arguments that select a variant of the format (e.g. MulT's dataset / aligned).
        """
        raise NotImplementedError(f"{cls.__name__} declares no SYNTHETIC fixture writer")

    def load(self, fold: int | None = None) -> dict[str, ArrayDataset]:  # pragma: no cover - abstract
        raise NotImplementedError

    def point_at(self, folder: Path, what: str) -> str:
        """The fix for a folder that is not there: set the key the user set (or either way to point at it)."""
        data_dir_way = f"paths.data_dir=<the folder holding {folder.name}/>"
        own_way = f"{self.path_key}=<{what}>"
        if self.folder_key == "paths.data_dir":
            return f"your paths.data_dir has no {folder.name}/: set {data_dir_way} (or {own_way})"
        if self.folder_key == self.path_key:
            return f"your {self.path_key} is not that folder: set {own_way}"
        return f"set {data_dir_way} or {own_way}"

    def reads(self, modality: str) -> bool:
        """Whether `load` should read `modality` (every modality unless `modalities` restricts them)."""
        return self.modalities is None or modality in self.modalities

    def check_fold(self, fold: int | None) -> None:
        if self.num_folds == 0 and fold is not None:
            raise DataError(f"{self.name} has fixed splits and no folds; drop `fold={fold}` (use fold=null)")
        if self.num_folds > 0 and (fold is None or not 0 <= int(fold) < self.num_folds):
            raise DataError(
                f"{self.name} defines {self.num_folds} cross-validation folds; set fold=<0..{self.num_folds - 1}>"
            )


def has_synthetic_mark(folder: Path) -> bool:
    """The fixture writers leave a `SYNTHETIC.txt` in the dataset folder (`repro.data.fixtures`)."""
    return (Path(folder) / "SYNTHETIC.txt").is_file()


def folder_key_from_overrides(overrides, path_key: str) -> str | None:
    """Which key a command line used to point at the data: the reader's own `path_key` (wins: it is the more
    specific), else `paths.data_dir`, else None (the configs' default folder, `REPRO_DATA_DIR` or ./data)."""
    keys = {str(o).lstrip("+~").split("=", 1)[0] for o in overrides or ()}
    if path_key in keys:
        return path_key
    return "paths.data_dir" if "paths.data_dir" in keys else None


def require_file(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise DataError(f"missing file {path}: expected it to exist; fix: {hint}")
    return path


def load_npy(path: Path, hint: str, mmap: bool = True) -> np.ndarray:
    require_file(path, hint)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:  # a cut-short copy: the header promises more bytes than it has
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"cannot read {path} as a .npy array ({reason}): the file is truncated or not a .npy; fix: "
                        f"copy it again from the release (compare its size with the original); {hint}") from None


def check_array(
    arr: np.ndarray,
    path: Path | str,
    shape: tuple[int | None, ...],
    hint: str,
    kinds: str = "uifb",
) -> np.ndarray:
    """Check rank, the fixed dimensions (None = any) and the dtype kind of an array read from `path`."""
    want = "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"
    if arr.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape, arr.shape)):
        raise DataError(f"{path} has shape {tuple(arr.shape)}, expected {want}; fix: {hint}")
    if arr.dtype.kind not in kinds:
        raise DataError(f"{path} has dtype {arr.dtype}, expected a numeric array; fix: {hint}")
    return arr


def check_labels(labels: np.ndarray, path: Path | str, num_classes: int, hint: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        if labels.ndim == 1 and labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise DataError(f"{path} must hold integer class labels of shape (N,), got {labels.dtype} "
                            f"{labels.shape}; fix: {hint}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{path} has labels in [{labels.min()}, {labels.max()}], expected 0..{num_classes - 1}; fix: {hint}"
        )
    return labels.astype(np.int64)


def report_failures(failures: list[tuple[str, str]], what: str) -> int:
    """The preparation scripts' closing lines on stderr: each failed item with its reason; exit status 1 if any.

    One function so that `scripts/prepare_*.py` report failures alike (the rest of the items are prepared)."""
    if not failures:
        return 0
    print(f"{len(failures)} {what}(s) could not be prepared (the others are; fix these and run again):",
          file=sys.stderr)
    for name, reason in failures:
        print(f"  {name}: {reason}", file=sys.stderr)
    return 1
