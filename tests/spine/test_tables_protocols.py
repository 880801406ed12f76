"""Tables over folds × selection protocols (issue 14, MSAF Table 1): repeats over any override, a column per protocol
(`where:`), SMOKE repeats, and the pretrained-unimodal order — a fusion repeat is launched only once the unimodal
runs of the same fold and protocol have completed, never from missing weights."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from repro import tables
from repro.results import write_record

PROTOCOLS = [("test", 0), ("test", 1), ("val", 0), ("val", 1)]


def _record(table, row: str, rep: dict, acc: float, out_root: Path, params: int = 1000, **extra) -> dict:
    """A hand-written completed record (test data, not results) carrying the identity the row expects."""
    return {"status": "completed", "protocol": {"select_on": rep["protocol.select_on"]},
            "identity": tables.expected_identity(table, row, rep, out_root=out_root),
            "metrics": {"test": {"acc": acc}, "checkpoint": None}, "params": {"total": params}, **extra}


def test_repeats_over_folds_and_protocols_name_their_folders():
    table = tables.load_table("msaf_t1")
    grid = tables.repeat_grid(table)
    assert len(grid) == 12 and grid[0] == {"fold": 0, "protocol.select_on": "test"}
    assert {tables.repeat_dirname(r) for r in grid} >= {"fold_0_select_on_test", "fold_5_select_on_val"}
    # SMOKE: the table's smoke.repeats (one fold, both protocols)
    assert [tables.repeat_dirname(r) for r in tables.repeat_grid(table, smoke=True)] == [
        "fold_0_select_on_test", "fold_0_select_on_val"]
    assert tables.repeat_grid(tables.load_table("msaf_t4_ravdess"), smoke=True) == [
        {"fold": 0, "protocol.select_on": "test"}]


def test_train_command_of_a_protocol_repeat_writes_the_folder_the_planner_reads(tmp_path):
    table = tables.load_table("msaf_t1")
    plan = tables.plan_rows(table, False, tmp_path, rows=["msaf"])[0]
    rep = {"fold": 3, "protocol.select_on": "val"}
    cmd = tables.train_command(table, plan, [rep], ["callbacks=none"], None)
    assert "fold=3" in cmd and "protocol.select_on=val" in cmd
    subdir = next(c for c in cmd if c.startswith("hydra.sweep.subdir="))
    # Hydra fills the interpolations from the run's config: the same name as repeat_dirname(rep)
    filled = subdir.split("=", 1)[1].replace("${fold}", "3").replace("${protocol.select_on}", "val")
    assert filled == tables.repeat_dirname(rep) == "fold_3_select_on_val"


def test_protocol_columns_count_only_their_records(tmp_path):
    """Two columns from one metric: the paper's protocol (select_on=test) and the validation protocol."""
    table = tables.load_table("msaf_t1_unimodal")
    row = "3D ResNeXt50 (video only)"
    base = tables.table_dir(table, False, tmp_path) / "runs" / tables.slug(row)
    accs = {("test", 0): 0.60, ("test", 1): 0.70, ("val", 0): 0.50, ("val", 1): 0.52}
    for (protocol, fold), acc in accs.items():
        rep = {"fold": fold, "protocol.select_on": protocol}
        write_record(base / tables.repeat_dirname(rep), _record(table, row, rep, acc, tmp_path, params=25_882_056))
    rows = tables.collect(table, False, tmp_path)
    cells = rows[0]["cells"]
    assert cells["acc"]["values"] == [0.60, 0.70] and cells["acc_val"]["values"] == [0.50, 0.52]
    assert cells["params"]["n"] == 4 and cells["params"]["mean"] == 25_882_056
    md = tables.render_table("msaf_t1_unimodal", out_root=tmp_path)
    assert "| Acc, paper's protocol (%) (ours) | Acc, paper's protocol (%) (paper) | Δ | " \
           "Acc, validation protocol (%) | #params (M) (ours) | #params (M) (paper) | Δ | n |" in md
    line = next(line for line in md.splitlines() if line.startswith("| 3D ResNeXt50"))
    # 65 ± 5 on the paper's protocol (paper 62.99, Δ +2.01); 51 ± 1 on validation; 25.88 M params as the paper
    assert line == ("| 3D ResNeXt50 (video only) | 65.00 ± 5.00 | 62.99 | +2.01 | 51.00 ± 1.00 | 25.88 | 25.88 | +0.00 "
                    "| 4 |")
    assert "checkpoint selected on test, val" in md and " from 4 records made at " in md  # both protocols' runs
    with open(tables.table_dir(table, False, tmp_path).with_suffix(".runs.csv")) as f:
        runs = list(csv.DictReader(f))
    by_repeat = {r["repeat"]: r for r in runs}
    assert by_repeat["fold_0_select_on_val"]["acc"] == "" and by_repeat["fold_0_select_on_val"]["acc_val"] == "0.5"
    assert by_repeat["fold_1_select_on_test"]["acc"] == "0.7" and by_repeat["fold_1_select_on_test"]["acc_val"] == ""


