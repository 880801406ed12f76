"""MESM's sparse stages (src/repro/models/e2e/): spconv ≡ the masked dense reference (forward and gradients), the
p = 1 sparse blocks ≡ FE2E's dense blocks, nucleus selection on hand-worked probabilities, attention normalisation,
the CPU stream patch and the row-major indices, the stage-0 row-order quirk. All inputs are random (SYNTHETIC)."""

from __future__ import annotations

import pytest
import torch

from repro.models.e2e.attention import segment_softmax
from repro.models.e2e.cnn import DenseFrameCNN, FrameSpec
from repro.models.e2e.masked_dense import masked_dense_path, masked_vgg_block, nucleus_reference
from repro.models.e2e.nucleus import nucleus_keep
from repro.models.e2e.sparse import SparseFrameCNN, SparseVggBlock, dense_weight
from repro.models.e2e.spconv_compat import patch_cpu_stream, sparse_indices, spconv_module

torch.set_num_threads(1)
# spconv 2.3.8 indexes with a list inside .dense(): a torch deprecation warning that is not ours
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")
TOL = 1e-5
# a small frame modality: 16×16 input -> 8×8 low-level maps -> sparse blocks 8² -> 4² -> 2² -> (32, 1, 1)
SMALL = {"in_channels": 3, "size": [16, 16], "stem_channels": 8, "low_blocks": [8], "high_blocks": [16, 24, 32]}


