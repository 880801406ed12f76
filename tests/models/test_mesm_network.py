"""MESM (src/repro/models/e2e/, mesm.txt §4.3): forward/backward on a contract-shaped batch, kept sites and attention
maps in the extras, feature FLOPs (dense low level + a·m·n at the kept sites) against hand counts and torch's
FlopCounterMode, fewer FLOPs at lower p, learning on a fixed batch, no gradient to the attention layers (paper Eq. 4),
text required. Random SYNTHETIC batches, tiny ALBERT."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from repro.models.e2e import FE2E, MESM
from repro.models.e2e.flops import dense_macs, sparse_block_macs, subm_pairs
from repro.models.e2e.sparse import SparseVggBlock
from repro.models.e2e.spconv_compat import sparse_indices, spconv_module
from tests.models.test_fe2e import contract_batch, encoders, losses_on_a_fixed_batch

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")
FACE_MACS, CHUNK_MACS = 478_199_808, 837_025_792


def test_forward_backward_extras_and_no_gradient_to_attention():
    torch.manual_seed(0)
    net = MESM(encoders(), 6, top_p=0.5)
    batch = contract_batch()
    out = net(batch)
    assert out.logits.shape == (2, 6)
    for m, frames, sizes in (("video", 3, [(24, 24), (12, 12), (6, 6)]), ("audio", 3, [(64, 16), (32, 8), (16, 4)])):
        for b, size in enumerate(sizes):
            kept, attention = out.extras[f"kept/{m}/{b}"], out.extras[f"attention/{m}/{b}"]
            assert kept.shape == (frames, *size) and kept.dtype == torch.bool
            assert torch.allclose(attention.flatten(1).sum(1), torch.ones(frames), atol=1e-5)
        # nucleus at 0.5 over softmax maps keeps well under all the 24² / 64×16 sites of block 0
        assert 0 < int(out.extras[f"kept/{m}/0"].sum()) < out.extras[f"kept/{m}/0"].numel()
    F.binary_cross_entropy_with_logits(out.logits, batch["label"]).backward()
    no_grad = {n for n, p in net.named_parameters() if p.grad is None}
    # Eq. 4 multiplies by the binary M_ns: the attention only selects (as the authors' code), it gets no gradient
    assert no_grad and all(".cnn.attention." in n for n in no_grad)


def test_feature_flops_count_the_kept_sites():
    torch.manual_seed(1)
    net = MESM(encoders(), 6, top_p=0.5)
    batch = contract_batch(1)
    out = net(batch)
    widths = [(64, 128), (128, 256), (256, 512)]
    expected = torch.zeros(2)
    for m, counts, low in (("video", batch["video_counts"], net.encoders["video"].spec),
                           ("audio", batch["audio_counts"], net.encoders["audio"].spec)):
        owner = torch.repeat_interleave(torch.arange(2), counts)
        per_frame = torch.full((int(counts.sum()),), float(dense_macs(low, "low")))
        for b, (a, c) in enumerate(widths):
            per_frame += subm_pairs(out.extras[f"kept/{m}/{b}"]).float() * (a * c + c * c)
        expected += torch.zeros(2).index_add(0, owner, per_frame)
    assert torch.allclose(out.extras["feature_flops"], expected, rtol=1e-6)
    fe2e = 2 * FACE_MACS + CHUNK_MACS, FACE_MACS + 2 * CHUNK_MACS
    assert all(float(out.extras["feature_flops"][i]) < 0.8 * fe2e[i] for i in range(2))


def test_subm_pairs_hand_count_and_full_map_flops():
    # a 3×3 map with its centre and one corner active: the centre sees both (2), the corner sees both (2)
    active = torch.zeros(1, 3, 3, dtype=torch.bool)
    active[0, 1, 1] = active[0, 0, 0] = True
    assert subm_pairs(active).tolist() == [4]
    # all of an H×W map active: (3H − 2)(3W − 2) pairs (each row / column: 3 per site minus the 2 borders)
    assert subm_pairs(torch.ones(2, 24, 24, dtype=torch.bool)).tolist() == [70 * 70] * 2
    torch.manual_seed(2)
    net = MESM(encoders(), 6, top_p=1.0, modalities=["text", "video"])
    out = net(contract_batch(2))
    low = dense_macs(net.encoders["video"].spec, "low")
    sparse = 70 * 70 * (64 * 128 + 128 * 128) + 34 * 34 * (128 * 256 + 256 * 256) + 16 * 16 * (256 * 512 + 512 * 512)
    assert torch.equal(out.extras["feature_flops"], torch.tensor([2.0, 1.0]) * (low + sparse))
    assert low + sparse < FACE_MACS      # the border sites see fewer active neighbours than z² = 9


def test_sparse_block_macs_equal_flop_counter_on_spconv():
    sp = spconv_module()
    torch.manual_seed(3)
    block = SparseVggBlock(8, 16, "f").eval()
    active = torch.rand(3, 10, 6) < 0.4
    idx = sparse_indices(active)
    x = sp.SparseConvTensor(torch.randn(len(idx), 8), idx, [10, 6], 3)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        block(x)
    assert counter.get_total_flops() == 2 * int(sparse_block_macs(active, 8, 16).sum())


def test_lower_p_keeps_fewer_sites_and_costs_fewer_flops():
    batch = contract_batch(4)
    flops = []
    for p in (0.3, 0.7, 0.9):
        torch.manual_seed(4)
        out = MESM(encoders(), 6, top_p=p)(batch)
        flops.append(float(out.extras["feature_flops"].sum()))
    assert flops[0] < flops[1] < flops[2]


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(5)
    net = MESM(encoders(), 6, top_p=0.7, trans_dropout=0.0)
    losses = losses_on_a_fixed_batch(net, contract_batch(5))
    assert losses[-1] < 0.6 * losses[0], losses


def test_weighted_attention_extension_trains_the_attention_layers():
    torch.manual_seed(6)
    net = MESM(encoders(), 6, top_p=0.7, weight_by_attention=True, modalities=["text", "audio"])
    batch = contract_batch(6)
    F.binary_cross_entropy_with_logits(net(batch).logits, batch["label"]).backward()
    attention = {n: p for n, p in net.named_parameters() if ".cnn.attention." in n}
    # every attention weight gets a gradient; the score bias b_i cancels in the softmax (its gradient is 0)
    assert len(attention) == 3 * 5
    for name, p in attention.items():
        assert p.grad is not None and (float(p.grad.abs().sum()) > 1e-6) != name.endswith("score.bias"), name


def test_dense_reference_at_p1_computes_the_sparse_forward():
    """The dense side of Tables 3/4's wall time is the same function: with every site kept (p = 1) and BN at its
    running statistics, MESM's sparse blocks and their dense reference give the same maps on the same weights."""
    torch.manual_seed(7)
    net = MESM(encoders(), 6, top_p=1.0, modalities=["text", "video"])
    batch = contract_batch(7)
    net(batch)                                  # one training forward: BN running statistics away from (0, 1)
    net.eval()
    cnn = net.encoders["video"].cnn
    queries = torch.randn(batch["video"].shape[0], encoders()["text"].hidden_size)
    with torch.no_grad():
        sparse, _ = cnn(batch["video"], queries)
        dense = cnn.dense_reference(batch["video"])
    assert dense.shape == sparse.shape == (3, 512, 3, 3)
    assert float(dense.abs().max()) > 0.01
    torch.testing.assert_close(dense, sparse, rtol=1e-4, atol=1e-6)


