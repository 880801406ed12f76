"""scripts/figure_msaf_params.py draws MSAF Fig. 5 into the requested path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "figure_msaf_params.py"


def test_figure_script_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("figure_msaf_params", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "figs" / "msaf_params.png"
    module.main(["--out", str(out), "--step", "320"])
    assert out.exists() and out.stat().st_size > 1000
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["channels"] == [64, 384, 704, 1024]
    assert data["msaf_params"][-1] == 330112 and data["mmtm_flops"][-1] == 33554432