def randomise_bn(module: torch.nn.Module) -> None:
    """BN affine parameters away from (1, 0), so that a mistake in them shows."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def test_sparse_indices_are_row_major_int32_in_frame_y_x_order():
    mask = torch.rand(3, 5, 4, generator=torch.Generator().manual_seed(0)) < 0.4
    idx = sparse_indices(mask)
    assert idx.dtype == torch.int32 and idx.is_contiguous() and idx.stride() == (3, 1)
    expected = [(f, y, x) for f in range(3) for y in range(5) for x in range(4) if mask[f, y, x]]
    assert [tuple(r) for r in idx.tolist()] == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="the patch applies only without CUDA")
def test_cpu_stream_patch_is_idempotent_and_backward_matches_dense_conv():
    import spconv.pytorch.ops as ops

    assert patch_cpu_stream() and patch_cpu_stream()
    getter = ops.get_current_stream
    assert getter() == 0 and patch_cpu_stream() and ops.get_current_stream is getter
    sp = spconv_module()
    torch.manual_seed(1)
    mask = torch.rand(2, 7, 6) < 0.5
    idx = sparse_indices(mask)
    feats = torch.randn(len(idx), 4, requires_grad=True)
    conv = sp.SubMConv2d(4, 5, 3, padding=1, bias=False, indice_key="t")
    out = conv(sp.SparseConvTensor(feats, idx, [7, 6], 2)).dense()
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()

    dense_in = torch.zeros(2, 7, 6, 4)
    dense_in[mask] = feats.detach()
    dense_in = dense_in.permute(0, 3, 1, 2).requires_grad_()
    weight = dense_weight(conv.weight.detach()).clone().requires_grad_()
    m = mask.unsqueeze(1).float()
    ref = torch.nn.functional.conv2d(dense_in * m, weight, padding=1) * m
    (ref * grad_out).sum().backward()
    assert torch.allclose(out, ref, atol=TOL)
    assert torch.allclose(feats.grad, dense_in.grad.permute(0, 2, 3, 1)[mask], atol=TOL)
    assert torch.allclose(dense_weight(conv.weight.grad), weight.grad, atol=TOL)


def test_spconv_block_equals_masked_dense_forward_and_gradients():
    sp = spconv_module()
    torch.manual_seed(2)
    block = SparseVggBlock(6, 10, "b")
    randomise_bn(block)
    mask = torch.rand(3, 8, 6) < 0.35
    x = torch.randn(3, 6, 8, 6)
    idx = sparse_indices(mask)
    feats = x.permute(0, 2, 3, 1)[mask].clone().requires_grad_()
    out = block(sp.SparseConvTensor(feats, idx, [8, 6], 3))
    got = out.dense()
    grad_out = torch.randn_like(got)
    (got * grad_out).sum().backward()
    sparse_grads = [feats.grad.clone()] + [p.grad.clone() for p in block.parameters()]
    block.zero_grad()

    x_ref = x.clone().requires_grad_()
    ref, ref_active = masked_vgg_block(block, x_ref, mask)
    (ref * grad_out).sum().backward()
    active = torch.zeros(3, 4, 3, dtype=torch.bool)
    active[tuple(out.indices.long().t())] = True
    assert torch.equal(active, ref_active)
    assert torch.allclose(got, ref, atol=TOL)
    assert torch.allclose(sparse_grads[0], x_ref.grad.permute(0, 2, 3, 1)[mask], atol=TOL)
    for sparse_grad, p in zip(sparse_grads[1:], block.parameters()):
        assert torch.allclose(sparse_grad, p.grad, atol=TOL)


@pytest.mark.parametrize("weight_by_attention", [False, True])
def test_sparse_path_equals_masked_dense_path(weight_by_attention):
    torch.manual_seed(3)
    cnn = SparseFrameCNN(FrameSpec(**SMALL), query_dim=5, top_p=0.5, attention_k=(4, 6, 8),
                         weight_by_attention=weight_by_attention)
    randomise_bn(cnn)
    low = torch.randn(4, 8, 8, 8)
    queries = torch.randn(4, 5)
    low_sparse, low_ref = low.clone().requires_grad_(), low.clone().requires_grad_()
    out, trace = cnn.sparse_path(low_sparse, queries)
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()
    sparse_grads = {n: p.grad.clone() for n, p in cnn.named_parameters() if p.grad is not None}
    cnn.zero_grad(set_to_none=True)
    ref, kept = masked_dense_path(cnn, low_ref, queries)
    (ref * grad_out).sum().backward()
    ref_grads = {n: p.grad for n, p in cnn.named_parameters() if p.grad is not None}

    assert all(torch.equal(a, b) for a, b in zip(trace.kept, kept))
    assert 0 < int(trace.kept[0].sum()) < trace.kept[0].numel()   # p = 0.5 really drops sites
    assert torch.allclose(out, ref, atol=TOL)
    assert torch.allclose(low_sparse.grad, low_ref.grad, atol=TOL)
    assert sparse_grads.keys() == ref_grads.keys()
    # Eq. 4's binary mask: the attention layers get a gradient only in the weighted extension
    assert any(n.startswith("attention.") for n in ref_grads) == weight_by_attention
    for name, grad in sparse_grads.items():
        assert (grad - ref_grads[name]).abs().max() <= TOL * max(1.0, float(grad.abs().max())), name


def test_sparse_blocks_at_p_1_equal_fe2e_dense_blocks_on_the_same_weights():
    torch.manual_seed(4)
    spec = FrameSpec(**SMALL)
    dense = DenseFrameCNN(spec)
    randomise_bn(dense)
    cnn = SparseFrameCNN(spec, query_dim=5, top_p=1.0, attention_k=(4, 6, 8))
    for sparse_block, dense_block in zip(cnn.sparse, dense.high):
        sparse_block.load_dense(dense_block[0])
    low = torch.randn(5, 8, 8, 8)
    got, trace = cnn.sparse_path(low, torch.randn(5, 5))
    expected = low
    for block in dense.high:
        expected = block(expected)
    assert all(bool(k.all()) for k in trace.kept)
    assert torch.allclose(got, expected, atol=TOL)


def test_nucleus_selection_on_hand_worked_probabilities():
    # frame 0 = sites 0, 2, 4, 6 (0.1, 0.4, 0.3, 0.2), frame 1 = sites 1, 3, 5 (0.5, 0.25, 0.25), interleaved in the
    # site list: the selection must follow the segment ids.
    # p = 0.6: frame 0 sorted 0.4, 0.3, ... cumsum 0.4 < 0.6, 0.7 crosses -> sites 2, 4; frame 1: 0.5 < 0.6, then the
    #          first 0.25 crosses (tie broken by site order) -> sites 1, 3
    # p = 0.5: frame 0 -> sites 2, 4 as above; frame 1: 0.5 is not < 0.5, only the first crossing -> site 1
    probs = torch.tensor([0.1, 0.5, 0.4, 0.25, 0.3, 0.25, 0.2])
    frames = torch.tensor([0, 1, 0, 1, 0, 1, 0])
    assert nucleus_keep(probs, frames, 2, 0.6).tolist() == [False, True, True, True, True, False, False]
    assert nucleus_keep(probs, frames, 2, 0.5).tolist() == [False, True, True, False, True, False, False]
    # p = 0.95: frame 0's first three sum to 0.9 < 0.95, the fourth crosses: all kept; frame 1: 0.5 + 0.25 + 0.25
    assert nucleus_keep(probs, frames, 2, 0.95).all()
    assert nucleus_keep(probs, frames, 2, 1.0).all()
    with pytest.raises(ValueError, match="top_p"):
        nucleus_keep(probs, frames, 2, 0.0)


def test_nucleus_selection_equals_the_per_frame_loop_on_random_maps():
    torch.manual_seed(5)
    probs = torch.softmax(torch.randn(6, 36) * 2, dim=1)
    active = torch.ones(6, 6, 6, dtype=torch.bool)
    frames = torch.arange(6).repeat_interleave(36)
    for p in (0.1, 0.3, 0.5, 0.7, 0.9):
        keep = nucleus_keep(probs.flatten(), frames, 6, p).view(6, 6, 6)
        assert torch.equal(keep, nucleus_reference(probs.view(6, 6, 6), active, p))


def test_attention_softmax_sums_to_one_per_frame():
    torch.manual_seed(6)
    scores = torch.randn(50) * 10
    frames = torch.randint(0, 4, (50,))
    frames[:4] = torch.arange(4)
    probs = segment_softmax(scores, frames, 4)
    assert torch.allclose(torch.zeros(4).index_add(0, frames, probs), torch.ones(4), atol=1e-6)
    assert torch.allclose(probs[frames == 2], torch.softmax(scores[frames == 2], 0), atol=1e-7)
    cnn = SparseFrameCNN(FrameSpec(**SMALL), query_dim=5, top_p=0.6, attention_k=(4, 6, 8))
    _, trace = cnn(torch.randn(3, 3, 16, 16), torch.randn(3, 5))
    for attention, kept in zip(trace.attention, trace.kept):
        assert torch.allclose(attention.flatten(1).sum(1), torch.ones(3), atol=1e-5)
        assert bool(kept.flatten(1).any(1).all())    # every frame keeps at least its top site


def test_stage0_row_order_quirk_pairs_yxn_locations_with_nyx_features():
    """At p = 1 (selection independent of the features) the quirk = the correct path on a low-level map whose site at
    (frame, y, x) holds the feature of rank r in (frame, y, x) order, r the rank of (frame, y, x) in (y, x, frame)."""
    torch.manual_seed(7)
    spec = FrameSpec(**SMALL)
    correct = SparseFrameCNN(spec, query_dim=5, top_p=1.0, attention_k=(4, 6, 8))
    quirk = SparseFrameCNN(spec, query_dim=5, top_p=1.0, attention_k=(4, 6, 8), quirk_stage0_row_order=True)
    quirk.load_state_dict(correct.state_dict())
    low, queries = torch.randn(3, 8, 8, 8), torch.randn(3, 5)
    nyx = low.permute(0, 2, 3, 1).reshape(-1, 8)                       # features in (frame, y, x) order
    yxn_sites = [(f, y, x) for y in range(8) for x in range(8) for f in range(3)]
    moved = torch.zeros_like(low)
    for rank, (f, y, x) in enumerate(yxn_sites):
        moved[f, :, y, x] = nyx[rank]
    got, _ = quirk.sparse_path(low, queries)
    expected, _ = correct.sparse_path(moved, queries)
    assert torch.allclose(got, expected, atol=TOL)
    assert not torch.allclose(got, correct.sparse_path(low, queries)[0], atol=1e-3)