def test_eval_forward_times_the_features_and_the_dense_reference():
    torch.manual_seed(8)
    batch = contract_batch(8)
    fe2e, mesm = FE2E(encoders(), 6, time_dense_reference=True), MESM(encoders(), 6, time_dense_reference=True)
    assert "feature_seconds" not in mesm(batch).extras          # training: autograd would be timed too
    for net in (fe2e.eval(), mesm.eval()):
        with torch.no_grad():
            first, second = net(batch).extras, net(batch).extras    # dense reference after, then before
        for extras in (first, second):
            assert extras["feature_seconds"].dtype == torch.float64
            assert 0 < float(extras["feature_seconds"]) < 60 and 0 < float(extras["dense_feature_seconds"]) < 60
    # FE2E's CNN is the dense one: one measurement for both
    assert float(first["feature_seconds"]) != float(first["dense_feature_seconds"])
    fe2e_extras = fe2e(batch).extras
    assert float(fe2e_extras["feature_seconds"]) == float(fe2e_extras["dense_feature_seconds"])
    with torch.no_grad():
        untimed_reference = MESM(encoders(), 6).eval()(batch).extras
    assert "feature_seconds" in untimed_reference and "dense_feature_seconds" not in untimed_reference


def test_mesm_needs_text():
    with pytest.raises(ValueError, match="needs the text modality"):
        MESM(encoders(), 6, modalities=["audio", "video"])


@pytest.mark.parametrize("backbone", ["iemocap_raw", "mosei_raw"])
@pytest.mark.parametrize("fusion", ["fe2e", "mesm"])
def test_configs_build_the_networks_with_the_presets_text_group(fusion, backbone):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from repro.config import CONFIG_DIR
    from repro.optimization import build_optimizer, optimization_from_config

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(overrides=[f"+fusion={fusion}", f"+backbone={backbone}", "+data.text.tiny=true",
                                 "+data.text.model_dir=null"])
    preset = OmegaConf.load(CONFIG_DIR / "preset" / f"{backbone}_{fusion}.yaml")
    cfg = OmegaConf.merge(cfg, {"fusion": preset.get("fusion", {})})
    torch.manual_seed(7)
    encoders_ = {m: instantiate(c) for m, c in cfg.backbone.encoders.items()}
    net = instantiate(cfg.fusion.net, _convert_="all")(encoders=encoders_, num_classes=6)
    assert type(net).__name__ == fusion.upper()
    if fusion == "mesm":
        assert net.encoders["video"].cnn.top_p == (0.7 if backbone == "iemocap_raw" else 0.5)   # Tables 3 / 4
    optimizer = build_optimizer(list(net.named_parameters()), optimization_from_config(
        OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "optimizer" / "adam.yaml"), preset.optimizer)))
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([5e-5, 5e-6])
    assert len(optimizer.param_groups[1]["params"]) == len(list(net.encoders["text"].parameters()))
    out = net(contract_batch(8))
    assert out.logits.shape == (2, 6) and out.extras["feature_flops"].shape == (2,)