def test_table1_reads_the_unimodal_table_and_refuses_fusion_without_its_weights(tmp_path):
    uni = tables.load_table("msaf_t1_unimodal")
    t1 = tables.load_table("msaf_t1")
    # Nothing pre-trained yet: every fusion repeat is blocked, none is planned to run
    plans = tables.plan_rows(t1, False, tmp_path)
    assert len(plans) == 7 and all(not p.missing and len(p.blocked) == 12 for p in plans)
    rep, problems = plans[-1].blocked[0]
    video_dir = tables.table_dir(uni, False, tmp_path) / "runs" / "3d-resnext50-video-only" / "fold_0_select_on_test"
    assert rep == {"fold": 0, "protocol.select_on": "test"}
    assert problems[0] == f"backbone.init_from.video={video_dir} (no completed run there)"
    # Both unimodal runs of fold 0 / paper's protocol complete (and a failed audio run of fold 0 / val):
    # exactly that repeat becomes runnable for every fusion row
    for row in uni.rows:
        rep = {"fold": 0, "protocol.select_on": "test"}
        folder = tables.table_dir(uni, False, tmp_path) / "runs" / tables.slug(row.label) / tables.repeat_dirname(rep)
        write_record(folder, _record(uni, row.label, rep, 0.5, tmp_path))
    failed = {"fold": 0, "protocol.select_on": "val"}
    write_record(tables.table_dir(uni, False, tmp_path) / "runs" / "1d-cnn-on-13-mfcc-audio-only"
                 / tables.repeat_dirname(failed), {"status": "failed", "error": "boom", "metrics": {}})
    plans = tables.plan_rows(t1, False, tmp_path)
    assert all(p.missing == [{"fold": 0, "protocol.select_on": "test"}] and len(p.blocked) == 11 for p in plans)
    # the unimodal rows of Table 1 are the unimodal table's records (one counted so far for each)
    rows = {r["label"]: r for r in tables.collect(t1, False, tmp_path)}
    assert rows["3D ResNeXt50 (video only)"]["cells"]["acc"]["values"] == [0.5]
    assert rows["MSAF"]["cells"]["acc"]["n"] == 0


def test_a_ckpt_input_is_checked_as_a_file(tmp_path):
    table = tables.load_table("msaf_t1")
    rep = {"fold": 2, "protocol.select_on": "val"}
    given = [f"backbone.init_from.video={tmp_path}/v_${{fold}}_${{protocol.select_on}}.ckpt",
             "backbone.init_from.audio=null"]
    assert tables.pretrained_inputs(table, given, rep, []) == {
        "backbone.init_from.video": f"{tmp_path}/v_2_val.ckpt"}
    assert tables.missing_inputs(table, given, rep, []) == [
        f"backbone.init_from.video={tmp_path}/v_2_val.ckpt (no such checkpoint)"]
    (tmp_path / "v_2_val.ckpt").write_bytes(b"")
    assert tables.missing_inputs(table, given, rep, []) == []
    # a later override wins, as in Hydra: SMOKE extras that null the encoders' sources leave nothing to check
    assert tables.missing_inputs(table, given, {**rep, "fold": 3}, ["backbone.init_from.video=null"]) == []


UNIMODAL = """
title: "test: unimodal pre-training on SYNTHETIC folds"
data: synthetic_folds
repeats: {fold: [0], protocol.select_on: [test, val]}
overrides: [data=synthetic_folds, trainer.max_epochs=1, count_flops=false]
columns:
  - {key: acc, source: metrics.test.acc, where: {protocol.select_on: test}, label: "Acc test-selected"}
  - {key: acc_val, source: metrics.test.acc, where: {protocol.select_on: val}, label: "Acc val-selected"}
rows:
  - {label: "image only", overrides: [fusion=unimodal_image]}
  - {label: "audio only", overrides: [fusion=unimodal_audio]}
smoke: {fixture: synthetic_folds}
"""

