"""`python -m repro.data check|fixture`: validate a dataset folder as training reads it, or write a SYNTHETIC one.

    python -m repro.data check data=<name> [paths.data_dir=<dir>] [other train.py overrides]
        Composes the data config as `train.py` does, builds its reader and datamodule (so the shape checks against
        `data.modalities` run too), loads every split and prints one JSON object: per split the sample count, the
        first sample's shape and dtype per modality (as the model gets it, and as stored), the label histogram;
        `synthetic`; the folds (count and per-fold sizes) if the reader defines any. Bad data: the reader's
        one-line error on stderr, exit code 1; a bad command line: exit code 2.
    python -m repro.data fixture data=<name> out=<dir>
        Writes the reader's SYNTHETIC fixture into <dir> (the dataset folder itself) and prints the commands that
        check it and train on it. Refuses a folder that holds files but no SYNTHETIC.txt (it may be real data).

Which reader and fixture a data config has comes from `repro.data.registry`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from repro.data import registry
from repro.data.base import DataError, has_synthetic_mark
from repro.data.datamodule import MultimodalDataModule

USAGE = ("usage: python -m repro.data check data=<name> [paths.data_dir=<dir>] [overrides] | "
         "python -m repro.data fixture data=<name> out=<dir>")
HISTOGRAM_BINS = 10  # real-valued labels (sentiment, trait ratings): equal-width bins over their range


class UsageError(ValueError):
    """A bad command line (exit code 2); the message is one line."""


def _option(args: list[str], key: str) -> str | None:
    """Remove `key=value` from `args` (the last one wins) and return the value."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"{key}=")]
    args[:] = [a for a in args if not a.startswith(f"{key}=")]
    return values[-1] if values else None


def _dataset(args: list[str]) -> registry.Dataset:
    name = next((a.split("=", 1)[1] for a in args if a.startswith("data=")), None)
    if not name:
        raise UsageError(f"give data=<name> (registered: {', '.join(sorted(registry.DATASETS))}); {USAGE}")
    try:
        return registry.get(name)
    except DataError as err:
        raise UsageError(str(err)) from None


def _compose(overrides: list[str]):
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from repro.config import ConfigError, check_cli, compose_train

    try:
        check_cli(overrides, pairs=False)
        return compose_train(overrides)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    except (HydraException, OmegaConfBaseException) as err:
        raise UsageError(f"cannot compose {' '.join(overrides)}: {str(err).splitlines()[0]}") from None


def label_histogram(labels) -> dict:
    """Class counts (integer labels; per column for several labels per sample), positives per class (multi-hot),
    or an equal-width histogram of real values (regression targets, all columns together)."""
    y = np.asarray(labels)
    if y.dtype.kind in "iub":
        columns = y.reshape(len(y), -1).T if y.ndim > 1 else [y]
        counts = [{str(v): int(c) for v, c in zip(*np.unique(col, return_counts=True))} for col in columns]
        return {"kind": "classes", "counts": counts[0]} if y.ndim == 1 else {"kind": "classes per column",
                                                                            "counts": counts}
    flat = y.reshape(len(y), -1)
    if flat.shape[1] > 1 and np.isin(flat, (0, 1)).all():
        return {"kind": "multi-hot", "positives": flat.sum(axis=0).astype(int).tolist()}
    finite = flat[np.isfinite(flat)]
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS) if finite.size else (np.zeros(0, int), np.zeros(0))
    return {"kind": "values", "columns": int(flat.shape[1]), "edges": [round(float(e), 4) for e in edges],
            "counts": counts.tolist()}


def split_summary(dataset) -> dict:
    """Sample count, the first sample's tensors (shape, dtype; the stored dtype of each modality), label histogram."""
    first = dataset[0] if len(dataset) else {}
    tensors = {}
    for key, value in first.items():
        if key == "id" or not hasattr(value, "shape"):
            continue
        tensors[key] = {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
        stored = getattr(dataset.arrays.get(key), "dtype", None)
        if stored is not None:
            tensors[key]["stored_dtype"] = str(np.dtype(stored))
    return {"samples": len(dataset), "first_sample": tensors, "labels": label_histogram(dataset.labels)}


def check(args: list[str]) -> dict:
    entry = _dataset(args)
    cfg = _compose(args)
    datamodule = MultimodalDataModule.from_config(cfg, cfg.fold, overrides=args)
    reader = datamodule.reader
    folds = None
    if reader.num_folds > 0:
        datamodule.fold = 0 if cfg.fold is None else int(cfg.fold)  # a fold-less check shows fold 0
        sizes = [{s: len(d) for s, d in reader.load(k).items()} for k in range(reader.num_folds)]
        folds = {"count": reader.num_folds, "shown": datamodule.fold, "sizes": sizes}
    datamodule.setup()  # load + the shape checks against data.modalities, as in training
    source = getattr(reader, "path", None) or getattr(reader, "root", None) or getattr(reader, "data_dir", None)
    return {
        "data": entry.name,
        "reader": f"{type(reader).__module__}.{type(reader).__name__}",
        "format": entry.data_format,
        "source": str(source) if source is not None else "embedded in the package",
        "synthetic": bool(reader.synthetic),
        "folds": folds,
        "splits": {split: split_summary(d) for split, d in datamodule.splits.items()},
    }


def _train_command(entry: registry.Dataset, point: list[str]) -> str:
    from repro.config import DEFAULTS, supported_fusions

    fusions = [f for f in supported_fusions(entry.name) if not f.endswith("_found")]  # *_found need a search first
    fusion = [] if DEFAULTS["fusion"] in fusions or not fusions else [f"fusion={fusions[0]}"]
    return " ".join(["python train.py", f"data={entry.name}", *fusion, *point, *entry.train_overrides])


def fixture(args: list[str]) -> list[str]:
    out = _option(args, "out")
    entry = _dataset(args)
    extra = [a for a in args if not a.startswith("data=")]
    if out is None or extra:
        raise UsageError(f"fixture takes data=<name> out=<dir> only{f', not {extra}' if extra else ''}; {USAGE}")
    folder = Path(out)
    if folder.is_dir() and any(folder.iterdir()) and not has_synthetic_mark(folder):
        raise UsageError(f"{folder} holds files and no SYNTHETIC.txt: expected a new or empty folder (a fixture would "
                         f"overwrite what is there, perhaps real data); fix: choose another out=<dir>")
    entry.write_fixture(folder)
    point = entry.point_at(folder)
    return [f"wrote the SYNTHETIC {entry.name} fixture ({entry.data_format}) to {folder}",
            f"check it:    python -m repro.data check data={entry.name} {' '.join([*point, *entry.train_overrides])}",
            f"train on it: {_train_command(entry, point)}"]


def to_json(summary: dict) -> str:
    """Indented JSON with lists of numbers and strings on one line (shapes, histograms stay readable)."""
    text = json.dumps(summary, indent=2)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args else None
    try:
        if command == "check":
            print(to_json(check(args)))
        elif command == "fixture":
            print("\n".join(fixture(args)))
        else:
            raise UsageError(USAGE)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
