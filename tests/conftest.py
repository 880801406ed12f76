"""Shared fixtures: SYNTHETIC datasets in the real on-disk formats, and Hydra composition helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from repro.config import CONFIG_DIR
from repro.data.fixtures import write_avmnist, write_folds

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO_ROOT = CONFIG_DIR.parent


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data_dir with SYNTHETIC avmnist/ (MultiBench layout), avmnist_mfas/ and synthetic_folds/."""
    root = tmp_path_factory.mktemp("data")
    write_avmnist(root / "avmnist", layout="multibench")
    write_avmnist(root / "avmnist_mfas", layout="mfas")
    write_folds(root / "synthetic_folds")
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
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.cache_dir = str(output_dir / "cache")
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
        del cfg.hydra  # a Hydra app hands the task the config without its `hydra` node
    return cfg
