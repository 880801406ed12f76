"""MESM Fig. 3/4/6 (`python -m repro.analysis.mesm_attention`) on a tiny MESM run trained on the SYNTHETIC
iemocap_raw fixture: the per-emotion kept-site maps equal a per-sample hand computation from the network's own
nucleus masks, and every output says SYNTHETIC."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from repro.analysis import mesm_attention, runs
from repro.data.registry import write_fixture
from repro.results import read_record
from repro.train import run
from tests.conftest import compose_train

pytestmark = pytest.mark.slow  # trains MESM for one epoch (~20 s on 2 cores)


@pytest.fixture(scope="module")
def mesm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mesm_run")
    write_fixture("iemocap_raw", root / "data")
    overrides = ["data=iemocap_raw", "fusion=mesm", "data.text.tiny=true", "data.num_workers=0", "data.batch_size=2",
                 "trainer.max_epochs=1", "callbacks=none"]
    run(compose_train(overrides, root / "run", root / "data"))
    assert read_record(root / "run" / "results.json")["status"] == "completed"
    return root / "run"


def test_maps_equal_a_per_sample_hand_computation(mesm_run, tmp_path):
    paths = mesm_attention.main([str(mesm_run), "--out", str(tmp_path / "mesm_attention")])
    raw, summary = dict(np.load(paths["npz"])), json.loads(paths["json"].read_text())
    assert summary["synthetic"] is True
    cfg, net, datamodule = runs.load_run(mesm_run)
    sums, counts = {}, {}
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            extras = net(batch).extras
            for key in [k for k in extras if k.startswith("kept/")]:
                _, m, b = key.split("/")
                start = 0
                for label, n in zip(batch["label"], batch[f"{m}_counts"].tolist()):
                    frames = extras[key][start:start + n].float()
                    start += n
                    for e in np.flatnonzero(label.numpy()):
                        sums[m, b, e] = sums.get((m, b, e), 0) + frames.sum(0).numpy()
                        counts[m, b, e] = counts.get((m, b, e), 0) + n
    assert {f"{m}_block{b}" for m, b, _ in sums} == set(raw) - {"emotions"}
    for (m, b, e), total in sums.items():
        np.testing.assert_allclose(raw[f"{m}_block{b}"][e], total / counts[m, b, e], atol=1e-6)
    # p = 0.7 keeps a strict subset of the sites, and not almost none of them
    fractions = [f for values in summary["kept_fraction"].values() for f in values]
    assert 0.2 < min(fractions) and max(fractions) < 0.99
