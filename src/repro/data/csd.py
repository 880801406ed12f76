"""Reader for CMU Multimodal SDK computational sequences (``.csd``) and the SDK's standard folds.

Used to rebuild the word-aligned CMU-MOSI / CMU-MOSEI / POM tensors of RMFN §4.2 ("expectation of their
modality feature values over each word utterance time interval"; see `repro.data.csd_word_alignment`).

Layout (A2Zadeh/CMU-MultimodalSDK ``mmsdk/mmdatasdk/computational_sequence/file_ops.py``, ``write_CSD``):
an HDF5 file with one top-level group ``<root name>`` holding

- ``<root>/data/<video id>/features``  (n, D) — numbers, or (n, 1) byte strings for the words sequence;
- ``<root>/data/<video id>/intervals`` (n, 2) — start/end times in seconds, one row per feature row;
- ``<root>/metadata/<key>``            (1,) variable-length strings, each the JSON dump of the value
  (keys per ``configurations/metadataconfigs.py``: "root name", "computational sequence description",
  "dimension names", "computational sequence version", "alignment compatible", "dataset name", ...).

The SDK's ``read_CSD`` takes the first top-level group and ``metadata["root name"]`` as the name
(``write_CSD`` names the group after it); we take the group name. Entries are read lazily, one video at a
time: the MOSEI COVAREP file is several GB.

Standard folds: ``mmsdk/mmdatasdk/dataset/standard_datasets/<DATASET>/<dataset>_std_folds.py`` assigns three
lists of video ids, ``standard_train_fold``, ``standard_valid_fold``, ``standard_test_fold``. We parse that
file with `ast` (never import or execute it), or take the lists from an installed ``mmsdk``.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from repro.data.base import DataError, require_file

FOLD_NAMES = {"train": "standard_train_fold", "valid": "standard_valid_fold", "test": "standard_test_fold"}
SDK_SDIST = "cmu-multimodal-sdk==0.0.6"
CSD_HINT = ("download the computational sequences with the CMU Multimodal SDK (mmsdk.mmdatasdk.<dataset>.highlevel/"
            "raw/labels) into --csd-dir")


def folds_hint(sdk_folder: str, folds_file: str) -> str:
    """How to get a standard-folds file without installing the SDK."""
    return (f"run `pip download --no-deps --no-binary :all: {SDK_SDIST}`, unpack the archive and pass "
            f"--folds <unpacked>/mmsdk/mmdatasdk/dataset/standard_datasets/{sdk_folder}/{folds_file}")


class ComputationalSequence:
    """One open ``.csd`` file: ``name``, ``metadata``, ``video_ids`` and per-video ``entry(vid)`` reads."""

    def __init__(self, path: Path, handle: h5py.File, name: str):
        self.path = path
        self.name = name
        self._handle = handle
        self._data = handle[name]["data"]
        self._metadata: dict | None = None

    # -- context manager -------------------------------------------------------------------------------
    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ComputationalSequence:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- contents --------------------------------------------------------------------------------------
    @property
    def metadata(self) -> dict:
        if self._metadata is None:
            self._metadata = _metadata_to_dict(self._handle[self.name]["metadata"])
        return self._metadata

    @property
    def video_ids(self) -> list[str]:
        return list(self._data.keys())

    def __contains__(self, vid: str) -> bool:
        return vid in self._data

    def __len__(self) -> int:
        return len(self._data)

    def _dataset(self, vid: str, key: str) -> h5py.Dataset:
        where = f"{self.path}[{self.name}/data/{vid}]"
        if vid not in self._data:
            raise DataError(f"{self.path} has no video {vid!r} in {self.name}/data; expected one entry per video "
                            f"of the folds; fix: {CSD_HINT}")
        group = self._data[vid]
        if not isinstance(group, h5py.Group) or key not in group or not isinstance(group[key], h5py.Dataset):
            raise DataError(f"{where} has no dataset {key!r}; expected 'features' and 'intervals' (SDK layout); "
                            f"fix: {CSD_HINT}")
        return group[key]

    def intervals(self, vid: str) -> np.ndarray:
        """(n, 2) float64 start/end seconds of video `vid`."""
        ds = self._dataset(vid, "intervals")
        if ds.ndim != 2 or ds.shape[1] != 2 or ds.dtype.kind not in "uif":
            raise DataError(f"{self.path}[{self.name}/data/{vid}/intervals] is {ds.dtype} {ds.shape}, expected "
                            f"numeric (n, 2) start/end seconds; fix: {CSD_HINT}")
        return np.asarray(ds[()], dtype=np.float64)

    def features(self, vid: str) -> np.ndarray:
        """(n, D) features of video `vid` as stored (numbers, or byte strings for words)."""
        ds = self._dataset(vid, "features")
        if ds.ndim != 2:
            raise DataError(f"{self.path}[{self.name}/data/{vid}/features] has shape {ds.shape}, expected (n, D); "
                            f"fix: {CSD_HINT}")
        return ds[()]

    def entry(self, vid: str) -> tuple[np.ndarray, np.ndarray]:
        """(features, intervals) of one video, checked to have one interval per feature row."""
        feats, ivs = self.features(vid), self.intervals(vid)
        if len(feats) != len(ivs):
            raise DataError(f"{self.path}[{self.name}/data/{vid}] has {len(feats)} feature rows but {len(ivs)} "
                            f"intervals; expected one interval per row; fix: {CSD_HINT}")
        return feats, ivs


def _metadata_to_dict(group: h5py.Group) -> dict:
    """Each metadata dataset holds one JSON string (the SDK's ``metadata_to_dict``); fall back to plain text."""
    out = {}
    for key, ds in group.items():
        if not isinstance(ds, h5py.Dataset):
            continue
        raw = ds[()]
        raw = raw[0] if getattr(raw, "ndim", 0) >= 1 and len(raw) else raw
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def read_csd(path: str | Path, expected_name: str | Iterable[str] | None = None) -> ComputationalSequence:
    """Open a computational sequence; `expected_name` (a name or several accepted names) is checked against
    the top-level group name. Raises `DataError` (one line) on a missing/non-HDF5 file or a wrong layout."""
    path = Path(path)
    require_file(path, CSD_HINT)
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"cannot open {path} as HDF5 ({reason}); expected a computational sequence (.csd); "
                        f"fix: re-download it ({CSD_HINT})") from None
    try:
        roots = [k for k, v in handle.items() if isinstance(v, h5py.Group)]
        if not roots:
            raise DataError(f"{path} has no top-level group; expected <root name>/data and <root name>/metadata "
                            f"(SDK layout); fix: re-download it ({CSD_HINT})")
        name = roots[0]  # the SDK also takes the first top-level key
        if expected_name is not None:
            accepted = [expected_name] if isinstance(expected_name, str) else list(expected_name)
            if name not in accepted:
                want = " or ".join(map(repr, accepted))
                raise DataError(f"{path} holds computational sequence {name!r}, expected {want}; fix: pass the "
                                f"right file, or override the expected name (--root-name ROLE=NAME)")
        for part in ("data", "metadata"):
            if part not in handle[name] or not isinstance(handle[name][part], h5py.Group):
                raise DataError(f"{path} has no group {name}/{part}; expected <root name>/data and "
                                f"<root name>/metadata (SDK layout); fix: re-download it ({CSD_HINT})")
    except BaseException:
        handle.close()
        raise
    return ComputationalSequence(path, handle, name)


