"""Pooled encoder taps for the search: cached on disk (fast path) or computed live (mfas.txt §3.3).

During the search both encoders are frozen and only the fusion MLP trains on their globally pooled taps
(mfas.txt §3.3, "Loss function"). So every tap of every sample is computed once, with the encoders in
evaluation mode, and stored as memory-mapped `.npy` files:

    <cache>/manifest.json                      written last: its presence marks a complete cache
    <cache>/<split>/<modality>.<tap>.npy       (N, C) float32, one per stored stage
    <cache>/<split>/labels.npy                 (N,) int64 or (N, K) float32 (multilabel)

`stages` restricts the stored stages to those the search space reads (NTU: HCN conv5, conv6, person_max, fc7 and
the inflated ResNet's layer2..layer4; an alias tap such as `layer4_pooled` reads layer4's file, so it costs no
disk). Size on disk = samples × Σ stored widths × 4 bytes (docs/ntu.md states NTU-60 CS's).

Building is resumable: the arrays are written in place under `<cache>.partial/`, and `progress.json` there records,
after every flushed batch, how many rows of each split are done; a killed build, re-run with the same inputs,
continues from there (the layout — splits, sizes, stages, widths — must match, else it starts over). The complete
folder is renamed into place at the end, so a reader never sees a half cache. The folder name carries a hash of the
encoders' weights and the data config, so a change of either builds a new cache. A cache damaged afterwards (a
file missing or truncated) is reported in one line naming the file, with the fix (delete the folder).

Reading keeps the tap arrays memory-mapped (`CachedFeatures`): a training pass gathers, chunk by chunk, only the
rows of the taps the architecture reads, so NTU's 1.3 GB of features are never all copied into memory.

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
PROGRESS = "progress.json"
CACHE_VERSION = 1
GATHER_ROWS = 4096  # rows gathered from the memory-mapped taps at once in a training pass

# (x tap features, y tap features, labels); a tap an architecture does not read may be None
Batch = tuple[list[torch.Tensor | None], list[torch.Tensor | None], torch.Tensor]
Needed = tuple[set[int], set[int]] | None


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
    """Batches of pooled taps: (x tap features, y tap features, labels); subclasses fill the storage.

    `x_names` / `y_names` are the encoder stages the features are of (`x_dims` / `y_dims` their widths)."""

    x_names: list[str]
    y_names: list[str]
    x_dims: list[int]
    y_dims: list[int]

    def size(self, split: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None,
                needed: Needed = None) -> Iterator[Batch]:
        """One pass over `split`; shuffled with `generator` when given (the same order in every subclass).
        `needed` = (x tap indices, y tap indices) the consumer reads; a source may leave the others None."""
        n = self.size(split)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        yield from self._batches(split, order, batch_size, needed)

    def _batches(self, split: str, order: torch.Tensor, batch_size: int,
                 needed: Needed) -> Iterator[Batch]:  # pragma: no cover
        raise NotImplementedError


def _as_array(t) -> np.ndarray:
    return t.numpy() if isinstance(t, torch.Tensor) else t


class CachedFeatures(FeatureSource):
    """Pooled taps of each split: numpy arrays, memory-mapped when loaded from a cache (or tensors/arrays in
    memory). A pass gathers the shuffled rows of the taps it needs `GATHER_ROWS` at a time (one gather per chunk
    and tap, then views per batch: far cheaper than indexing every tap at every step, and memory stays bounded by
    the chunk, not the split)."""

    def __init__(self, splits: Mapping[str, dict], x_names: Sequence[str] | None = None,
                 y_names: Sequence[str] | None = None):
        self.splits = {k: {"x": [_as_array(t) for t in v["x"]], "y": [_as_array(t) for t in v["y"]],
                           "labels": torch.as_tensor(np.asarray(v["labels"]))} for k, v in splits.items()}
        first = next(iter(self.splits.values()))
        self.x_dims = [t.shape[1] for t in first["x"]]
        self.y_dims = [t.shape[1] for t in first["y"]]
        self.x_names = list(x_names or [f"x{i}" for i in range(len(self.x_dims))])
        self.y_names = list(y_names or [f"y{i}" for i in range(len(self.y_dims))])

    def size(self, split: str) -> int:
        return len(self.splits[split]["labels"])

    def labels(self, split: str) -> torch.Tensor:
        return self.splits[split]["labels"]

    def select(self, x_index: Sequence[int], y_index: Sequence[int]) -> CachedFeatures:
        """The same storage (no copy) with the taps at `x_index` / `y_index`, in that order."""
        out = CachedFeatures.__new__(CachedFeatures)
        out.splits = {k: {"x": [v["x"][i] for i in x_index], "y": [v["y"][i] for i in y_index],
                          "labels": v["labels"]} for k, v in self.splits.items()}
        out.x_dims = [self.x_dims[i] for i in x_index]
        out.y_dims = [self.y_dims[i] for i in y_index]
        out.x_names = [self.x_names[i] for i in x_index]
        out.y_names = [self.y_names[i] for i in y_index]
        return out

    def _batches(self, split, order, batch_size, needed=None):
        s = self.splits[split]
        xs_used = range(len(s["x"])) if needed is None else needed[0]
        ys_used = range(len(s["y"])) if needed is None else needed[1]
        order = order.numpy()
        chunk = max(batch_size, GATHER_ROWS // batch_size * batch_size)  # whole batches per chunk
        for c in range(0, len(order), chunk):
            rows = order[c:c + chunk]
            xs = [torch.from_numpy(np.take(t, rows, axis=0)) if i in xs_used else None for i, t in enumerate(s["x"])]
            ys = [torch.from_numpy(np.take(t, rows, axis=0)) if i in ys_used else None for i, t in enumerate(s["y"])]
            labels = s["labels"][torch.from_numpy(rows)]
            for b in range(0, len(rows), batch_size):
                sl = slice(b, b + batch_size)
                yield ([None if t is None else t[sl] for t in xs], [None if t is None else t[sl] for t in ys],
                       labels[sl])


class SelectedTaps(FeatureSource):
    """Another source's batches with only some of its taps, reordered (the search space's taps)."""

    def __init__(self, source: FeatureSource, x_index: Sequence[int], y_index: Sequence[int]):
        self.source, self.x_index, self.y_index = source, list(x_index), list(y_index)
        self.x_dims = [source.x_dims[i] for i in self.x_index]
        self.y_dims = [source.y_dims[i] for i in self.y_index]
        self.x_names = [source.x_names[i] for i in self.x_index]
        self.y_names = [source.y_names[i] for i in self.y_index]

    def size(self, split: str) -> int:
        return self.source.size(split)

    def _batches(self, split, order, batch_size, needed=None):
        for x, y, labels in self.source._batches(split, order, batch_size, None):
            yield [x[i] for i in self.x_index], [y[i] for i in self.y_index], labels


def select_taps(source: FeatureSource, x_index: Sequence[int], y_index: Sequence[int]) -> FeatureSource:
    """`source` restricted to the taps at `x_index` / `y_index` (positions among its `x_names` / `y_names`)."""
    if isinstance(source, CachedFeatures):
        return source.select(x_index, y_index)
    return SelectedTaps(source, x_index, y_index)


class LiveFeatures(FeatureSource):
    """The uncached path: pooled taps computed from the raw samples by the (frozen) encoders at every batch."""

    def __init__(self, datasets: Mapping[str, Dataset], x_encoder: StagedEncoder, y_encoder: StagedEncoder,
                 modalities: Sequence[str]):
        self.datasets = dict(datasets)
        self.x_encoder, self.y_encoder = x_encoder.eval(), y_encoder.eval()
        self.modalities = list(modalities)
        self.x_dims = list(x_encoder.stage_channels)
        self.y_dims = list(y_encoder.stage_channels)
        self.x_names = list(x_encoder.stage_names)
        self.y_names = list(y_encoder.stage_names)

    def size(self, split: str) -> int:
        return len(self.datasets[split])

    def _batches(self, split, order, batch_size, needed=None):
        ds = self.datasets[split]
        xm, ym = self.modalities
        for b in range(0, len(order), batch_size):
            batch = _collate([ds[int(i)] for i in order[b:b + batch_size]])
            yield pooled_taps(self.x_encoder, batch[xm]), pooled_taps(self.y_encoder, batch[ym]), batch["label"]


# -- the on-disk cache ------------------------------------------------------------------------------------


def _tap_file(split: str, modality: str, tap: str) -> str:
    return f"{split}/{modality}.{tap}.npy"


def _stored(encoder: StagedEncoder, stages: Sequence[str] | None) -> list[tuple[int, str, int]]:
    """(stage index, name, width) of the stages a cache stores for one encoder, in the encoder's order."""
    wanted = set(stages) if stages else set(encoder.stage_names)
    unknown = wanted - set(encoder.stage_names)
    if unknown:
        raise ValueError(f"feature cache: {type(encoder).__name__} has no stage(s) {sorted(unknown)}")
    return [(i, n, int(c)) for i, (n, c) in enumerate(zip(encoder.stage_names, encoder.stage_channels)) if n in wanted]


