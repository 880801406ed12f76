"""Pooled encoder taps for the search: cached on disk (fast path) or computed live (mfas.txt §3.3).

During the search both encoders are frozen and only the fusion MLP trains on their globally pooled taps
(mfas.txt §3.3, "Loss function"). So every tap of every sample is computed once, with the encoders in
evaluation mode, and stored as memory-mapped `.npy` files:

    <cache>/manifest.json                      written last: its presence marks a complete cache
    <cache>/<split>/<modality>.<tap>.npy       (N, C) float32, one per tap
    <cache>/<split>/labels.npy                 (N,) int64 or (N, K) float32 (multilabel)

The cache directory is built under a temporary name and renamed into place, so a killed build leaves no
half cache behind. The folder name carries a hash of the encoders' weights and the data config, so a
change of either builds a new cache. A cache damaged afterwards (a file missing or truncated) is reported in
one line naming the file, with the fix (delete the folder; the next search rebuilds it).

`LiveFeatures` gives the same batches from the raw data through the encoders, for the uncached path (e.g. to
fine-tune encoders during the search); `tests/search` checks both paths give the same result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from repro.data.base import DataError
from repro.models.backbones.base import StagedEncoder
from repro.results import atomic_write_text

MANIFEST = "manifest.json"
CACHE_VERSION = 1

Batch = tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]


class FeatureCacheError(DataError):
    """A feature cache on disk is incomplete or damaged; the message is one line with the fix."""


def encoder_fingerprint(encoders: Mapping[str, torch.nn.Module], extra: object = None) -> str:
    """sha256 over every encoder's weights and buffers (in a fixed order) and a JSON-able extra."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for name in sorted(encoders):
        for key, tensor in sorted(encoders[name].state_dict().items()):
            h.update(f"{name}.{key}".encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


@torch.no_grad()
def pooled_taps(encoder: StagedEncoder, x: torch.Tensor) -> list[torch.Tensor]:
    return [encoder.pool(t).float() for t in encoder.taps(x)]


def _collate(samples: list[dict]) -> dict:
    return default_collate([{k: v for k, v in s.items() if k != "id"} for s in samples])


class FeatureSource:
    """Batches of pooled taps: (x tap features, y tap features, labels); subclasses fill the storage."""

    x_dims: list[int]
    y_dims: list[int]

    def size(self, split: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """One pass over `split`; shuffled with `generator` when given (the same order in every subclass)."""
        n = self.size(split)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        yield from self._batches(split, order, batch_size)

    def _batches(self, split: str, order: torch.Tensor, batch_size: int) -> Iterator[Batch]:  # pragma: no cover
        raise NotImplementedError


class CachedFeatures(FeatureSource):
    """Pooled taps held in memory (loaded from a feature cache).

    Small by construction: one pooled vector per tap, e.g. AV-MNIST's LeNets have 56 image + 248 audio channels,
    so 55k train/val samples hold 67 MB (and a pass's shuffled gather as much again) — the raw spectrograms the
    cache was built from (2.8 GB) are not kept."""

    def __init__(self, splits: Mapping[str, dict]):
        self.splits = dict(splits)
        first = next(iter(self.splits.values()))
        self.x_dims = [t.shape[1] for t in first["x"]]
        self.y_dims = [t.shape[1] for t in first["y"]]

    def size(self, split: str) -> int:
        return len(self.splits[split]["labels"])

    def labels(self, split: str) -> torch.Tensor:
        return self.splits[split]["labels"]

    def _batches(self, split, order, batch_size):
        s = self.splits[split]
        # Gather once per pass, then slice views: far cheaper than indexing every tap at every step.
        xs = [t[order] for t in s["x"]]
        ys = [t[order] for t in s["y"]]
        labels = s["labels"][order]
        for b in range(0, len(order), batch_size):
            sl = slice(b, b + batch_size)
            yield [t[sl] for t in xs], [t[sl] for t in ys], labels[sl]


class LiveFeatures(FeatureSource):
    """The uncached path: pooled taps computed from the raw samples by the (frozen) encoders at every batch."""

    def __init__(self, datasets: Mapping[str, Dataset], x_encoder: StagedEncoder, y_encoder: StagedEncoder,
                 modalities: Sequence[str]):
        self.datasets = dict(datasets)
        self.x_encoder, self.y_encoder = x_encoder.eval(), y_encoder.eval()
        self.modalities = list(modalities)
        self.x_dims = list(x_encoder.stage_channels)
        self.y_dims = list(y_encoder.stage_channels)

    def size(self, split: str) -> int:
        return len(self.datasets[split])

    def _batches(self, split, order, batch_size):
        ds = self.datasets[split]
        xm, ym = self.modalities
        for b in range(0, len(order), batch_size):
            batch = _collate([ds[int(i)] for i in order[b:b + batch_size]])
            yield pooled_taps(self.x_encoder, batch[xm]), pooled_taps(self.y_encoder, batch[ym]), batch["label"]


# -- the on-disk cache ------------------------------------------------------------------------------------


def _tap_file(split: str, modality: str, tap: str) -> str:
    return f"{split}/{modality}.{tap}.npy"


def build_cache(
    cache_dir: str | Path,
    datasets: Mapping[str, Dataset],
    encoders: Mapping[str, StagedEncoder],
    modalities: Sequence[str],
    batch_size: int = 256,
    progress: bool = True,
) -> Path:
    """Compute every split's pooled taps once and store them (atomically) at `cache_dir`."""
    cache_dir = Path(cache_dir)
    tmp = cache_dir.with_name(f".{cache_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    files: dict[str, list[int]] = {}
    for m in modalities:
        encoders[m].eval()
    try:
        for split, ds in datasets.items():
            (tmp / split).mkdir(parents=True, exist_ok=True)
            n = len(ds)
            arrays: dict[str, np.ndarray] = {}
            loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=_collate)
            start = 0
            for batch in _progress(loader, f"feature cache: {split} ({n} samples)", progress):
                b = len(batch["label"])
                for m in modalities:
                    enc = encoders[m]
                    for tap, feat in zip(enc.stage_names, pooled_taps(enc, batch[m])):
                        name = _tap_file(split, m, tap)
                        if name not in arrays:
                            arrays[name] = np.lib.format.open_memmap(tmp / name, mode="w+", dtype=np.float32,
                                                                     shape=(n, feat.shape[1]))
                        arrays[name][start:start + b] = feat.numpy()
                labels = batch["label"].numpy()
                name = f"{split}/labels.npy"
                if name not in arrays:
                    arrays[name] = np.lib.format.open_memmap(tmp / name, mode="w+", dtype=labels.dtype,
                                                             shape=(n, *labels.shape[1:]))
                arrays[name][start:start + b] = labels
                start += b
            for name, arr in arrays.items():
                arr.flush()
                files[name] = list(arr.shape)
            del arrays
        manifest = {"version": CACHE_VERSION, "modalities": list(modalities),
                    "taps": {m: list(encoders[m].stage_names) for m in modalities},
                    "splits": {s: len(ds) for s, ds in datasets.items()}, "files": files}
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        if cache_dir.exists():  # built meanwhile by another process: keep theirs
            shutil.rmtree(tmp)
        else:
            cache_dir.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, cache_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return cache_dir


def _damaged(cache_dir: Path, what: str) -> FeatureCacheError:
    return FeatureCacheError(f"feature cache {cache_dir}: {what}; delete that folder and re-run the search "
                             "(it rebuilds the cache)")


def load_cache(cache_dir: str | Path, modalities: Sequence[str], splits: Sequence[str]) -> CachedFeatures:
    """Open a complete cache (memory-mapped, then copied to tensors); one-line errors for a damaged one."""
    cache_dir = Path(cache_dir)
    manifest_path = cache_dir / MANIFEST
    if not manifest_path.is_file():
        raise _damaged(cache_dir, f"{MANIFEST} is missing (an incomplete cache)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        raise _damaged(cache_dir, f"{MANIFEST} is not valid JSON") from None
    out = {}
    for split in splits:
        if split not in manifest.get("splits", {}):
            raise _damaged(cache_dir, f"it has no split {split!r} (has {sorted(manifest.get('splits', {}))})")
        entry = {}
        for key, m in (("x", modalities[0]), ("y", modalities[1])):
            taps = manifest["taps"].get(m)
            if taps is None:
                raise _damaged(cache_dir, f"it has no modality {m!r}")
            entry[key] = [_load_array(cache_dir, _tap_file(split, m, t), manifest) for t in taps]
        entry["labels"] = _load_array(cache_dir, f"{split}/labels.npy", manifest)
        out[split] = entry
    return CachedFeatures(out)


def _load_array(cache_dir: Path, name: str, manifest: dict) -> torch.Tensor:
    path = cache_dir / name
    if not path.is_file():
        raise _damaged(cache_dir, f"file {name} is missing")
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        raise _damaged(cache_dir, f"file {name} is truncated or corrupt ({str(err).splitlines()[0]})") from None
    expected = manifest["files"].get(name)
    if expected is None or list(arr.shape) != list(expected):
        raise _damaged(cache_dir, f"file {name} has shape {list(arr.shape)}, the manifest says {expected}")
    return torch.from_numpy(np.array(arr))  # a private, writable copy in memory


def _progress(iterable, description: str, enabled: bool):
    if not enabled:
        return iterable
    from rich.progress import track

    return track(iterable, description=description, transient=True)
