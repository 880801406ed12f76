"""Every (CMU dataset, fusion) pair a preset supports: composes as `train.py` would, reads a batch of the dataset's
SYNTHETIC fixture through its reader and datamodule, and runs one forward/backward step of the task's loss."""

from __future__ import annotations

import pytest
import torch

from repro.config import compose_train, supported_fusions
from repro.data import fixtures_cmu
from repro.data.fixtures_paired import write_paired_mult_pickles
from repro.tables import _write_pom_fixture
from repro.train import build_datamodule, build_net, build_task

CMU_DATA = ("mosi", "mosei", "iemocap", "pom", "mosei_msaf")
PAIRS = [(d, f) for d in CMU_DATA for f in supported_fusions(d)]
UNALIGNED_DATA = ("mosi_unaligned", "mosei_unaligned", "iemocap_unaligned")
UNALIGNED_PAIRS = [(d, f) for d in UNALIGNED_DATA for f in supported_fusions(d)]
SHORT_FIXTURE = "data.check_steps=false"  # the SYNTHETIC fixtures are shorter than the real data
# Table rows name these pairs (configs/table/{msaf_t2,msaf_t4_mosei,rmfn_t*}.yaml).
TABLE_PAIRS = {("mosei_msaf", f) for f in ("unimodal_vision", "unimodal_audio", "unimodal_text", "tfn", "lmf", "msaf")}
TABLE_PAIRS |= {(d, f) for d in ("mosi", "iemocap", "pom") for f in ("ef_lstm", "marn", "rmfn")}
TABLE_PAIRS |= {(d, f) for d in UNALIGNED_DATA for f in ("lf_lstm", "mult", "mica")}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmu_fixtures")
    for dataset in ("mosi", "mosei", "iemocap"):
        fixtures_cmu.write_mult_pickle(root=root / dataset, dataset=dataset, n=(6, 4, 4), T=8)
    fixtures_cmu.write_msaf_mosei(root / "mosei_msaf", n=(6, 4, 4))
    _write_pom_fixture(root)
    return root


@pytest.fixture(scope="module")
def unaligned_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmu_unaligned")
    for dataset in ("mosi", "mosei", "iemocap"):
        write_paired_mult_pickles(root / dataset, dataset=dataset, n=(6, 4, 4))
    return root


def test_every_table_pair_has_a_preset():
    assert TABLE_PAIRS <= set(PAIRS) | set(UNALIGNED_PAIRS)


@pytest.mark.parametrize(("data", "fusion"), PAIRS + UNALIGNED_PAIRS)
def test_pair_trains_one_step(data, fusion, data_dir, unaligned_dir, tmp_path):
    root = unaligned_dir if data.endswith("_unaligned") else data_dir
    cfg = compose_train([f"data={data}", f"fusion={fusion}", "data.batch_size=4", SHORT_FIXTURE],
                        output_dir=tmp_path,
                        data_dir=root)
    torch.manual_seed(0)
    datamodule = build_datamodule(cfg)
    net = build_net(cfg)
    task = build_task(cfg, net, datamodule)
    batch = next(iter(datamodule.train_dataloader()))
    out = net(batch)
    assert out.logits.shape == (4, int(cfg.data.num_classes))
    loss, _ = net.compute_loss(out, task.kind.target(batch["label"]), task.criterion)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_unaligned_late_fusion_lstm_and_early_fusion_refusal(tmp_path):
    """MulT/MICA's baselines read the unaligned pickles: LF-LSTM runs on different lengths per modality; EF-LSTM
    (per-step concatenation) needs aligned data and says so in one line."""
    fixtures_cmu.write_mult_pickle(root=tmp_path / "mosi", dataset="mosi", n=(6, 4, 4), T=6, aligned=False)
    overrides = ["data=mosi", "data.reader.aligned=false", "data.batch_size=4", SHORT_FIXTURE]
    cfg = compose_train([*overrides, "fusion=lf_lstm"], output_dir=tmp_path / "run", data_dir=tmp_path)
    datamodule = build_datamodule(cfg)
    batch = next(iter(datamodule.train_dataloader()))
    assert len({batch[m].shape[1] for m in ("text", "audio", "vision")}) == 3  # three different lengths
    assert build_net(cfg)(batch).logits.shape == (4, 1)
    cfg = compose_train([*overrides, "fusion=ef_lstm"], output_dir=tmp_path / "run", data_dir=tmp_path)
    with pytest.raises(ValueError, match="aligned") as err:
        build_net(cfg)(batch)
    assert "\n" not in str(err.value)