def cache_layout(datasets: Mapping[str, Dataset], encoders: Mapping[str, StagedEncoder], modalities: Sequence[str],
                 stages: Mapping[str, Sequence[str] | None] | None = None) -> dict:
    """What a cache holds: split sizes and each modality's stored stages with their widths."""
    return {"version": CACHE_VERSION, "modalities": list(modalities),
            "splits": {s: len(ds) for s, ds in datasets.items()},
            "stages": {m: [[n, c] for _, n, c in _stored(encoders[m], (stages or {}).get(m))] for m in modalities}}


def cache_bytes(layout: dict) -> int:
    """Bytes of the tap arrays of a cache with `layout`: samples × Σ stored widths × 4 (float32)."""
    width = sum(c for m in layout["modalities"] for _, c in layout["stages"][m])
    return sum(layout["splits"].values()) * width * 4


def _partial_dir(cache_dir: Path) -> Path:
    return cache_dir.with_name(cache_dir.name + ".partial")


def _resume_point(partial: Path, layout: dict) -> dict[str, int]:
    """Rows done per split of an interrupted build with the same layout; {} (and a clean folder) otherwise."""
    progress = partial / PROGRESS
    if progress.is_file():
        try:
            saved = json.loads(progress.read_text())
        except json.JSONDecodeError:
            saved = {}
        if saved.get("layout") == layout:
            return {k: int(v) for k, v in saved.get("done", {}).items()}
    shutil.rmtree(partial, ignore_errors=True)
    return {}


