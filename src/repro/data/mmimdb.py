"""MM-IMDB reader (MFAS §4.2, Table 3) for Arevalo et al.'s ``multimodal_imdb.hdf5``.

Source: J. Arevalo, T. Solorio, M. Montes-y-Gómez, F. A. González, "Gated Multimodal Units for Information
Fusion", ICLR workshop 2017; the file is built by ``make_dataset.py`` of johnarevalo/gmu-mmimdb and is the
one MultiBench (``datasets/imdb/get_data.py``) and, through per-sample copies, MFAS read
(IMPLEMENTATION-NOTES §3.5). 25,959 movies, 23 genres, multilabel.

On-disk layout (one HDF5 file, rows in split order train, dev, test):

==================  =====================  ===============================================================
dataset             shape, dtype           content
==================  =====================  ===============================================================
``features``        (N, 300) float32       mean word2vec (GoogleNews) vector of the normalised plot words
``vgg_features``    (N, 4096) float32      VGG-16 fc7 activations of the poster
``images``          (N, 3, 256, 160) int32 poster, RGB 0..255, centre-cropped to 160:256 and resized
``genres``          (N, 23) int32          multi-hot; attribute ``target_names`` (JSON list of 23 names)
``imdb_ids``        (N,) S7                IMDb id without the ``tt`` prefix
==================  =====================  ===============================================================

The real file also holds ``sequences``, ``three_grams`` and ``word_grams``, which no model here uses, so
they are not required. Splits are index ranges (MultiBench's, the sizes MFAS's loader hard-codes):
train [0, 15552), val (Arevalo's "dev") [15552, 18160), test [18160, 25959); ``train_end``/``val_end``/
``test_end`` make them configurable so that a smaller file (the SYNTHETIC fixture, a ``--limit`` build)
can be read.

Modalities: ``text`` = ``features`` (300,); ``image`` = ``images`` (3, 256, 160) divided by 255 and
normalised with ImageNet mean/std (the VGG-19 image encoder of MFAS is ImageNet-pretrained), or
``vgg_features`` (4096,) with ``image_source: vgg_features`` (GMU's and MultiBench's setting). Labels are
float32 multi-hot rows (23,).

The ``images`` dataset is ~12.7 GB, so it is never read whole: ``H5Rows`` is a per-row view that opens
the file on first access in each process (DataLoader workers fork; HDF5 handles must not cross a fork)
and stays a view under ``ArrayDataset.subset``. The small arrays (text, labels, ids: ~35 MB) are read
into memory once.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from repro.data.base import ArrayDataset, DataError, Reader, Scaling, check_array, require_file

log = logging.getLogger(__name__)

FILENAME = "multimodal_imdb.hdf5"
TEXT_DIM = 300
VGG_DIM = 4096
IMAGE_SHAPE = (3, 256, 160)
# Arevalo's 23 genres, most frequent first (make_dataset.py keeps the n_classes most common genres in
# Counter order; the list is the `target_names` attribute of the released file).
GENRES = (
    "Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror", "Documentary",
    "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History", "Music", "Animation",
    "Musical", "Western", "Sport", "Short", "Film-Noir",
)
NUM_CLASSES = len(GENRES)
SPLIT_ENDS = (15552, 18160, 25959)  # train_end, val_end, test_end of the released file
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Attribute written by scripts/prepare_mmimdb.py on `vgg_features`: 0 = the rows are zeros because no
# VGG weights were given. The released file has no such attribute (its features were computed).
VGG_COMPUTED_ATTR = "computed"
# Root attribute written by the prepare script and the fixture: [train_end, val_end, test_end].
SPLIT_ENDS_ATTR = "split_ends"
IMAGE_SOURCES = ("images", "vgg_features")

DOWNLOAD_HINT = (
    "download multimodal_imdb.hdf5 (http://lisi1.unal.edu.co/mmimdb/multimodal_imdb.hdf5, see "
    "johnarevalo/gmu-mmimdb) into the folder data.reader.root, or build it from the raw release "
    "(mmimdb.tar.gz) with `python scripts/prepare_mmimdb.py --raw <mmimdb folder> --word2vec <vectors>`"
)


class H5Rows:
    """A lazy view of rows of one HDF5 dataset: ``len``, ``view[i]`` (reads one row), ``view[index]``.

    ``view[index]`` with an index array or a slice returns another view (nothing is read), so
    ``ArrayDataset.subset`` never materialises the data. The file is opened on first row access and
    re-opened when the process id changed (a forked DataLoader worker must not use its parent's HDF5
    handle). Pickling drops the handle, so the view can be sent to spawned workers too.
    """

    def __init__(self, path: str | Path, key: str, rows: np.ndarray, row_shape: tuple[int, ...], dtype):
        self.path = str(path)
        self.key = key
        self.rows = np.asarray(rows, dtype=np.int64)
        self.row_shape = tuple(int(d) for d in row_shape)
        self.dtype = np.dtype(dtype)
        self._file = None
        self._dset = None
        self._pid: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def is_open(self) -> bool:
        return self._dset is not None and self._pid == os.getpid()

    def __len__(self) -> int:
        return len(self.rows)

    def _dataset(self):
        if not self.is_open:
            import h5py

            # In a forked child the inherited handle is dropped, not used (HDF5 is not fork-safe).
            self._file = h5py.File(self.path, "r")
            self._dset = self._file[self.key]
            self._pid = os.getpid()
        return self._dset

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return self._dataset()[int(self.rows[i])]
        if isinstance(i, slice):
            return H5Rows(self.path, self.key, self.rows[i], self.row_shape, self.dtype)
        index = np.asarray(i)
        if index.dtype.kind not in "iub":
            raise TypeError(f"H5Rows index must be an int, a slice, or an integer/boolean array, got {index.dtype}")
        return H5Rows(self.path, self.key, self.rows[index], self.row_shape, self.dtype)

    def __array__(self, *args, **kwargs):
        # np.asarray(view) would read every row (12.7 GB for MM-IMDB images); refuse instead.
        raise TypeError(f"H5Rows({self.path}:{self.key}) is a lazy view; read rows one at a time")

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._dset = self._pid = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_file=None, _dset=None, _pid=None)
        return state

    def __repr__(self) -> str:
        return f"H5Rows({self.path!r}, {self.key!r}, rows={len(self)}, row_shape={self.row_shape})"


def _target_names(attr) -> list[str] | None:
    """`genres.attrs['target_names']`: a JSON string in the released file (json.dumps), or an array of names."""
    if attr is None:
        return None
    if isinstance(attr, bytes):
        attr = attr.decode()
    if isinstance(attr, str):
        try:
            return [str(n) for n in json.loads(attr)]
        except ValueError:
            return None
    return [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(attr).ravel()]


class MMIMDBReader(Reader):
    """Reads ``<root>/multimodal_imdb.hdf5``; splits train/val/test by index ranges (fixed, no folds)."""

    name = "mmimdb"
    prepare_hint = DOWNLOAD_HINT
    data_format = ("multimodal_imdb.hdf5 (Arevalo): features (N,300), images (N,3,256,160), vgg_features (N,4096), "
                   "genres (N,23) multi-hot, imdb_ids; splits by index range")
    synthetic_mark = "the hdf5 root attribute synthetic=1"
    # the fixture's 24/8/8 rows (repro.data.fixtures.MMIMDB_FIXTURE_SIZES, mmimdb_split_overrides)
    fixture_run_overrides = ("data.reader.train_end=24", "data.reader.val_end=32", "data.reader.test_end=40")

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures import write_mmimdb_hdf5

        return write_mmimdb_hdf5(folder, **options)

    def __init__(
        self,
        root: str | Path,
        filename: str = FILENAME,
        image_source: str = "images",
        image_mean: tuple[float, ...] | None = IMAGENET_MEAN,
        image_std: tuple[float, ...] | None = IMAGENET_STD,
        pixel_max: float = 255.0,
        train_end: int = SPLIT_ENDS[0],
        val_end: int = SPLIT_ENDS[1],
        test_end: int = SPLIT_ENDS[2],
        num_classes: int = NUM_CLASSES,
    ):
        if image_source not in IMAGE_SOURCES:
            raise DataError(f"unknown MM-IMDB image_source {image_source!r}; choose one of {list(IMAGE_SOURCES)}")
        self.root = Path(root)
        self.path = self.root / filename
        self.image_source = image_source
        self.image_mean = tuple(float(v) for v in image_mean) if image_mean is not None else None
        self.image_std = tuple(float(v) for v in image_std) if image_std is not None else None
        self.pixel_max = float(pixel_max)
        self.train_end, self.val_end, self.test_end = int(train_end), int(val_end), int(test_end)
        self.num_classes = int(num_classes)
        self.class_names: list[str] | None = None
        self.synthetic = False

    # -- scaling -------------------------------------------------------------------------------------
    def image_scaling(self) -> Scaling | None:
        """`(x/pixel_max - mean)/std` as one affine map of the raw pixels; None for vgg_features."""
        if self.image_source != "images":
            return None
        mean = self.image_mean or (0.0,) * IMAGE_SHAPE[0]
        std = self.image_std or (1.0,) * IMAGE_SHAPE[0]
        if len(mean) != IMAGE_SHAPE[0] or len(std) != IMAGE_SHAPE[0]:
            raise DataError(f"data.reader.image_mean/image_std need {IMAGE_SHAPE[0]} values (RGB), got {mean}, {std}")
        return Scaling(tuple(self.pixel_max * m for m in mean), tuple(self.pixel_max * s for s in std))

    # -- loading -------------------------------------------------------------------------------------
    def _open(self):
        import h5py

        require_file(self.path, DOWNLOAD_HINT)
        try:
            return h5py.File(self.path, "r")
        except OSError as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(
                f"cannot open {self.path} as an HDF5 file ({reason}): expected MM-IMDB's multimodal_imdb.hdf5; "
                f"the file is corrupt or truncated; fix: {DOWNLOAD_HINT}"
            ) from None

    def _check_ranges(self, n: int, attrs) -> None:
        if not 0 < self.train_end < self.val_end < self.test_end:
            raise DataError(
                f"MM-IMDB split ranges need 0 < train_end < val_end < test_end, got {self.train_end}, {self.val_end}, "
                f"{self.test_end}; fix: set data.reader.train_end/val_end/test_end"
            )
        if n < self.test_end:
            raise DataError(
                f"{self.path} has {n} rows but the split ranges need {self.test_end} (train [0,{self.train_end}) "
                f"val [{self.train_end},{self.val_end}) test [{self.val_end},{self.test_end})); fix: for a smaller "
                f"file set data.reader.train_end/val_end/test_end, else {DOWNLOAD_HINT}"
            )
        recorded = attrs.get(SPLIT_ENDS_ATTR)
        ours = (self.train_end, self.val_end, self.test_end)
        if recorded is not None and tuple(int(v) for v in np.ravel(recorded)) != ours:
            # Files written by prepare_mmimdb.py / the fixture record their split; a mismatch would
            # silently move movies between train, val and test.
            t, v, e = (int(x) for x in np.ravel(recorded))
            raise DataError(
                f"{self.path} records split ends {[t, v, e]} but the reader uses {list(ours)}; fix: set "
                f"data.reader.train_end={t} data.reader.val_end={v} data.reader.test_end={e}"
            )

    def load(self, fold: int | None = None) -> dict[str, ArrayDataset]:
        self.check_fold(fold)
        image_key = self.image_source
        with self._open() as f:
            present = sorted(f.keys())
            for key in ("features", "genres", "imdb_ids", image_key):
                if key not in f:
                    raise DataError(
                        f"{self.path} has no dataset {key!r} (present: {present}); expected Arevalo's "
                        f"multimodal_imdb.hdf5 layout; fix: {DOWNLOAD_HINT}"
                    )
            image_shape = IMAGE_SHAPE if image_key == "images" else (VGG_DIM,)
            expected = {
                "features": (None, TEXT_DIM),
                "genres": (None, self.num_classes),
                image_key: (None, *image_shape),
            }
            for key, shape in expected.items():
                check_array(f[key], f"{self.path}:{key}", shape, DOWNLOAD_HINT)
            ids_ds = f["imdb_ids"]
            if ids_ds.ndim != 1:
                raise DataError(f"{self.path}:imdb_ids has shape {ids_ds.shape}, expected (N,); fix: {DOWNLOAD_HINT}")
            counts = {key: f[key].shape[0] for key in (*expected, "imdb_ids")}
            if len(set(counts.values())) != 1:
                raise DataError(
                    f"{self.path} has unequal row counts {counts}; expected one row per movie in every dataset; "
                    f"fix: {DOWNLOAD_HINT}"
                )
            n = counts["genres"]
            self._check_ranges(n, f.attrs)
            if image_key == "vgg_features" and int(f[image_key].attrs.get(VGG_COMPUTED_ATTR, 1)) == 0:
                raise DataError(
                    f"{self.path}:vgg_features holds zeros (built without VGG weights); expected computed "
                    f"VGG-16 fc7 features for image_source=vgg_features; fix: rerun scripts/prepare_mmimdb.py "
                    f"with --vgg-weights <vgg16 .pth>, or use data.reader.image_source=images"
                )

            end = self.test_end
            genres = np.asarray(f["genres"][:end])
            if not np.isin(genres, (0, 1)).all():
                bad = np.unique(genres[~np.isin(genres, (0, 1))])[:5].tolist()
                raise DataError(
                    f"{self.path}:genres has values {bad}, expected a 0/1 multi-hot matrix; fix: {DOWNLOAD_HINT}"
                )
            names = _target_names(f["genres"].attrs.get("target_names"))
            if names is not None and len(names) != self.num_classes:
                raise DataError(
                    f"{self.path}:genres.attrs['target_names'] lists {len(names)} genres, expected "
                    f"{self.num_classes}; fix: {DOWNLOAD_HINT}"
                )
            self.class_names = names
            self.synthetic = bool(int(f.attrs.get("synthetic", 0)))

            text = np.asarray(f["features"][:end], dtype=np.float32)
            raw_ids = np.asarray(ids_ds[:end])
            image_dtype = f[image_key].dtype

        # make_dataset.py averages the vectors of the plot's in-vocabulary words: a plot with none gives a
        # NaN row. Zero them (the mean of nothing) rather than poison the loss, and say how many.
        bad_rows = ~np.isfinite(text).all(axis=1)
        if bad_rows.any():
            log.warning("%s: %d text feature rows are not finite; set to zeros", self.path, int(bad_rows.sum()))
            text[bad_rows] = 0.0
        ids = np.array([i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids])
        image = H5Rows(self.path, image_key, np.arange(end), image_shape, image_dtype)
        scaling = {"image": s} if (s := self.image_scaling()) is not None else {}
        full = ArrayDataset(
            {"text": text, "image": image},
            genres.astype(np.float32),
            ids,
            scaling,
            {"text": (TEXT_DIM,), "image": image_shape},
            label_dtype=torch.float32,
        )
        ranges = {
            "train": np.arange(0, self.train_end),
            "val": np.arange(self.train_end, self.val_end),
            "test": np.arange(self.val_end, self.test_end),
        }
        return {split: full.subset(index) for split, index in ranges.items()}
