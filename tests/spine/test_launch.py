"""Multi-process and multirun launches from the real command line (Hydra launchers, DDP on CPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L
import pytest

from repro.results import find_records
from repro.train import build_datamodule, build_net, build_task
from tests.conftest import REPO_ROOT, compose_train
from tests.learnable import CHANCE, LEARN, MARGIN, write_learnable

FAST = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1", "callbacks=none", "count_flops=false", "data=avmnist",
        "data.reader.val_size=20"]


@pytest.fixture(scope="module")
def learnable_dir(tmp_path_factory):
    return write_learnable(tmp_path_factory)


def train_cli(args: list[str], data_dir, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "REPRO_DATA_DIR": str(data_dir)}
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def records(root) -> list[dict]:
    return [r for _, r in find_records(root)]


def test_multirun_basic_launcher_sweeps_fusions_and_seeds(tmp_path, data_dir):
    train_cli(["-m", *FAST, "fusion=late_avg,concat,msaf", "seed=0,1", f"hydra.sweep.dir={tmp_path}"], data_dir)
    found = {(r["fusion"], r["seed"]) for r in records(tmp_path)}
    assert found == {(f, s) for f in ("late_avg", "concat", "msaf") for s in (0, 1)}


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_multirun_joblib_launcher(tmp_path, data_dir):
    train_cli(["-m", *FAST, "fusion=late_avg,concat", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
               f"hydra.sweep.dir={tmp_path}"], data_dir)
    assert {r["fusion"] for r in records(tmp_path)} == {"late_avg", "concat"}


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_submitit_local_launcher(tmp_path, data_dir):
    train_cli(["-m", *FAST, "fusion=concat", "seed=3", "hydra/launcher=submitit_local",
               "hydra.launcher.timeout_min=5", f"hydra.sweep.dir={tmp_path}"], data_dir)
    assert [r["seed"] for r in records(tmp_path)] == [3]


def test_slurm_launcher_config_composes():
    assert (REPO_ROOT / "configs" / "hydra" / "launcher" / "slurm.yaml").is_file()
    proc = subprocess.run([sys.executable, "train.py", "hydra/launcher=slurm", "--cfg", "hydra",
                           "--package", "hydra.launcher"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SlurmLauncher" in proc.stdout and "timeout_min: 240" in proc.stdout


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_ddp_cpu_two_processes_learns_and_tests_like_one_process(tmp_path, learnable_dir):
    """`train.py trainer=ddp_cpu` (2 processes, gloo) learns, and its test metrics are exactly those of testing the
    same checkpoint in one process: the DistributedSampler splits the 40 test samples 20/20 (an even count, so it
    pads nothing) and the metrics sync their states (sums / `cat`) across the processes; the loss is the mean of two
    equal-sized halves. Training itself is not compared: BatchNorm (not synced on CPU) sees half batches."""
    out = tmp_path / "run"
    # concat: its unimodal heads are not in the loss, so this also checks that the DDP strategy finds unused
    # parameters (plain `ddp` stops at the second step)
    overrides = [*LEARN, "fusion=concat"]
    train_cli([*overrides, "trainer=ddp_cpu", f"hydra.run.dir={out}"], learnable_dir)
    (record,) = records(out)
    assert record["status"] == "completed"
    assert record["config"]["trainer"]["devices"] == 2
    assert record["data_sizes"]["test"] % 2 == 0  # else DistributedSampler repeats a sample and the metrics differ
    ddp = record["metrics"]["test"]
    assert ddp["acc"] > CHANCE + MARGIN
    cfg = compose_train(overrides, tmp_path / "one", learnable_dir)
    datamodule = build_datamodule(cfg)
    task = build_task(cfg, build_net(cfg), datamodule)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    results = trainer.test(task, datamodule=datamodule, ckpt_path=record["metrics"]["checkpoint"], verbose=False)
    one = {k.removeprefix("test/"): float(v) for k, v in results[0].items()}
    assert set(one) == set(ddp) >= {"acc", "f1_macro", "loss"}
    assert one == pytest.approx(ddp, abs=1e-6)


@pytest.mark.parametrize("logger", ["tensorboard", "wandb"])
def test_loggers_write_offline(logger, tmp_path, data_dir):
    out = tmp_path / "run"
    env_note = {"WANDB_MODE": "offline"}
    os.environ.update(env_note)
    train_cli([*FAST, f"logger={logger}", "fusion=concat", f"hydra.run.dir={out}"], data_dir)
    written = {p.name for p in out.rglob("*")}
    if logger == "tensorboard":
        assert any(name.startswith("events.out.tfevents") for name in written)
    else:
        assert any(name.startswith("offline-run") for name in written)


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_optuna_sweep_optimises_the_returned_metric(tmp_path, data_dir):
    train_cli(["-m", *FAST, "fusion=concat", "hparams_search=avdigits_optuna", "hydra.sweeper.n_trials=2",
               "hydra.sweeper.sampler.n_startup_trials=1", f"hydra.sweep.dir={tmp_path}"], data_dir)
    assert len(records(tmp_path)) == 2
    assert (tmp_path / "optimization_results.yaml").is_file()
