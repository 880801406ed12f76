"""MSAF Table 1 and Fig. 6/7 end to end on the SYNTHETIC RAVDESS fixture (`make table-msaf-t1 SMOKE=1`, then
`python -m repro.analysis.msaf_attention`): the fixture is written in the release's layout and prepared, the unimodal
table runs first, every fusion row starts from its fold's and protocol's unimodal runs, and the render carries the
paper's numbers, the two protocol columns, the parameter counts of the authors' networks and the SYNTHETIC banner.
Slow (about 4 minutes on 2 cores): `make test-full`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

PARAMS_M = {"3D ResNeXt50 (video only)": "25.88", "1D CNN on 13 MFCC (audio only)": "0.03", "Averaging": "25.92",
            "Concat + FC": "26.87", "MCBP": "51.03", "MMTM": "31.79", "MSAF": "25.94"}


@pytest.mark.slow
def test_table1_smoke_then_attention_figure(tmp_path):
    run = subprocess.run([sys.executable, "-m", "repro.tables", "run", "msaf_t1", "--smoke", "--out", str(tmp_path)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    rendered = (tmp_path / "tables" / "msaf_t1-smoke.md").read_text()
    assert "SYNTHETIC" in rendered and "Acc, validation protocol (%)" in rendered
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in rendered.splitlines()
            if line.startswith("| ") and not line.startswith("| Row")}
    assert len(rows) == 9
    for label, params in PARAMS_M.items():
        assert rows[label][4] == params, (label, rows[label])
    assert rows["MSAF"][2] == "74.86"  # the paper's number beside ours
    msaf = tmp_path / "tables" / "msaf_t1-smoke" / "runs" / "msaf"
    record = json.loads((msaf / "fold_0_select_on_val" / "results.json").read_text())
    assert record["synthetic"] is True and record["params"]["total"] == 25_940_724
    # The fusion started from the unimodal run of its own fold and protocol.
    assert record["config"]["backbone"]["init_from"]["video"].endswith(
        "3d-resnext50-video-only/fold_0_select_on_val")

    out = tmp_path / "fig" / "msaf_attention"
    fig = subprocess.run([sys.executable, "-m", "repro.analysis.msaf_attention", str(msaf / "fold_0_select_on_test"),
                          "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert fig.returncode == 0, fig.stderr[-3000:]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["synthetic"] is True
    assert out.with_name("msaf_attention_fig6.png").is_file() and out.with_name("msaf_attention_fig7.png").is_file()
