"""Shared fixtures: SYNTHETIC datasets in the real on-disk formats, and Hydra composition helpers."""

from __future__ import annotations

import os

# before torch is imported (by repro below): busy-waiting OpenMP threads slow a shared 2-core run 10-20x
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from repro import config  # noqa: E402
from repro.config import CONFIG_DIR  # noqa: E402
from repro.data.fixtures import write_avmnist, write_folds, write_mmimdb_hdf5  # noqa: E402

REPO_ROOT = CONFIG_DIR.parent


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data_dir with SYNTHETIC avmnist/ (MultiBench layout), avmnist_mfas/, synthetic_folds/ and mmimdb/.

    mmimdb/ holds 24/8/8 train/val/test rows: read it with `mmimdb_split_overrides()` (repro.data.fixtures).
    """
    root = tmp_path_factory.mktemp("data")
    write_avmnist(root / "avmnist", layout="multibench")
    write_avmnist(root / "avmnist_mfas", layout="mfas")
    write_folds(root / "synthetic_folds")
    write_mmimdb_hdf5(root / "mmimdb")
    return root


FAST = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "callbacks=none",
    "count_flops=false",
]


def compose_train(overrides: list[str], output_dir: Path, data_dir: Path | None = None):
    """Compose configs/train.yaml as `python train.py <overrides>` would, with the run dir at output_dir."""
    return config.compose_train(overrides, output_dir=output_dir, data_dir=data_dir, cache_dir=output_dir / "cache")


def load_script(name: str):
    """`scripts/<name>.py` imported as a module (the scripts are not a package), for tests of their `main`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    """torch on one thread for the test, as it was afterwards: small models run faster without thread hand-offs
    on the shared cores (a module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
