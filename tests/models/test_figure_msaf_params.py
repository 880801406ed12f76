"""scripts/figure_msaf_params.py draws MSAF Fig. 5 into the requested path."""

from __future__ import annotations

import json

from tests.conftest import load_script


def test_figure_script_runs(tmp_path):
    module = load_script("figure_msaf_params")
    out = tmp_path / "figs" / "msaf_params.png"
    module.main(["--out", str(out), "--step", "320"])
    assert out.exists() and out.stat().st_size > 1000
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["channels"] == [64, 384, 704, 1024]
    assert data["msaf_params"][-1] == 330112 and data["mmtm_flops"][-1] == 33554432
