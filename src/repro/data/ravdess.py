"""RAVDESS readers (MSAF Table 1; IMPLEMENTATION-NOTES §1.2) of the prepared layout `repro.data.ravdess_prepare`
writes: ``data=ravdess`` (face clips + MFCCs) and ``data=ravdess_audio`` (MFCCs of the audio-only release).

``manifest.json`` lists the clips (``Actor_XX/<stem>``, actor, label = emotion − 1). Folds are MSAF's 6-fold
cross-validation by actor (`repro.data.ravdess_names.split_clips`: fold k tests actors 4k+1..4k+4;
``select_on=test`` validates on them too, the paper's protocol; ``select_on=val`` validates on the next fold's four
actors and never looks at the test actors). A partial release (fewer actors) loads with one warning naming the
missing actors (``load_all``), but the folds need all 24 (one-line `DataError`).

Video: each clip's ``.video.npy`` (30, 3, 224, 224) uint8 RGB is memory-mapped when its sample is read
(`ClipFrames`, a lazy array-like: nothing is read at load, and the data stays uint8 until the sample becomes a float
tensor). ``frames`` < 30 keeps evenly spaced frames (``round(linspace(0, 29, frames))``); ``frame_size`` ≠ 224
resizes on read (bilinear, antialiased: the CPU smoke path reads 8 × 32²); ``quirk_bgr`` swaps RGB → BGR as the
authors' cv2 round trip fed the network (QUIRK). ImageNet normalisation and the augmentation are
``data.transforms`` (configs/data/ravdess.yaml). MFCCs (13, 212) float32 are read into memory at load (16 MB for
the release).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from repro.data.base import ArrayDataset, DataError, Reader, has_synthetic_mark, load_npy
from repro.data.ravdess_names import NUM_FOLDS, missing_actors, split_clips
from repro.data.ravdess_prepare import (
    AUDIO_DOWNLOAD_HINT,
    DOWNLOAD_HINT,
    FRAME_SIZE,
    FRAMES,
    MANIFEST,
    MFCC_SHAPE,
    MFCC_SUFFIX,
    PREPARED_FORMAT,
    VIDEO_SHAPE,
    VIDEO_SUFFIX,
)


def frame_subset(frames: int, available: int = FRAMES) -> np.ndarray:
    """Indices of `frames` evenly spaced frames among `available` (all of them when equal)."""
    if not 1 <= frames <= available:
        raise DataError(f"data.reader.frames={frames}: expected 1..{available} (the prepared clips hold {available})")
    return np.round(np.linspace(0, available - 1, frames)).astype(np.int64)


class ClipFrames:
    """A lazy array-like over per-clip ``.video.npy`` files: ``len``, ``view[i]`` (one clip, memory-mapped, frames
    picked, resized, channels swapped: uint8 (T, 3, S, S)), ``view[index]`` (another view; nothing read)."""

    dtype = np.dtype(np.uint8)

    def __init__(self, paths: list[Path], frames: np.ndarray, frame_size: int, bgr: bool, hint: str):
        self.paths = list(paths)
        self.frames = np.asarray(frames)
        self.frame_size = int(frame_size)
        self.bgr = bool(bgr)
        self.hint = hint

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), len(self.frames), 3, self.frame_size, self.frame_size)

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, i: int) -> np.ndarray:
        path = self.paths[i]
        clip = load_npy(path, self.hint)  # memory-mapped: only the picked frames' pages are read
        if clip.shape != VIDEO_SHAPE or clip.dtype != np.uint8:
            raise DataError(f"{path} holds {clip.dtype} {clip.shape}, expected uint8 {VIDEO_SHAPE}; fix: {self.hint}")
        x = np.asarray(clip[self.frames])
        if self.bgr:
            x = x[:, ::-1]
        if self.frame_size != FRAME_SIZE:
            import torch

            from repro.data.transforms import _resize

            x = _resize(torch.from_numpy(np.ascontiguousarray(x)), (self.frame_size, self.frame_size)).numpy()
        return np.ascontiguousarray(x)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return self._read(int(i))
        index = np.arange(len(self.paths))[i] if isinstance(i, slice) else np.asarray(i)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return ClipFrames([self.paths[k] for k in index], self.frames, self.frame_size, self.bgr, self.hint)

    def __array__(self, *args, **kwargs):
        raise TypeError("ClipFrames is a lazy view of per-clip files; read clips one at a time")

    def __repr__(self) -> str:
        return f"ClipFrames({len(self)} clips, frames={len(self.frames)}, size={self.frame_size}, bgr={self.bgr})"


class RavdessReader(Reader):
    """``<root>/manifest.json`` + ``Actor_XX/<stem>.{video,mfcc}.npy``: modalities ``video`` and ``audio``."""

    name = "ravdess"
    num_folds = NUM_FOLDS
    kind = "video_audio"
    prepare_hint = DOWNLOAD_HINT
    data_format = ("prepared RAVDESS (scripts/prepare_ravdess.py): manifest.json + Actor_XX/<stem>.video.npy "
                   "(30,3,224,224) uint8 face crops + <stem>.mfcc.npy (13,212) float32; 6 folds by actor")
    synthetic_mark = "manifest.json synthetic=true (and SYNTHETIC.txt), copied from the raw fixture's SYNTHETIC.txt"
    # the fixture: 2 clips per actor (32/8/8 clips in fold 0 with select_on=val); 8 frames of 32² on CPU
    fixture_run_overrides = ("fold=0", "data.reader.frames=8", "data.reader.frame_size=32", "data.batch_size=8",
                             "data.num_workers=0")

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures_ravdess import write_prepared

        return write_prepared(folder, audio_only=cls.kind == "audio", **options)

    def __init__(self, root: str | Path, select_on: str = "test", num_folds: int = NUM_FOLDS, frames: int = FRAMES,
                 frame_size: int = FRAME_SIZE, quirk_bgr: bool = False):
        self.root = Path(root)
        self.select_on = str(select_on)
        self.num_folds = int(num_folds)
        self.frames = frame_subset(int(frames))
        if int(frame_size) < 1:
            raise DataError(f"data.reader.frame_size={frame_size}: expected a positive size in pixels (224 = as "
                            "prepared)")
        self.frame_size = int(frame_size)
        self.quirk_bgr = bool(quirk_bgr)
        self._manifest: dict | None = None

    @property
    def fix(self) -> str:
        return f"{self.prepare_hint} (or {self.point_at(self.root, 'the prepared folder')})"

    def manifest(self) -> dict:
        """The prepared folder's manifest (read once); a partial release warns once, naming the missing actors."""
        if self._manifest is not None:
            return self._manifest
        path = self.root / MANIFEST
        if not path.is_file():
            raise DataError(f"{self.root} is not a prepared RAVDESS folder ({MANIFEST} missing); fix: {self.fix}")
        try:
            manifest = json.loads(path.read_text())
            clips = manifest["clips"]
            ok = manifest.get("format") == PREPARED_FORMAT and manifest.get("kind") == self.kind
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"cannot read {path} ({type(err).__name__}: the file is truncated or not a manifest); "
                            f"fix: run scripts/prepare_ravdess.py again on the raw release (it resumes)") from None
        if not ok:
            raise DataError(f"{path} is a {manifest.get('kind')!r} {manifest.get('format')!r} manifest, expected "
                            f"{self.kind!r} {PREPARED_FORMAT!r}; fix: point {self.path_key} at the folder "
                            f"scripts/prepare_ravdess.py{' --audio-only' if self.kind == 'audio' else ''} wrote")
        if not clips:
            raise DataError(f"{path} lists no clips; fix: {self.fix}")
        missing = missing_actors({int(c["actor"]) for c in clips})
        if missing:
            warnings.warn(f"{self.root}: partial RAVDESS release, missing "
                          f"{', '.join(f'Actor_{a:02d}' for a in missing)} (the 6-fold cross-validation needs all 24)",
                          stacklevel=2)
        self._manifest = manifest
        return manifest

    def _files(self, names: list[str], suffix: str, nbytes: int) -> list[Path]:
        """Each clip's file, checked to be there and not cut short (cheap stat calls; nothing is read)."""
        paths = [self.root / f"{n}{suffix}" for n in names]
        for p in paths:
            size = p.stat().st_size if p.is_file() else None
            if size is None or size < nbytes:
                what = "missing" if size is None else f"truncated ({size} bytes, expected > {nbytes})"
                raise DataError(f"{p} is {what}; fix: run scripts/prepare_ravdess.py again on the raw release (it "
                                f"redoes the clip; delete its .json first if the file was damaged later)")
        return paths

    def _mfcc(self, names: list[str]) -> np.ndarray:
        paths = self._files(names, MFCC_SUFFIX, int(np.prod(MFCC_SHAPE)) * 4)
        out = np.empty((len(paths), *MFCC_SHAPE), np.float32)
        for k, p in enumerate(paths):
            a = load_npy(p, self.fix, mmap=False)
            if a.shape != MFCC_SHAPE:
                raise DataError(f"{p} has shape {a.shape}, expected {MFCC_SHAPE}; fix: {self.fix}")
            out[k] = a
        return out

    def arrays(self, names: list[str]) -> dict:
        out = {}
        if self.reads("video"):
            paths = self._files(names, VIDEO_SUFFIX, int(np.prod(VIDEO_SHAPE)))
            out["video"] = ClipFrames(paths, self.frames, self.frame_size, self.quirk_bgr, self.fix)
        if self.reads("audio"):
            out["audio"] = self._mfcc(names)
        return out

    def load_all(self) -> ArrayDataset:
        """Every prepared clip (a partial release too), in manifest order."""
        manifest = self.manifest()
        self.synthetic = bool(manifest.get("synthetic")) or has_synthetic_mark(self.root)
        names = [c["name"] for c in manifest["clips"]]
        labels = np.array([int(c["label"]) for c in manifest["clips"]], np.int64)
        return ArrayDataset(self.arrays(names), labels, np.array(names))

    def load(self, fold: int | None = None) -> dict[str, ArrayDataset]:
        self.check_fold(fold)
        everything = self.load_all()
        names = [str(n) for n in everything.ids]  # Actor_XX/<stem>: the name carries the actor
        position = {n: k for k, n in enumerate(names)}
        splits = split_clips(names, int(fold), self.select_on, self.num_folds)
        return {split: everything.subset(np.array([position[n] for n in chosen], np.int64))
                for split, chosen in splits.items()}


class RavdessAudioReader(RavdessReader):
    """``<root>/manifest.json`` + ``Actor_XX/03-01-…mfcc.npy`` of the audio-only release: modality ``audio``."""

    name = "ravdess_audio"
    kind = "audio"
    prepare_hint = AUDIO_DOWNLOAD_HINT
    data_format = ("prepared RAVDESS audio-only release (scripts/prepare_ravdess.py --audio-only): manifest.json + "
                   "Actor_XX/<stem>.mfcc.npy (13,212) float32; 6 folds by actor")
    fixture_run_overrides = ("fold=0", "data.batch_size=8")

    def __init__(self, root: str | Path, select_on: str = "test", num_folds: int = NUM_FOLDS):
        super().__init__(root, select_on, num_folds)

    def arrays(self, names: list[str]) -> dict:
        return {"audio": self._mfcc(names)}
