"""Tables: aggregation from results records, rendering beside the paper, and resuming (SMOKE on fixtures)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from repro import tables
from repro.provenance import canonical_overrides, overrides_identity
from repro.results import write_record
from tests.conftest import REPO_ROOT


def test_mean_and_standard_error():
    mean, se, n = tables.mean_se([0.5, 0.7, 0.9])
    assert (mean, n) == (pytest.approx(0.7), 3)
    assert se == pytest.approx(0.2 / math.sqrt(3))  # sample std 0.2, divided by sqrt(n)
    assert tables.mean_se([0.4])[1] != tables.mean_se([0.4])[1]  # NaN: no error bar from one run


def test_every_table_config_loads_and_names_supported_pairs():
    from repro.config import supported_fusions

    for name in tables.table_names():
        table = tables.load_table(name)
        for row in table.rows:
            # a row may read another dataset than the table's (MESM Table 3: the baselines on the hand-crafted features)
            overrides = tables.raw_overrides(row)
            data = next((o.split("=", 1)[1] for o in overrides if o.startswith("data=")), table.get("data"))
            for override in overrides:
                if override.startswith("fusion="):
                    assert override.split("=", 1)[1] in supported_fusions(data), (name, row.label)


def test_render_from_records_only(tmp_path):
    # Hand-written records (test data, not results): two seeds of the two-stream row of mfas_t2.
    table = tables.load_table("mfas_t2")
    base = tables.table_dir(table, False, tmp_path) / "runs" / "two-stream"
    for seed, acc in ((0, 0.80), (1, 0.90)):
        identity = tables.expected_identity(table, "Two-stream", {"seed": seed}, out_root=tmp_path)
        write_record(base / f"seed_{seed}", {"status": "completed", "protocol": {"select_on": "val"},
                                             "identity": identity, "metrics": {"test": {"acc": acc}}})
    write_record(base / "seed_2", {"status": "failed", "error": "boom", "metrics": {}})
    md = tables.render_table("mfas_t2", out_root=tmp_path)
    row = next(line for line in md.splitlines() if line.startswith("| Two-stream"))
    assert "85.00 ± 5.00 | 87.78 | -2.78 | 2 |" in row  # the failed seed is not counted
    assert "88.38" in md  # the MFAS row (no records yet) still shows the paper's number
    for suffix in (".md", ".tex", ".csv", ".png"):
        assert (tmp_path / "tables" / f"mfas_t2{suffix}").is_file()


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_smoke_table_runs_then_resumes(tmp_path):
    cmd = [sys.executable, "-m", "repro.tables", "run", "mfas_t2", "--smoke", "--rows", "lenet-3-image",
           "--out", str(tmp_path)]
    first = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "3 runs to do" in first.stdout and "SYNTHETIC" in first.stdout
    runs = tmp_path / "tables" / "mfas_t2-smoke" / "runs" / "lenet-3-image"
    record = json.loads((runs / "seed_0" / "results.json").read_text())
    assert record["synthetic"] is True and record["debug"] is False and "seed=0" in record["identity"]["overrides"]
    # An interrupted table: one run's record is gone -> that run is launched again. A record made when the row had
    # other overrides (here: another budget) is stale -> kept aside and re-run, in one line.
    (runs / "seed_1" / "results.json").unlink()
    record["identity"] = overrides_identity(canonical_overrides([*record["identity"]["overrides"],
                                                                 "trainer.max_epochs=7"]))
    write_record(runs / "seed_0", record)
    second = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "2 runs to do" in second.stdout
    stale = [line for line in second.stdout.splitlines() if "is stale" in line]
    assert len(stale) == 1 and stale[0].startswith(
        "[tables] mfas_t2: lenet-3-image/seed_0 is stale (made with [trainer.max_epochs=7] where the row now has "
        "[trainer.max_epochs=1]")
    kept = list((tmp_path / "tables" / "mfas_t2-smoke" / "stale" / "lenet-3-image").glob("seed_0-*/results.json"))
    assert len(kept) == 1  # the old run is kept, not deleted
    assert "| LeNet-3 (image) |" in second.stdout and "| 3 |" in second.stdout


def test_unknown_table_is_one_line(capsys):
    assert tables.main(["render", "no_such_table"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no table 'no_such_table'") and "\n" not in err


def test_table_without_its_dataset_is_not_launched(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path / "no_data_here"))
    assert tables.main(["run", "mfas_t2", "--out", str(tmp_path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    # mfas_t2 needs mfas_t1 (the search its MFAS row trains from): each says why in one line
    assert lines[0].startswith("[tables] mfas_t1: not run — AV-MNIST folder")
    assert lines[-1].startswith("[tables] mfas_t2: not run — AV-MNIST folder")
    assert all(line.startswith("[tables] ") for line in lines) and len(lines) == 3
    assert not (tmp_path / "tables" / "mfas_t2" / "runs").exists()
