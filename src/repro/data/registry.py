"""The dataset registry: every data config (`configs/data/<name>.yaml`) → its reader, format and SYNTHETIC fixture.

A reader class declares what is the same for every dataset it reads (`repro.data.base.Reader`): `data_format`
(one line), `synthetic_mark` (how `load` sets `synthetic`), `path_key` (the config key naming its folder),
`write_fixture` (its SYNTHETIC fixture writer) and the overrides a run on that fixture needs. An entry here adds
what differs between data configs that share a reader: the sub-folder of `paths.data_dir` the data config reads and
the reader arguments that select the variant (MulT's `dataset` / `aligned`; `tests/data/test_registry.py` checks
both against the composed configs, and that every data config has an entry).

Users reach it through `python -m repro.data check|fixture` (`repro.data.cli`); tables' SMOKE mode asks it for the
fixture a table names (`smoke.fixture`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from repro.data.avmnist import AVDigitsReader, AVMNISTReader
from repro.data.base import DataError, Reader
from repro.data.cmu import MulTPickleReader
from repro.data.mmimdb import MMIMDBReader
from repro.data.msaf_mosei import MSAFMoseiReader
from repro.data.pom import POMReader
from repro.data.synthetic import GroupFoldReader

# The fixture a table without a `smoke.fixture` key reads (the AV-MNIST tables predate the key).
DEFAULT_SMOKE_DATASET = "avmnist"


@dataclass(frozen=True)
class Dataset:
    """One data config's reader. `folder`: the sub-folder of `paths.data_dir` its config reads (None: the config
    reads no folder by default, e.g. the embedded AV-Digits; point `reader.path_key` at one). `options`: the reader
    arguments that select this variant of the format, passed to its fixture writer too."""

    name: str
    reader: type[Reader]
    folder: str | None = None
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def data_format(self) -> str:
        return self.reader.data_format

    @property
    def fixture_overrides(self) -> tuple[str, ...]:
        """Overrides every run on the fixture needs (tables' SMOKE mode adds these)."""
        return tuple(self.reader.fixture_overrides)

    @property
    def train_overrides(self) -> tuple[str, ...]:
        """Everything `python train.py data=<name>` needs besides the folder to read the fixture."""
        return (*self.reader.fixture_overrides, *self.reader.fixture_run_overrides)

    def fixture_folder(self, data_dir: Path) -> Path:
        """Where the fixture goes under a `paths.data_dir`."""
        return Path(data_dir) / (self.folder or self.name)

    def write_fixture(self, folder: Path) -> Path:
        """Write the SYNTHETIC fixture into `folder` (the dataset folder itself); returns it."""
        self.reader.write_fixture(Path(folder), **self.options)
        return Path(folder)

    def point_at(self, folder: Path) -> list[str]:
        """The override that makes the data config read `folder`: `paths.data_dir=<parent>` when the folder has the
        name the config expects, else the reader's own key (`data.reader.root` / `data.reader.data_dir`)."""
        folder = Path(folder)
        if self.folder is not None and folder.name == self.folder:
            return [f"paths.data_dir={folder.parent}"]
        return [f"{self.reader.path_key}={folder}"]


def _entries() -> dict[str, Dataset]:
    entries = [
        Dataset("avdigits", AVDigitsReader),
        Dataset("avdigits_full", AVDigitsReader, "avdigits_full"),
        Dataset("avmnist", AVMNISTReader, "avmnist"),
        Dataset("synthetic_folds", GroupFoldReader, "synthetic_folds"),
        Dataset("mmimdb", MMIMDBReader, "mmimdb"),
        Dataset("pom", POMReader, "pom"),
        Dataset("mosei_msaf", MSAFMoseiReader, "mosei_msaf"),
    ]
    for dataset in ("mosi", "mosei", "iemocap"):  # MulT's pickles: aligned and unaligned share the folder
        entries.append(Dataset(dataset, MulTPickleReader, dataset, MappingProxyType({"dataset": dataset,
                                                                                      "aligned": True})))
        entries.append(Dataset(f"{dataset}_unaligned", MulTPickleReader, dataset,
                               MappingProxyType({"dataset": dataset, "aligned": False})))
    return {e.name: e for e in entries}


DATASETS: Mapping[str, Dataset] = MappingProxyType(_entries())


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"no dataset {name!r} in the registry; registered: {', '.join(sorted(DATASETS))}; fix: "
                        f"choose one of those, or add an entry for configs/data/{name}.yaml to repro.data.registry")
    return DATASETS[name]


def write_fixture(name: str, data_dir: Path) -> Path:
    """Write dataset `name`'s SYNTHETIC fixture where its data config looks under `paths.data_dir=data_dir`."""
    entry = get(name)
    return entry.write_fixture(entry.fixture_folder(data_dir))
