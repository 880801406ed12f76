"""Equation-level tests of the MSAF module (msaf.txt §3, §3.1, §3.2, §5.5 Fig. 5) and of the bare MMTM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repro.models.fusion.costs import fig5_costs
from repro.models.fusion.mmtm import MMTM
from repro.models.fusion.msaf import MSAF, MSAFBlock, segment_bounds


def _randomise_bn(module: torch.nn.Module) -> None:
    """Non-trivial BatchNorm running statistics so that eval mode is not a near-identity."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_shapes_preserved_any_rank_and_sizes():
    msaf = MSAF([12, 6, 20], block_channel=4, reduction=2)
    xs = [torch.randn(3, 12, 5, 7, 2), torch.randn(3, 6, 11), torch.randn(3, 20)]
    outs, att = msaf(xs)
    assert [o.shape for o in outs] == [x.shape for x in xs]
    assert att.shape == (3, 3 + 2 + 5, 4)


def test_attention_sums_to_one_over_blocks_per_channel():
    msaf = MSAF([16, 8], block_channel=4, reduction=2).eval()
    _randomise_bn(msaf)
    _, att = msaf([torch.randn(5, 16, 6, 6), torch.randn(5, 8, 9)])
    assert torch.allclose(att.sum(dim=1), torch.ones(5, 4), atol=1e-6)
    assert (att > 0).all()


def test_equations_by_hand():
    """Eqs. 1-6 recomputed step by step for two modalities, one with a padded last block."""
    c, r = 4, 2
    block = MSAFBlock([6, 8], block_channel=c, reduction=r, lowest_atten=0.3).eval()
    _randomise_bn(block)
    x1, x2 = torch.randn(2, 6, 3, 5), torch.randn(2, 8, 7)
    outs, att = block([x1, x2])
    b1 = F.pad(x1, (0, 0, 0, 0, 0, 2)).view(2, 2, c, 3, 5)  # 6 channels -> 2 blocks, 2 zero channels
    b2 = x2.view(2, 2, c, 7)
    g = b1.sum(1).mean(dim=(2, 3)) + b2.sum(1).mean(dim=2)  # Eq. 1 + sum over modalities
    z = block.joint(g)  # Eq. 2 (+BN, ReLU)
    u = torch.stack([fc(z) for fc in block.highlight], dim=1)  # Eq. 3
    a = torch.exp(u) / torch.exp(u).sum(dim=1, keepdim=True)  # Eq. 4
    assert torch.allclose(att, a, atol=1e-6)
    w = 0.3 + 0.7 * a  # Eq. 5
    y1 = (b1 * w[:, :2, :, None, None]).reshape(2, 8, 3, 5)[:, :6]
    y2 = (b2 * w[:, 2:, :, None]).reshape(2, 8, 7)
    assert torch.allclose(outs[0], y1, atol=1e-6)
    assert torch.allclose(outs[1], y2, atol=1e-6)


def test_lambda_one_is_identity():
    msaf = MSAF([10, 8], block_channel=4, lowest_atten=1.0)
    xs = [torch.randn(4, 10, 5, 5), torch.randn(4, 8, 12)]
    outs, _ = msaf(xs)  # training mode, no BlockDropout
    for o, x in zip(outs, xs):
        assert torch.equal(o, x)


def test_block_dropout_noop_in_eval_and_masks_blocks_in_train():
    msaf = MSAF([8, 8], block_channel=4, block_dropout=0.5)
    xs = [torch.randn(16, 8, 3, 3), torch.randn(16, 8, 5)]
    msaf.eval()
    ref = MSAF([8, 8], block_channel=4, block_dropout=0.0).eval()
    ref.load_state_dict(msaf.state_dict())
    for a, b in zip(msaf(xs)[0], ref(xs)[0]):
        assert torch.equal(a, b)
    # training with lambda = 1: output = mask * input, mask in {0, 1/(1-p)} per sample and block
    msaf = MSAF([8, 8], block_channel=4, block_dropout=0.5, lowest_atten=1.0).train()
    outs, _ = msaf(xs)
    ratio = (outs[0] / xs[0]).view(16, 2, 4, 9)
    per_block = ratio[..., 0, 0]
    assert torch.allclose(ratio, per_block[..., None, None].expand_as(ratio))
    assert set(per_block.unique().tolist()) <= {0.0, 2.0}
    assert 0 < (per_block == 0).float().mean() < 1  # some blocks dropped, some kept, differing per sample


def test_quirk_double_dropout_scales_kept_blocks_twice():
    msaf = MSAF([8, 8], block_channel=4, block_dropout=0.5, lowest_atten=1.0, quirk_double_dropout=True).train()
    xs = [torch.randn(16, 8, 3, 3), torch.randn(16, 8, 5)]
    outs, _ = msaf(xs)
    values = (outs[1] / xs[1]).unique()
    assert set(torch.round(values, decimals=4).tolist()) <= {0.0, 4.0}  # 1/(1-p)^2 = 4


