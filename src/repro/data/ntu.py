"""NTU RGB+D 60 skeleton reader (``data=ntu_skeleton``; IMPLEMENTATION-NOTES §1.4): the release's
``<root>/nturgbd_skeletons/*.skeleton`` text files → samples ``skeleton`` (3, window, 25, 2) float32.

Parsing the 56,880 text files takes minutes, so every file is parsed ONCE (`repro.data.ntu_skeleton.parse_skeleton`)
into a ragged cache under ``<root>/cache/`` (written atomically, memory-mapped on later loads):

- ``skeleton_frames.npy`` (sum of T, 3, 25, 2) float32: the raw x, y, z of every file's frames, file after file;
- ``skeleton_offsets.npy`` (files + 1,) int64: file k's frames are rows offsets[k]:offsets[k + 1];
- ``skeleton_index.json``: names, the (name, size) list it was built from (a different list rebuilds the cache),
  the samples with no body in any frame, and the NaN / dropped-body counts.

The build (`build_cache`) reads every file's frame count first (its first line), so the frames array is a
memory-mapped ``.npy`` filled file by file as the parses arrive — memory stays at a few files' arrays — by
``parse_workers`` processes (``null`` = every core; file order kept; one process for small folders). It is
resumable: every 2,048 files the partial array is flushed and the progress recorded, and a rerun over the same file
list continues there. Measured at release size (56,880 SYNTHETIC files): docs/ntu.md "Benchmarks",
results/bench/ntu_skeleton_parse.json.

Samples with no skeleton data (`missing_skeleton_names`, the release's 302) are excluded by default and counted in
one log line. Splits: `repro.data.ntu_names.split_names` with the protocol (``mfas`` default, ``msaf_quirk``
QUIRK). A partial release (not all 40 subjects) is read as it is, with one warning.

A sample: the authors' origin subtraction (`subtract_origin`; QUIRK ``quirk_absent_body_minus_origin``), then the
authors' length normalisation (``NormalizeLen`` → ``interpole`` of mfas datasets/ntu.py): the sequence resized in
time to ``window`` frames by torch's bilinear ``interpolate`` with align_corners=False, the joint axis unchanged —
i.e. linear interpolation in time, as their (T, 1) bilinear call. Training samples first get the authors' random
temporal crop (``AugCrop``; ``temporal_crop`` = its p_interval, 0.5; null = off): a window of
min(max(⌊T·U[p, 1]⌋, 64), T) frames at a uniform random start (torch's RNG: seeded by the run's seed and per
DataLoader worker). Validation and test samples are not cropped (the authors' NormalizeLen only).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from repro.data.base import ArrayDataset, DataError, Reader, has_synthetic_mark
from repro.data.ntu_names import SUBJECTS, parse_ntu_name, split_names
from repro.data.ntu_skeleton import MAX_BODIES, NUM_JOINTS, parse_skeleton, subtract_origin
from repro.files import atomic_save_npy, atomic_write_text

log = logging.getLogger(__name__)

SKELETON_DIR = "nturgbd_skeletons"
CACHE_DIR = "cache"
FRAMES_FILE = "skeleton_frames.npy"
OFFSETS_FILE = "skeleton_offsets.npy"
INDEX_FILE = "skeleton_index.json"
PARTIAL_FRAMES_FILE = ".skeleton_frames.partial.npy"   # the frames array while it is being written
PROGRESS_FILE = ".skeleton_build_progress.json"       # how far an interrupted build got
CHECKPOINT_EVERY = 2048                               # files between flushes of the partial array
FILES_PER_WORKER = 256                                # fewer files per process do not pay for a pool
WINDOW = 32
MIN_CROP = 64  # AugCrop never keeps fewer frames than this (or the whole sequence when shorter)
DOWNLOAD_HINT = ("download nturgbd_skeletons_s001_to_s017.zip of NTU RGB+D 60 "
                 "(rose1.ntu.edu.sg/dataset/actionRecognition) and unzip it so the folder holds "
                 "nturgbd_skeletons/*.skeleton (docs/ntu.md)")


def resize_time(xyz: np.ndarray, window: int) -> np.ndarray:
    """(3, T, 25, M) → (3, window, 25, M): linear interpolation in time (bilinear over (T, joints), joints kept)."""
    c, t, v, m = xyz.shape
    if t == 0:
        return np.zeros((c, window, v, m), dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32)).permute(0, 3, 1, 2).reshape(1, c * m, t, v)
    y = F.interpolate(x, size=(window, v), mode="bilinear", align_corners=False)
    return y.reshape(c, m, window, v).permute(0, 2, 3, 1).contiguous().numpy()


def random_crop(xyz: np.ndarray, p_interval: float) -> np.ndarray:
    """The authors' AugCrop of a (3, T, 25, M) sequence: min(max(⌊T·U[p, 1]⌋, 64), T) frames at a random start."""
    t = xyz.shape[1]
    if t == 0:
        return xyz
    ratio = p_interval + (1.0 - p_interval) * float(torch.rand(()))
    length = min(max(int(np.floor(t * ratio)), MIN_CROP), t)
    start = int(torch.randint(0, t - length + 1, ()))
    return xyz[:, start:start + length]


