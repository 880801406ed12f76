"""Search tables (kind: search) and MFAS Fig. 5 on SYNTHETIC fixtures: MFAS T1 runs search.py per row and
resumes, T6 reads T1's records, the figure draws from them. Smoke budgets: the numbers mean nothing."""

from __future__ import annotations

import json

import pytest

from repro.analysis.search_plots import main as figure_main
from repro.tables import render_table, run_table


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_mfas_t1_smoke_then_t6_and_figure(tmp_path, capsys):
    assert run_table("mfas_t1", smoke=True, out_root=tmp_path) == 0
    runs = tmp_path / "tables" / "mfas_t1-smoke" / "runs"
    assert (runs / "mfas" / "seed_0" / "search.json").is_file()
    assert (runs / "random-search" / "seed_0" / "search.json").is_file()
    assert (tmp_path / "tables" / "mfas_t1-smoke" / "pretrain" / "seed_0" / "audio" / "results.json").is_file()
    record = json.loads((runs / "mfas" / "seed_0" / "search.json").read_text())
    assert record["synthetic"] is True and record["debug"] is False  # the AV-MNIST fixture, detected by the reader
    assert "search.dir" not in " ".join(record["identity"]["overrides"])  # where it writes is not what it is
    md = render_table("mfas_t1", smoke=True, out_root=tmp_path)
    assert "SMOKE" in md and "| MFAS |" in md and "0.9264" in md  # the paper's mean beside ours
    capsys.readouterr()
    assert run_table("mfas_t1", smoke=True, out_root=tmp_path) == 0  # resumes: nothing left to run
    assert "0 runs to do" in capsys.readouterr().out
    t6 = render_table("mfas_t6", smoke=True, out_root=tmp_path)
    row = next(line for line in t6.splitlines() if line.startswith("| AV-MNIST"))
    assert row.split("|")[2:4] == [" 2 ", " 12 "]  # smoke search: 1 iteration × 2 layers = 2 steps; paper 12
    # MFAS T2's MFAS row trains T1's found architectures; `needs` runs T1 first (complete here: nothing to do).
    # `first`: the rank-1 architecture only (3 runs; the top-5 selection is tested on records in test_tables.py)
    row_slug = "mfas-best-of-the-top-5-found-architectures"
    assert run_table("mfas_t2", smoke=True, out_root=tmp_path, rows=[row_slug], selection="first") == 0
    assert (tmp_path / "tables" / "mfas_t2-smoke" / "runs" / row_slug / "fusion-rank_1" / "seed_2").is_dir()
    t2 = render_table("mfas_t2", smoke=True, out_root=tmp_path, selection="first")
    row = next(line for line in t2.splitlines() if line.startswith("| MFAS"))
    assert row.rstrip().endswith("| 3 |")  # 3 seeds trained
    assert "chosen: seed_0 → fusion.rank=1, seed_1 → fusion.rank=1, seed_2 → fusion.rank=1" in t2
    out = tmp_path / "fig.png"
    assert figure_main([str(runs / "mfas" / "seed_0"), str(runs / "random-search" / "seed_0"), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert figure_main([str(tmp_path / "nowhere")]) == 1
