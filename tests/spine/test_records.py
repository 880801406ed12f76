"""What a results record says about what produced it (repro.provenance), and how tables use it: identity,
debug runs, SYNTHETIC data, stale records kept aside, top-k selection on validation, train-only trait ranges."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from repro import tables
from repro.data.avmnist import AVMNISTReader
from repro.data.fixtures import write_avmnist
from repro.provenance import canonical_overrides, config_hash, identity_mismatch, is_debug, overrides_identity
from repro.results import write_record
from repro.train import resolve_trait_ranges


# -- identity ---------------------------------------------------------------------------------------------
def test_canonical_overrides_are_what_hydra_parses():
    a = canonical_overrides(["+trainer.limit_train_batches=2", "data=avmnist", "x='a b'", "seed=1", "seed=3"])
    b = canonical_overrides(["seed=3", "trainer.limit_train_batches=2", "++x=a b", "data=avmnist"])
    assert a == b == ['data="avmnist"', "seed=3", 'trainer.limit_train_batches=2', 'x="a b"']
    # where files go, which launcher, and labels are not what a run computes
    assert canonical_overrides(["paths.data_dir=/x", "hydra.sweep.dir=/y", "hydra/launcher=joblib",
                                "+tags.row=r", "search.dir=/z", "seed=0"]) == ["seed=0"]
    assert canonical_overrides(["~callbacks"]) == ["~callbacks"]
    with pytest.raises(ValueError, match="sweep"):
        canonical_overrides(["seed=0,1"])


def test_config_hash_ignores_paths_but_not_settings():
    def cfg(root: str, lr: float):
        return OmegaConf.create({"paths": {"data_dir": f"{root}/data", "output_dir": f"{root}/out/run1"},
                                 "data": {"reader": {"root": f"{root}/data/avmnist"}}, "optimizer": {"lr": lr},
                                 "tags": {"row": "x"}})

    assert config_hash(cfg("/home/a", 1e-3)) == config_hash(cfg("/scratch/b", 1e-3))
    assert config_hash(cfg("/home/a", 1e-3)) != config_hash(cfg("/home/a", 1e-4))


def test_identity_mismatch_says_what_differs():
    made = overrides_identity(canonical_overrides(["fusion=concat", "trainer.max_epochs=10", "seed=0"]))
    now = canonical_overrides(["fusion=concat", "trainer.max_epochs=20", "seed=0"])
    why = identity_mismatch({"identity": made}, now)
    assert why == "made with [trainer.max_epochs=10] where the row now has [trainer.max_epochs=20]"
    assert identity_mismatch({"identity": made}, made["overrides"]) is None
    assert identity_mismatch({"identity": made, "debug": True}, made["overrides"]).startswith("a debug record")
    assert identity_mismatch({}, now) == "made before records carried their identity"


@pytest.mark.parametrize(("trainer", "choice", "debug"), [
    ({"max_epochs": 3}, None, False),
    ({"limit_train_batches": 1.0, "limit_val_batches": None}, None, False),  # 1.0 = the whole split
    ({"limit_train_batches": 2}, None, True),  # an int is a number of batches
    ({"limit_test_batches": 0.25}, None, True),
    ({"fast_dev_run": True}, None, True),
    ({"max_epochs": 1}, "fdr", True),
])
def test_debug_runs_are_recognised(trainer, choice, debug):
    assert is_debug(OmegaConf.create({"trainer": trainer}), choice) is debug


# -- records of real runs ----------------------------------------------------------------------------------
def test_avmnist_reader_detects_its_fixture(tmp_path):
    write_avmnist(tmp_path / "avmnist", layout="multibench")
    reader = AVMNISTReader(tmp_path / "avmnist", val_size=20)
    reader.load()
    assert reader.synthetic is True
    (tmp_path / "avmnist" / "SYNTHETIC.txt").unlink()  # the same arrays without the fixture's mark
    reader = AVMNISTReader(tmp_path / "avmnist", val_size=20)
    reader.load()
    assert reader.synthetic is False


def test_fast_dev_run_record_is_synthetic_debug_and_identified(tmp_path, data_dir):
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    out = tmp_path / "run"
    cmd = [sys.executable, "train.py", "data=avmnist", "fusion=concat", "debug=fdr", "logger=csv",
           f"paths.data_dir={data_dir}", f"hydra.run.dir={out}", "data.reader.val_size=20"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "results.json").read_text())
    assert record["status"] == "completed"
    assert record["synthetic"] is True and record["debug"] is True
    assert record["identity"]["overrides"] == ['data="avmnist"', "data.reader.val_size=20", 'debug="fdr"',
                                               'fusion="concat"', 'logger="csv"']
    assert len(record["identity"]["config_hash"]) == 16
    assert set(record["versions"]) >= {"git_commit", "git_dirty"}
    assert "[repro] SYNTHETIC DEBUG avmnist" in done.stdout


# -- tables: stale and debug records, SYNTHETIC banner, selection ---------------------------------------------
def _write(table, row_label: str, run_dir, seed: int, metrics: dict, tmp_path, **extra) -> None:
    identity = tables.expected_identity(table, row_label, {"seed": seed}, out_root=tmp_path)
    write_record(run_dir, {"status": "completed", "protocol": {"select_on": "val"}, "identity": identity,
                           "metrics": metrics, **extra})


def test_render_refuses_debug_and_stale_records(tmp_path):
    table = tables.load_table("mfas_t2")
    base = tables.table_dir(table, False, tmp_path) / "runs" / "two-stream"
    _write(table, "Two-stream", base / "seed_0", 0, {"test": {"acc": 0.80}}, tmp_path, synthetic=False)
    _write(table, "Two-stream", base / "seed_1", 1, {"test": {"acc": 0.99}}, tmp_path, debug=True)  # debug=fdr
    # seed_2: made when the row had another budget
    other = tables.expected_identity(table, "Two-stream", {"seed": 2}, out_root=tmp_path)
    other = overrides_identity(canonical_overrides([*other["overrides"], "trainer.max_epochs=99"]))
    write_record(base / "seed_2", {"status": "completed", "identity": other, "metrics": {"test": {"acc": 0.1}}})
    md = tables.render_table("mfas_t2", out_root=tmp_path)
    row = next(line for line in md.splitlines() if line.startswith("| Two-stream"))
    assert row == "| Two-stream | 80.00 | 87.78 | -7.78 | 1 |"  # only seed 0 counts
    runs = (tmp_path / "tables" / "mfas_t2.runs.csv").read_text().splitlines()
    assert runs[0] == "row,repeat,commit,acc,best_epoch,synthetic"
    assert runs[1:] == ["Two-stream,seed_0,unknown,0.8,,False"]
    assert "- Not counted, row 'Two-stream' seed_1: a debug record" in md
    assert ("- Not counted, row 'Two-stream' seed_2: made with [trainer.max_epochs=99] where the row now has "
            "[trainer.max_epochs=10]") in md
    assert "SYNTHETIC" not in md


def test_one_synthetic_record_gives_the_banner_and_no_delta(tmp_path):
    table = tables.load_table("mfas_t2")
    base = tables.table_dir(table, False, tmp_path) / "runs"
    _write(table, "Two-stream", base / "two-stream" / "seed_0", 0, {"test": {"acc": 0.8}}, tmp_path)
    _write(table, "CentralNet", base / "centralnet" / "seed_0", 0, {"test": {"acc": 0.7}}, tmp_path, synthetic=True)
    md = tables.render_table("mfas_t2", out_root=tmp_path)  # no --smoke flag: the record says it
    assert "> SYNTHETIC: records under this table read SYNTHETIC fixture data" in md
    assert "| Δ |" not in md and "| Two-stream | 80.00 | 87.78 | 1 |" in md


def test_select_row_reports_the_best_candidate_on_validation(tmp_path):
    table = tables.load_table("mfas_t2")
    label = "MFAS (best of the top-5 found architectures)"
    row_dir = tables.table_dir(table, False, tmp_path) / "runs" / tables.slug(label)
    # per seed: (val acc, test acc) of ranks 1..5; the best on validation is rank 3 (seed 0) and rank 1 (seed 1)
    scores = {0: [(0.90, 0.86), (0.91, 0.87), (0.95, 0.80), (0.89, 0.99), (0.70, 0.70)],
              1: [(0.93, 0.88), (0.92, 0.90), (0.90, 0.91), (0.80, 0.80), (0.85, 0.85)]}
    for seed, per_rank in scores.items():
        for rank, (val, test) in enumerate(per_rank, 1):
            _write(table, f"{label} [fusion.rank={rank}]", row_dir / f"fusion-rank_{rank}" / f"seed_{seed}", seed,
                   {"val": {"acc": val}, "test": {"acc": test}}, tmp_path)
    # seed 2: only four of five candidates trained -> not counted yet
    for rank in range(1, 5):
        _write(table, f"{label} [fusion.rank={rank}]", row_dir / f"fusion-rank_{rank}" / "seed_2", 2,
               {"val": {"acc": 0.99}, "test": {"acc": 0.5}}, tmp_path)
    md = tables.render_table("mfas_t2", out_root=tmp_path)
    row = next(line for line in md.splitlines() if line.startswith("| MFAS"))
    assert row.startswith("| MFAS (best of the top-5 found architectures) | 84.00 ± 4.00 | 88.38 |")  # (80 + 88) / 2
    assert "chosen: seed_0 → fusion.rank=3, seed_1 → fusion.rank=1" in md
    assert "not counted yet for seed_2" in md
    first = tables.render_table("mfas_t2", out_root=tmp_path, selection="first")
    row = next(line for line in first.splitlines() if line.startswith("| MFAS"))
    assert "| 74.67 ± 12.35 |" in row  # rank 1 of seeds 0, 1, 2: (86 + 88 + 50) / 3


def test_plan_puts_stale_records_aside_and_reruns_them(tmp_path, capsys):
    table = tables.load_table("mfas_t2")
    base = tables.table_dir(table, False, tmp_path) / "runs" / "two-stream"
    _write(table, "Two-stream", base / "seed_0", 0, {"test": {"acc": 0.8}}, tmp_path)
    other = overrides_identity(canonical_overrides(["fusion=two_stream", "trainer.max_epochs=3", "seed=1"]))
    write_record(base / "seed_1", {"status": "completed", "identity": other, "metrics": {"test": {"acc": 0.1}}})
    plan = next(p for p in tables.plan_rows(table, False, tmp_path) if p.label == "Two-stream")
    assert plan.missing == [{"seed": 1}, {"seed": 2}] and [d.name for d, _ in plan.stale] == ["seed_1"]
    kept = tables.put_aside(table, *plan.stale[0], smoke=False, out_root=tmp_path)
    assert not (base / "seed_1").exists() and json.loads((kept / "results.json").read_text())["identity"] == other
    line = capsys.readouterr().out.strip()
    assert line.startswith("[tables] mfas_t2: two-stream/seed_1 is stale (made with [") and "re-running" in line


# -- POM trait ranges --------------------------------------------------------------------------------------
def test_auto_trait_ranges_come_from_the_train_split_only():
    train = np.array([[1.0, 2.0], [5.4, 4.0], [3.0, 2.6]])
    test = np.array([[7.0, 0.0], [1.0, 6.0]])  # wider: must not widen the classes
    datamodule = SimpleNamespace(setup=lambda: None, splits={"train": SimpleNamespace(labels=train),
                                                             "test": SimpleNamespace(labels=test)})
    cfg = OmegaConf.create({"data": {"trait_ranges": "auto"}})
    assert resolve_trait_ranges(cfg, datamodule) == [[1.0, 5.0], [2.0, 4.0]]