FUSION = """
title: "test: fusion from the unimodal runs of the same fold and protocol"
data: synthetic_folds
needs: [t_uni]
repeats: {fold: [0], protocol.select_on: [test, val]}
overrides: [data=synthetic_folds, trainer.max_epochs=1, count_flops=false]
columns:
  - {key: acc, source: metrics.test.acc, where: {protocol.select_on: test}, label: "Acc test-selected"}
  - {key: acc_val, source: metrics.test.acc, where: {protocol.select_on: val}, label: "Acc val-selected"}
rows:
  - {label: "image only", records: "{table:t_uni}/runs/image-only"}
  - label: "MSAF"
    overrides:
      - fusion=msaf
      - "backbone.init_from.image={table:t_uni}/runs/image-only/fold_${fold}_select_on_${protocol.select_on}"
      - "backbone.init_from.audio={table:t_uni}/runs/audio-only/fold_${fold}_select_on_${protocol.select_on}"
smoke: {fixture: synthetic_folds}
"""


@pytest.fixture
def test_tables(tmp_path, monkeypatch):
    """Two tables of this test (a unimodal one and a fusion one that needs it), in a config folder of their own."""
    folder = tmp_path / "configs" / "table"
    folder.mkdir(parents=True)
    (folder / "t_uni.yaml").write_text(UNIMODAL)
    (folder / "t_fuse.yaml").write_text(FUSION)
    monkeypatch.setattr(tables.config, "CONFIG_DIR", tmp_path / "configs")
    return tmp_path / "out"


def test_run_refuses_fusion_when_the_unimodal_runs_failed(test_tables, monkeypatch, capsys):
    """The needed table's runs fail (here: a launcher that writes nothing): no fusion run is launched, one line per
    row names the missing weights, and the runner exits non-zero."""
    launched, real_run = [], subprocess.run

    def fake_run(cmd, *args, **kwargs):
        if str(tables.TRAIN_SCRIPT) not in cmd:  # e.g. platform's `uname -p` when h5py is imported
            return real_run(cmd, *args, **kwargs)
        launched.append(cmd)
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(tables.subprocess, "run", fake_run)
    assert tables.run_table("t_fuse", smoke=True, out_root=test_tables) == 1
    assert launched and all(any(c.startswith("fusion=unimodal_") for c in cmd) for cmd in launched)
    err = [line for line in capsys.readouterr().err.splitlines() if "not run for" in line]
    assert len(err) == 1 and err[0].startswith(
        "[tables] t_fuse: row 'MSAF' not run for ['fold_0_select_on_test', 'fold_0_select_on_val'] — its pretrained "
        "encoders are missing: backbone.init_from.image=") and err[0].endswith("; run t_uni first "
                                                                              "(`python -m repro.tables run <table>`)")


@pytest.mark.slow
def test_smoke_unimodal_then_fusion_per_fold_and_protocol(test_tables):
    """End to end with train.py (~1 min on 2 cores): the needed table trains the unimodal nets per protocol, then the
    fusion runs start from exactly the unimodal run of their own protocol."""
    # the tables live in the test's config folder: the CLI runs in-process so that folder applies (train.py is a
    # subprocess of it, as always)
    assert tables.main(["run", "t_fuse", "--smoke", "--out", str(test_tables)]) == 0
    runs = test_tables / "tables" / "t_fuse-smoke" / "runs" / "msaf"
    for protocol in ("test", "val"):
        record = json.loads((runs / f"fold_0_select_on_{protocol}" / "results.json").read_text())
        assert record["protocol"]["select_on"] == protocol and record["synthetic"] is True
        image_from = record["config"]["backbone"]["init_from"]["image"]
        assert image_from.endswith(f"t_uni-smoke/runs/image-only/fold_0_select_on_{protocol}")
    md = (test_tables / "tables" / "t_fuse-smoke.md").read_text()
    cells = next(line for line in md.splitlines() if line.startswith("| MSAF")).strip("| ").split(" | ")
    assert len(cells) == 4 and "–" not in cells and cells[-1] == "1"  # one run in each protocol's column
    assert float(cells[1]) == pytest.approx(json.loads((runs / "fold_0_select_on_test" / "results.json").read_text())
                                            ["metrics"]["test"]["acc"], abs=0.005)