# -- standard folds ------------------------------------------------------------------------------------
def read_std_folds(path: str | Path, hint: str = "") -> dict[str, list[str]]:
    """``{"train", "valid", "test"}`` video-id lists from an SDK ``*_std_folds.py``, parsed with `ast`."""
    path = Path(path)
    fix = hint or "pass the SDK's *_std_folds.py file"
    require_file(path, fix)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"cannot parse {path} as Python ({type(err).__name__}); expected the SDK's standard folds "
                        f"file; fix: {fix}") from None
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue  # not a literal: not one of the fold lists
            found[node.targets[0].id] = value
    folds = {}
    for split, var in FOLD_NAMES.items():
        ids = found.get(var)
        if not isinstance(ids, list) or not all(isinstance(v, str) for v in ids):
            raise DataError(f"{path} does not assign {var} a list of video-id strings; expected "
                            f"{', '.join(FOLD_NAMES.values())}; fix: {fix}")
        folds[split] = ids
    _check_disjoint(folds, str(path), fix)
    return folds


def mmsdk_folds(mmsdk_attr: str) -> dict[str, list[str]] | None:
    """The folds from an installed ``mmsdk`` (``mmdatasdk.<attr>.standard_folds``), or None without it."""
    try:
        from mmsdk import mmdatasdk  # noqa: PLC0415  (optional dependency)
    except ImportError:
        return None
    module = getattr(mmdatasdk, mmsdk_attr).standard_folds
    folds = {split: [str(v) for v in getattr(module, var)] for split, var in FOLD_NAMES.items()}
    _check_disjoint(folds, f"mmsdk.mmdatasdk.{mmsdk_attr}.standard_folds", "reinstall mmsdk")
    return folds


def _check_disjoint(folds: dict[str, list[str]], where: str, fix: str) -> None:
    seen: dict[str, str] = {}
    for split, ids in folds.items():
        for vid in ids:
            if vid in seen and seen[vid] != split:
                raise DataError(f"{where}: video {vid!r} is in both {seen[vid]} and {split}; expected disjoint "
                                f"folds; fix: {fix}")
            seen[vid] = split