class SkeletonCache:
    """The parsed release: a ragged frames array (memory-mapped), offsets and the index (see the module docstring)."""

    def __init__(self, frames: np.ndarray, offsets: np.ndarray, index: dict):
        self.frames, self.offsets, self.index = frames, offsets, index
        self.names: list[str] = index["names"]

    def sequence(self, k: int) -> np.ndarray:
        """File k's raw (3, T, 25, 2) x, y, z (a view of the memory-map, transposed)."""
        return self.frames[self.offsets[k]:self.offsets[k + 1]].transpose(1, 0, 2, 3)


def _listing(files: list[Path]) -> list[list]:
    return [[p.name, p.stat().st_size] for p in files]


def frame_count(path: Path) -> int:
    """The frame count on a ``.skeleton`` file's first line (what its parsed array's length will be)."""
    with open(path, "rb") as f:
        first = f.readline().strip()
    try:
        return int(first)
    except ValueError:
        raise DataError(f"{path}: line 1: expected the frame count (one integer), found {first[:40]!r} — re-extract "
                        "the file from the NTU RGB+D release (nturgbd_skeletons) or remove the sample") from None


def resolve_workers(parse_workers: int | None, num_files: int) -> int:
    """Processes for the parse: ``null`` = every core this process may use; never more than one per
    `FILES_PER_WORKER` files (a pool is not worth starting for a fixture's few dozen files)."""
    wanted = len(os.sched_getaffinity(0)) if parse_workers is None else int(parse_workers)
    if wanted < 1:
        raise DataError(f"data.reader.parse_workers={parse_workers}: expected a positive number of processes, or "
                        "null for every core")
    return max(1, min(wanted, -(-num_files // FILES_PER_WORKER)))


def _parsed_files(files: list[Path], workers: int):
    """`parse_skeleton` of every file, in file order; over a process pool when `workers` > 1."""
    if workers == 1:
        yield from map(parse_skeleton, files)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(parse_skeleton, files, chunksize=32)


def _progress_path(cache_dir: Path) -> Path:
    return cache_dir / PROGRESS_FILE


def _resume_point(cache_dir: Path, listing: list[list], total_frames: int) -> dict:
    """What an interrupted build of the same file list has already written (nothing if none, or another list)."""
    progress_path, partial = _progress_path(cache_dir), cache_dir / PARTIAL_FRAMES_FILE
    fresh = {"listing": listing, "done": 0, "empty": [], "nan_values": 0, "dropped_bodies": 0}
    if not (progress_path.is_file() and partial.is_file()):
        return fresh
    try:
        progress = json.loads(progress_path.read_text())
    except ValueError:
        return fresh
    if progress.get("listing") != listing or progress.get("total_frames") != total_frames:
        return fresh
    return progress


def build_cache(files: list[Path], cache_dir: Path, parse_workers: int | None = 1,
                checkpoint_every: int = CHECKPOINT_EVERY) -> None:
    """Parse every file once into the three cache files (the index last: it marks completion).

    The frame counts (first lines) fix the offsets first, so the frames array is a memory-mapped ``.npy`` written
    file by file as the parses arrive (in file order, from `parse_workers` processes): memory stays at a few files'
    arrays, whatever the release's size. Every `checkpoint_every` files the array is flushed and the progress
    recorded, so an interrupted build of the same file list continues where it stopped; the finished array is
    renamed into place atomically.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    listing = _listing(files)
    lengths = [frame_count(p) for p in files]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    progress = _resume_point(cache_dir, listing, total)
    partial = cache_dir / PARTIAL_FRAMES_FILE
    shape = (total, 3, NUM_JOINTS, MAX_BODIES)
    frames = (np.load(partial, mmap_mode="r+") if progress["done"] else
              np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape))
    start = progress["done"]
    if start:
        log.info("NTU skeletons: resuming the cache build at file %d of %d", start, len(files))
    workers = resolve_workers(parse_workers, len(files) - start)
    for k, parsed in enumerate(_parsed_files(files[start:], workers), start=start):
        if parsed.num_frames != lengths[k]:  # the parser read the same first line: never, unless the file changed
            raise DataError(f"{files[k]}: changed while the cache was built; fix: run again")
        frames[offsets[k]:offsets[k + 1]] = parsed.xyz.transpose(1, 0, 2, 3)
        progress["empty"] += [files[k].name] if parsed.is_empty else []
        progress["nan_values"] += parsed.nan_count
        progress["dropped_bodies"] += parsed.dropped_bodies
        if (k + 1) % checkpoint_every == 0 and k + 1 < len(files):
            frames.flush()
            progress.update(done=k + 1, total_frames=total)
            atomic_write_text(_progress_path(cache_dir), json.dumps(progress))
    frames.flush()
    del frames
    os.replace(partial, cache_dir / FRAMES_FILE)
    atomic_save_npy(cache_dir / OFFSETS_FILE, offsets)
    index = {"names": [p.name for p in files], "files": listing, "empty": progress["empty"],
             "nan_values": int(progress["nan_values"]), "dropped_bodies": int(progress["dropped_bodies"])}
    atomic_write_text(cache_dir / INDEX_FILE, json.dumps(index))
    _progress_path(cache_dir).unlink(missing_ok=True)
    log.info("NTU skeletons: parsed %d files (%d frames, %d processes) into %s", len(files), total, workers, cache_dir)


def load_cache(files: list[Path], cache_dir: Path, parse_workers: int | None = 1) -> SkeletonCache:
    """The cache for exactly `files` (name and size), built when absent or built from another file list."""
    index_path = cache_dir / INDEX_FILE
    index = json.loads(index_path.read_text()) if index_path.is_file() else None
    if index is None or index.get("files") != _listing(files):
        build_cache(files, cache_dir, parse_workers)
        index = json.loads(index_path.read_text())
    try:
        frames = np.load(cache_dir / FRAMES_FILE, mmap_mode="r", allow_pickle=False)
        offsets = np.load(cache_dir / OFFSETS_FILE, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{cache_dir}: unreadable skeleton cache ({str(err).splitlines()[0]}); fix: delete the "
                        "folder, it is rebuilt from the .skeleton files on the next run") from None
    if len(offsets) != len(index["names"]) + 1 or int(offsets[-1]) != len(frames):
        raise DataError(f"{cache_dir}: skeleton cache files disagree; fix: delete the folder, it is rebuilt")
    return SkeletonCache(frames, offsets, index)


class SkeletonWindows:
    """A lazy array-like of samples: ``view[i]`` = (3, window, 25, 2) float32 (origin-subtracted, time-resized);
    ``view[index]`` another view (nothing read)."""

    dtype = np.dtype(np.float32)

    def __init__(self, cache: SkeletonCache, rows: np.ndarray, window: int, quirk_minus_origin: bool,
                 crop: float | None = None):
        self.cache, self.rows = cache, np.asarray(rows, dtype=np.int64)
        self.window, self.quirk_minus_origin = int(window), bool(quirk_minus_origin)
        self.crop = None if crop is None else float(crop)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), 3, self.window, NUM_JOINTS, MAX_BODIES)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            xyz = np.array(self.cache.sequence(int(self.rows[i])), dtype=np.float32)
            if self.crop is not None:
                xyz = random_crop(xyz, self.crop)
            return resize_time(subtract_origin(xyz, self.quirk_minus_origin), self.window)
        return SkeletonWindows(self.cache, self.rows[i], self.window, self.quirk_minus_origin, self.crop)


class NTUSkeletonReader(Reader):
    """``<root>/nturgbd_skeletons/*.skeleton`` (the release's layout): modality ``skeleton``; CS splits."""

    name = "ntu_skeleton"
    num_folds = 0
    prepare_hint = DOWNLOAD_HINT
    data_format = ("NTU RGB+D 60 release: nturgbd_skeletons/SsssCcccPpppRrrrAaaa.skeleton text files (parsed once "
                   "into a memory-mapped cache/); cross-subject splits")
    synthetic_mark = "a SYNTHETIC.txt file in the dataset folder (beside nturgbd_skeletons/)"
    path_key = "data.reader.root"
    # the fixture's ~60 short sequences: small batches so an epoch has several steps
    fixture_run_overrides = ("data.batch_size=8", "data.num_workers=0")

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures_ntu import write_ntu_skeletons

        return write_ntu_skeletons(folder)

    def __init__(self, root: str | Path, protocol: str = "mfas", window: int = WINDOW,
                 quirk_absent_body_minus_origin: bool = False, exclude_missing: bool = True,
                 temporal_crop: float | None = 0.5, parse_workers: int | None = None):
        self.root = Path(root)
        self.parse_workers = None if parse_workers is None else int(parse_workers)  # null = every core
        self.protocol = str(protocol)
        self.window = int(window)
        if self.window < 1:
            raise DataError(f"data.reader.window={window}: expected a positive number of frames (HCN: 32)")
        self.quirk_minus_origin = bool(quirk_absent_body_minus_origin)
        self.exclude_missing = bool(exclude_missing)
        if temporal_crop is not None and not 0.0 < float(temporal_crop) <= 1.0:
            raise DataError(f"data.reader.temporal_crop={temporal_crop}: expected the kept fraction's lower bound "
                            "in (0, 1] (the authors' 0.5), or null for no crop")
        self.temporal_crop = None if temporal_crop is None else float(temporal_crop)
        self._warned_partial = False

    def skeleton_files(self) -> list[Path]:
        folder = self.root / SKELETON_DIR
        if not folder.is_dir():
            raise DataError(f"missing folder {folder}: expected the release's {SKELETON_DIR}/ of .skeleton files; "
                            f"fix: {DOWNLOAD_HINT}, or {self.point_at(self.root, 'the NTU folder')}")
        files = sorted(folder.glob("*.skeleton"))
        if not files:
            raise DataError(f"{folder} holds no .skeleton files; fix: {DOWNLOAD_HINT}")
        for p in files:
            parse_ntu_name(p)  # a foreign file is a one-line error naming it, before any parsing
        return files

    def _warn_if_partial(self, names: list[str]) -> None:
        present = {parse_ntu_name(n).subject for n in names}
        absent = [s for s in SUBJECTS if s not in present]
        if absent and not self._warned_partial:
            self._warned_partial = True
            warnings.warn(f"{self.root / SKELETON_DIR}: partial NTU release, {len(absent)} of 40 subjects absent "
                          f"({', '.join(map(str, absent))}); the {self.protocol} splits of the subjects present are "
                          "used", stacklevel=2)

    def load(self, fold: int | None = None) -> dict[str, ArrayDataset]:
        self.check_fold(fold)
        files = self.skeleton_files()
        cache = load_cache(files, self.root / CACHE_DIR, self.parse_workers)
        self.synthetic = has_synthetic_mark(self.root)
        empty = set(cache.index["empty"]) if self.exclude_missing else set()
        if empty:
            log.info("NTU skeletons: %d of %d samples have no skeleton data and are excluded", len(empty), len(files))
        row_of = {parse_ntu_name(n).stem: k for k, n in enumerate(cache.names) if n not in empty}
        self._warn_if_partial(cache.names)
        splits = split_names(row_of, self.protocol)
        out = {}
        for split, stems in splits.items():
            if not stems:
                raise DataError(f"{self.root / SKELETON_DIR}: no sample of the {split} subjects of protocol "
                                f"{self.protocol}; fix: add those subjects' files (docs/ntu.md)")
            rows = np.array([row_of[s] for s in stems], dtype=np.int64)
            labels = np.array([parse_ntu_name(s).label for s in stems], dtype=np.int64)
            crop = self.temporal_crop if split == "train" else None
            windows = SkeletonWindows(cache, rows, self.window, self.quirk_minus_origin, crop)
            out[split] = ArrayDataset({"skeleton": windows}, labels, np.array(stems))
        return out
