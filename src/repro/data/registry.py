"""The dataset registry: every data config (`configs/data/<name>.yaml`) → its reader, format and SYNTHETIC fixture.

A reader class declares what is the same for every dataset it reads (`repro.data.base.Reader`): `data_format`
(one line), `synthetic_mark` (how `load` sets `synthetic`), `path_key` (the config key naming its folder),
`write_fixture` (its SYNTHETIC fixture writer), `fixture_options` and the overrides a run on that fixture needs.
What differs between data configs that share a reader is read off each data config itself (`entry_of`): the
sub-folder of `paths.data_dir` it reads and the values of the reader's `fixture_options` (MulT's `dataset` /
`aligned`). So a new dataset is its reader module and its data config — no entry to add here;
`tests/data/test_registry.py` checks every entry against the composed config.

Users reach it through `python -m repro.data check|fixture` (`repro.data.cli`); tables' SMOKE mode asks it for the
fixture a table names (`smoke.fixture`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from repro.config import available, data_reader_settings
from repro.data.base import DataError, Reader

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


DATA_DIR_PREFIX = "${paths.data_dir}/"


def entry_of(name: str) -> Dataset:
    """configs/data/<name>.yaml's entry, read off the config itself: its reader class (`reader._target_`), the
    sub-folder of `paths.data_dir` its `path_key` names, and the values of the class's `fixture_options`."""
    from hydra.utils import get_class

    settings = data_reader_settings(name)
    reader = get_class(settings["_target_"])
    path = settings.get(reader.path_key.rsplit(".", 1)[1])
    folder = path[len(DATA_DIR_PREFIX):] if isinstance(path, str) and path.startswith(DATA_DIR_PREFIX) else None
    options = {key: settings[key] for key in reader.fixture_options if key in settings}
    return Dataset(name, reader, folder, MappingProxyType(options))


DATASETS: Mapping[str, Dataset] = MappingProxyType({name: entry_of(name) for name in available("data")})


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"no dataset {name!r} in the registry; registered: {', '.join(sorted(DATASETS))}; fix: "
                        f"choose one of those, or add configs/data/{name}.yaml (its reader._target_ names the reader)")
    return DATASETS[name]


def write_fixture(name: str, data_dir: Path) -> Path:
    """Write dataset `name`'s SYNTHETIC fixture where its data config looks under `paths.data_dir=data_dir`."""
    entry = get(name)
    return entry.write_fixture(entry.fixture_folder(data_dir))
