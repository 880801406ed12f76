"""GPU paths (one GPU, bf16 autocast). Skipped cleanly where CUDA is absent, as on CI."""

from __future__ import annotations

import pytest
import torch

from repro.results import read_record
from repro.train import run
from tests.conftest import FAST, compose_train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("fusion", ["concat", "msaf", "mmtm", "centralnet"])
def test_one_gpu_step(fusion, precision, tmp_path, data_dir):
    cfg = compose_train(["data=avmnist", "data.reader.val_size=20", f"fusion={fusion}", "trainer=gpu",
                         f"trainer.precision={precision}", *FAST], tmp_path, data_dir)
    run(cfg)
    record = read_record(tmp_path / "results.json")
    assert record["status"] == "completed" and record["hardware"]["cuda"]
    assert record["peak_memory"]["device"] == "cuda"
