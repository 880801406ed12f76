"""RMFN Table 1 on its SYNTHETIC MOSI fixture end to end (table run → records → render), then RMFN Fig. 3 drawn
from one of its runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from repro.analysis import rmfn_attention
from repro.config import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rmfn_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("rmfn_t1")
    cmd = [sys.executable, "-m", "repro.tables", "run", "rmfn_t1", "--smoke", "--rows", "rmfn", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_rmfn_table_smoke_renders_with_paper_numbers(rmfn_table):
    _, stdout = rmfn_table
    assert "SYNTHETIC" in stdout
    row = next(line for line in stdout.splitlines() if line.startswith("| RMFN |"))
    assert "| 78.4 |" in row and "| 0.922 |" in row and row.rstrip().endswith("| 3 |")


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_rmfn_attention_figure_from_a_run(rmfn_table, tmp_path):
    out, _ = rmfn_table
    run = out / "tables" / "rmfn_t1-smoke" / "runs" / "rmfn" / "seed_0"
    figure = rmfn_attention.main([str(run), "--examples", "0", "2", "--out", str(tmp_path / "fig.png")])
    assert figure.is_file()
    saved = np.load(tmp_path / "fig.npz")
    attention = [saved[k] for k in saved.files if k.endswith("_attention")]
    real = [saved[k] for k in saved.files if k.endswith("_real")]
    assert len(attention) == 2 and attention[0].shape[1] == 3  # (T, K=3 stages, d)
    # every real step's attention is a distribution over the d concatenated hidden units, at every stage
    assert np.allclose(attention[0][real[0]].sum(-1), 1.0, atol=1e-5)


def test_rmfn_attention_refuses_other_runs(tmp_path):
    with pytest.raises(ConfigError, match="no results.json"):
        rmfn_attention.load_run(tmp_path)


def test_rmfn_learns_the_synthetic_mosi_fixture(tmp_path):
    """A real training run of RMFN through `train.run`: on the SYNTHETIC fixture (features = a fixed direction ×
    label + noise) the test predictions must correlate with the labels. A broken recurrence, mask or fusion
    process would leave the correlation near 0."""
    from repro.data.fixtures_cmu import write_mult_pickle
    from repro.results import read_record
    from repro.train import run
    from tests.conftest import compose_train

    write_mult_pickle(root=tmp_path / "data" / "mosi", dataset="mosi", n=(96, 24, 24), T=10)
    overrides = ["data=mosi", "fusion=rmfn", "trainer.max_epochs=8", "data.batch_size=16", "count_flops=false",
                 "data.check_steps=false"]  # the SYNTHETIC fixture is shorter than MOSI
    run(compose_train(overrides, tmp_path / "run", tmp_path / "data"))
    record = read_record(tmp_path / "run" / "results.json")
    assert record["status"] == "completed"
    assert record["metrics"]["test"]["corr"] > 0.8, record["metrics"]["test"]  # 0.998 when written