def _open_arrays(partial: Path, split: str, n: int, layout: dict, modalities: Sequence[str],
                 label_shape: tuple, label_dtype, resume: bool) -> dict[str, np.ndarray]:
    mode = "r+" if resume else "w+"
    (partial / split).mkdir(parents=True, exist_ok=True)
    arrays = {}
    for m in modalities:
        for name, width in layout["stages"][m]:
            arrays[_tap_file(split, m, name)] = np.lib.format.open_memmap(
                partial / _tap_file(split, m, name), mode=mode, dtype=np.float32, shape=(n, width))
    arrays[f"{split}/labels.npy"] = np.lib.format.open_memmap(partial / f"{split}/labels.npy", mode=mode,
                                                              dtype=label_dtype, shape=(n, *label_shape))
    return arrays


def build_cache(
    cache_dir: str | Path,
    datasets: Mapping[str, Dataset],
    encoders: Mapping[str, StagedEncoder],
    modalities: Sequence[str],
    batch_size: int = 256,
    progress: bool = True,
    stages: Mapping[str, Sequence[str] | None] | None = None,
    stop_after: int | None = None,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
) -> Path:
    """Compute every split's pooled taps once and store them at `cache_dir` (resumably; see the module doc).

    The datasets must give the evaluation view of every split (no random crop): the cache is reused by every
    epoch of every sampled architecture, so a random training crop baked in once would be one fixed crop.
    `stop_after` (tests): stop after that many batches, as a killed build would. `num_workers`: DataLoader processes
    decoding the samples (NTU's videos); `device`: where the encoders run (the features are stored from the CPU)."""
    cache_dir = Path(cache_dir)
    partial = _partial_dir(cache_dir)
    layout = cache_layout(datasets, encoders, modalities, stages)
    done = _resume_point(partial, layout)
    partial.mkdir(parents=True, exist_ok=True)
    stored = {m: _stored(encoders[m], (stages or {}).get(m)) for m in modalities}
    for m in modalities:
        encoders[m].eval()
    batches_run = 0
    for split, ds in datasets.items():
        n, start = len(ds), done.get(split, 0)
        if start >= n and split in done:
            continue
        first = _collate([ds[0]])["label"].numpy() if n else np.zeros(1, dtype=np.int64)
        arrays = _open_arrays(partial, split, n, layout, modalities, first.shape[1:], first.dtype, split in done)
        rows = torch.utils.data.Subset(ds, range(start, n))
        loader = DataLoader(rows, batch_size=batch_size, shuffle=False, collate_fn=_collate, num_workers=num_workers)
        for batch in _progress(loader, f"feature cache: {split} (rows {start}..{n})", progress):
            if stop_after is not None and batches_run >= stop_after:
                raise KeyboardInterrupt(f"feature cache build stopped after {stop_after} batches (test)")
            b = len(batch["label"])
            for m in modalities:
                taps = [t.cpu() for t in pooled_taps(encoders[m], batch[m].to(device))]
                for i, name, _ in stored[m]:
                    arrays[_tap_file(split, m, name)][start:start + b] = taps[i].numpy()
            arrays[f"{split}/labels.npy"][start:start + b] = batch["label"].numpy()
            start += b
            batches_run += 1
            for arr in arrays.values():
                arr.flush()
            done[split] = start  # written after the rows are on disk: a kill loses at most this batch's work
            atomic_write_text(partial / PROGRESS, json.dumps({"layout": layout, "done": done}) + "\n")
        done[split] = n
        atomic_write_text(partial / PROGRESS, json.dumps({"layout": layout, "done": done}) + "\n")
        del arrays
    files = {}
    for split, n in layout["splits"].items():
        for m in modalities:
            for name, width in layout["stages"][m]:
                files[_tap_file(split, m, name)] = [n, width]
        labels = np.load(partial / f"{split}/labels.npy", mmap_mode="r")
        files[f"{split}/labels.npy"] = list(labels.shape)
    manifest = {"version": CACHE_VERSION, "modalities": list(modalities),
                "taps": {m: [name for name, _ in layout["stages"][m]] for m in modalities},
                "splits": layout["splits"], "files": files, "bytes": cache_bytes(layout)}
    atomic_write_text(partial / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    (partial / PROGRESS).unlink(missing_ok=True)
    if cache_dir.exists():  # built meanwhile by another process: keep theirs
        shutil.rmtree(partial)
    else:
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, cache_dir)
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
    names = {}
    for split in splits:
        if split not in manifest.get("splits", {}):
            raise _damaged(cache_dir, f"it has no split {split!r} (has {sorted(manifest.get('splits', {}))})")
        entry = {}
        for key, m in (("x", modalities[0]), ("y", modalities[1])):
            taps = manifest["taps"].get(m)
            if taps is None:
                raise _damaged(cache_dir, f"it has no modality {m!r}")
            names[key] = list(taps)
            entry[key] = [_load_array(cache_dir, _tap_file(split, m, t), manifest) for t in taps]
        entry["labels"] = np.array(_load_array(cache_dir, f"{split}/labels.npy", manifest))
        out[split] = entry
    return CachedFeatures(out, names.get("x"), names.get("y"))


def _load_array(cache_dir: Path, name: str, manifest: dict) -> np.ndarray:
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
    return arr  # memory-mapped, read-only: training passes gather from it (CachedFeatures)


def _progress(iterable, description: str, enabled: bool):
    if not enabled:
        return iterable
    from rich.progress import track

    return track(iterable, description=description, transient=True)