def test_zero_padding_equals_explicitly_padded_input():
    torch.manual_seed(1)
    odd = MSAF([10, 8], block_channel=4).eval()  # 10 channels -> 3 blocks, last one padded by 2
    _randomise_bn(odd)
    even = MSAF([12, 8], block_channel=4).eval()
    even.load_state_dict(odd.state_dict())  # same number of blocks -> same parameter shapes
    x1, x2 = torch.randn(3, 10, 4, 4), torch.randn(3, 8, 6)
    (o1, o2), a_odd = odd([x1, x2])
    (p1, p2), a_even = even([F.pad(x1, (0, 0, 0, 0, 0, 2)), x2])
    assert o1.shape == x1.shape
    assert torch.allclose(o1, p1[:, :10], atol=1e-6)
    assert torch.allclose(p1[:, 10:], torch.zeros_like(p1[:, 10:]))
    assert torch.allclose(o2, p2, atol=1e-6)
    assert torch.allclose(a_odd, a_even, atol=1e-6)


def test_segment_bounds_follow_section_3_2():
    assert [b - a for a, b in segment_bounds(23, 5)] == [4, 4, 4, 4, 7]
    assert segment_bounds(50, 5) == [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)]
    with pytest.raises(ValueError):
        segment_bounds(3, 5)


def test_segments_have_their_own_block():
    q = 5
    msaf = MSAF([8, 4], block_channel=4, reduction=2, split_block=q).eval()
    for blk in msaf.blocks:
        _randomise_bn(blk)
    assert len(msaf.blocks) == q and len({id(b) for b in msaf.blocks}) == q
    xa, xb = torch.randn(2, 8, 23), torch.randn(2, 4, 10)  # different lengths: 4,4,4,4,7 and 2,2,2,2,2
    outs, att = msaf([xa, xb])
    assert outs[0].shape == xa.shape and outs[1].shape == xb.shape
    assert att.shape == (2, q, 3, 4)
    bounds_a, bounds_b = segment_bounds(23, q), segment_bounds(10, q)
    for i, blk in enumerate(msaf.blocks):
        (sa, sb), a_i = blk([xa[:, :, slice(*bounds_a[i])], xb[:, :, slice(*bounds_b[i])]])
        assert torch.allclose(outs[0][:, :, slice(*bounds_a[i])], sa, atol=1e-6)
        assert torch.allclose(outs[1][:, :, slice(*bounds_b[i])], sb, atol=1e-6)
        assert torch.allclose(att[:, i], a_i, atol=1e-6)
    # changing the first segment leaves every other segment's output unchanged
    xa2 = xa.clone()
    xa2[:, :, :4] += 10.0
    outs2, _ = msaf([xa2, xb])
    assert torch.allclose(outs2[0][:, :, 4:], outs[0][:, :, 4:], atol=1e-6)
    assert not torch.allclose(outs2[1][:, :, :2], outs[1][:, :, :2])


def test_mmtm_gates_in_range_and_quirk():
    torch.manual_seed(0)
    paper = MMTM([6, 10], ratio=4)
    quirk = MMTM([6, 10], ratio=4, quirk_plain_sigmoid=True)
    quirk.load_state_dict(paper.state_dict())
    xs = [torch.randn(3, 6, 4, 4), torch.randn(3, 10, 7)]
    (a1, a2), g = paper(xs)
    (b1, b2), gq = quirk(xs)
    assert g.shape == (3, 16) and ((g > 0) & (g < 2)).all()
    assert torch.allclose(g, 2 * gq)
    assert torch.allclose(a1, 2 * b1) and torch.allclose(a2, 2 * b2)
    assert paper.squeeze.out_features == int(2 * 16 / 4)


# --- MSAF Fig. 5 (msaf.txt §5.5): FC FLOPs at batch 4 and parameter counts -------------------------


@pytest.mark.parametrize("channels, msaf_paper, mmtm_paper", [(64, 10.4e3, 131.6e3), (1024, 2.6e6, 33.6e6)])
def test_fig5_flops_match_paper(channels, msaf_paper, mmtm_paper):
    costs = fig5_costs(channels)
    assert costs["msaf_flops"] == pytest.approx(msaf_paper, rel=0.02)
    assert costs["mmtm_flops"] == pytest.approx(mmtm_paper, rel=0.02)


def test_fig5_msaf_params_stay_below_paper_maximum():
    params = [fig5_costs(c)["msaf_params"] for c in range(64, 1025, 64)]
    assert params == sorted(params)
    # "reaching a maximum of 330K parameters": <= 330K as the paper rounds it, within 1% at 1024 channels
    assert max(params) < 330.5e3
    assert params[-1] == pytest.approx(330e3, rel=0.01)
