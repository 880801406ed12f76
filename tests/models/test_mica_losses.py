"""MICA §3.4 alignment losses (chunked MMD, PEA selection / propagation / loss) on small SYNTHETIC random tensors."""

from __future__ import annotations

import math

import pytest
import torch

from repro.models.sequence import mica_losses as alignment
from repro.models.sequence.mica_losses import (
    DEFAULT_BANDWIDTH_MULTIPLIERS,
    chunked_kernel_sum,
    doubling_ladder,
    gaussian_kernel_bandwidths,
    kernel_blocks,
    kth_largest,
    mean_pairwise_squared_distance,
    mmd_loss,
    pea_loss,
    pea_loss_from_products,
    pea_selection,
    propagate,
    selection_products,
    sorted_selection,
    top_k_per_row,
)


def naive_kernel_mean(x, y, sigmas):
    """Full-matrix mean over pairs of mean_b exp(-|x - y|^2 / (2 sigma_b^2))."""
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return torch.stack([torch.exp(-d2 / (2 * s ** 2)) for s in sigmas]).mean(0).mean()


def naive_mmd(source, target, source_mask, target_mask, sigmas):
    s, t = source[source_mask], target[target_mask]
    return naive_kernel_mean(s, s, sigmas) + naive_kernel_mean(t, t, sigmas) - 2 * naive_kernel_mean(s, t, sigmas)


def random_masks(generator, batch, steps, min_real=1):
    lengths = torch.randint(min_real, steps + 1, (batch,), generator=generator)
    return torch.arange(steps)[None, :] >= (steps - lengths)[:, None]  # left-padded, as in the CMU releases


@pytest.fixture
def sequences():
    g = torch.Generator().manual_seed(0)
    source = torch.randn(3, 7, 4, generator=g, dtype=torch.float64)
    target = torch.randn(3, 5, 4, generator=g, dtype=torch.float64) + 0.5
    return source, target, random_masks(g, 3, 7), random_masks(g, 3, 5)


# --------------------------------------------------------------------------------------------------------- MMD
@pytest.mark.parametrize("chunk", [1, 3, 5, 2048])
def test_mmd_matches_naive_full_matrix(sequences, chunk):
    source, target, source_mask, target_mask = sequences
    sigmas = [0.5, 1.0, 3.0]
    expected = naive_mmd(source, target, source_mask, target_mask, sigmas)
    got = mmd_loss(source, target, source_mask, target_mask, bandwidths=sigmas, chunk=chunk)
    assert got.shape == ()
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk", [2, 4, 100])
def test_mmd_default_bandwidths_and_gradient_match_naive(sequences, chunk):
    source, target, source_mask, target_mask = sequences
    source, target = source.clone().requires_grad_(), target.clone().requires_grad_()
    sigmas = gaussian_kernel_bandwidths(source[source_mask], target[target_mask])
    naive = naive_mmd(source, target, source_mask, target_mask, sigmas.tolist())
    naive_grads = torch.autograd.grad(naive, (source, target))
    got = mmd_loss(source, target, source_mask, target_mask, chunk=chunk)
    grads = torch.autograd.grad(got, (source, target))
    torch.testing.assert_close(got, naive.detach(), rtol=1e-10, atol=1e-12)
    for g, n in zip(grads, naive_grads):
        torch.testing.assert_close(g, n, rtol=1e-8, atol=1e-12)
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0


def test_chunked_kernel_sum_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    sigmas = torch.tensor([0.7, 2.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: chunked_kernel_sum(a, b, sigmas, 2), (x, y))
    assert torch.autograd.gradcheck(lambda a: chunked_kernel_sum(a, None, sigmas, 2), (x,))


def test_default_bandwidths_follow_the_documented_ladder():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    pooled = torch.cat([s, t])
    mean_d2 = ((pooled[:, None] - pooled[None]) ** 2).sum(-1).sum() / (10 * 9)  # distinct pairs only
    torch.testing.assert_close(mean_pairwise_squared_distance(pooled), mean_d2)
    sigmas = gaussian_kernel_bandwidths(s, t)
    expected = torch.tensor([math.sqrt(m * mean_d2.item() / 2) for m in DEFAULT_BANDWIDTH_MULTIPLIERS],
                            dtype=torch.float64)
    torch.testing.assert_close(sigmas, expected)
    assert not sigmas.requires_grad


def test_mmd_zero_for_identical_and_grows_with_mean_shift():
    g = torch.Generator().manual_seed(3)
    base = torch.randn(4, 30, 6, generator=g)
    assert abs(mmd_loss(base, base.clone(), None, None).item()) < 1e-5
    sigmas = [1.0, 2.0, 4.0]  # fixed bandwidths so the kernel does not rescale with the shift
    losses = [mmd_loss(base, base + shift, None, None, bandwidths=sigmas, chunk=17).item()
              for shift in (0.0, 0.3, 1.0, 3.0)]
    assert abs(losses[0]) < 1e-5
    assert losses[0] < losses[1] < losses[2] < losses[3]


def test_mmd_ignores_padded_values(sequences):
    source, target, source_mask, target_mask = sequences
    before = mmd_loss(source, target, source_mask, target_mask, chunk=3)
    noisy_source = torch.where(source_mask[..., None], source, torch.full_like(source, 1e3))
    noisy_target = torch.where(target_mask[..., None], target, torch.full_like(target, -7.0))
    after = mmd_loss(noisy_source, noisy_target, source_mask, target_mask, chunk=3)
    torch.testing.assert_close(after, before)
    with_pads = mmd_loss(noisy_source, noisy_target, None, None, chunk=3)
    assert not torch.isclose(with_pads, before)


def test_mmd_folds_heads_into_features(sequences):
    source, target, source_mask, target_mask = sequences  # d = 4 = 2 heads x d_k 2
    per_head_source = source.reshape(3, 7, 2, 2).permute(0, 2, 1, 3)
    per_head_target = target.reshape(3, 5, 2, 2).permute(0, 2, 1, 3)
    torch.testing.assert_close(mmd_loss(per_head_source, per_head_target, source_mask, target_mask),
                               mmd_loss(source, target, source_mask, target_mask))


def test_kernel_blocks_cover_matrix_and_respect_chunk():
    n, m, chunk = 6000, 1300, 1024
    covered = torch.zeros(n, m, dtype=torch.int32)
    for rows, cols, factor in kernel_blocks(n, m, chunk, symmetric=False):
        assert (rows.stop - rows.start) <= chunk and (cols.stop - cols.start) <= chunk and factor == 1.0
        covered[rows, cols] += 1
    assert bool((covered == 1).all())
    weight = torch.zeros(n, n)
    for rows, cols, factor in kernel_blocks(n, n, chunk, symmetric=True):
        assert (rows.stop - rows.start) <= chunk and (cols.stop - cols.start) <= chunk
        weight[rows, cols] += factor
    assert weight.sum().item() == n * n  # upper blocks twice + diagonal blocks once = every (i, j) once


def test_mmd_memory_bounded_by_chunk(monkeypatch):
    """n = 6000 elements of d = 40 with chunk 1024: no squared-distance block (forward or backward) exceeds chunk²."""
    import repro.models.sequence.mica_losses as alignment

    largest = []
    original = alignment._block_squared_distances

    def recording(x, y):
        out = original(x, y)
        largest.append(out.numel())
        return out

    monkeypatch.setattr(alignment, "_block_squared_distances", recording)
    g = torch.Generator().manual_seed(4)
    source = torch.randn(12, 500, 40, generator=g, requires_grad=True)  # n_s = 6000
    target = torch.randn(12, 50, 40, generator=g, requires_grad=True)
    loss = mmd_loss(source, target, None, None, chunk=1024)
    loss.backward()
    assert max(largest) <= 1024 * 1024
    assert len(largest) == 2 * (21 + 1 + 6)  # forward + backward: 21 upper ss blocks, 1 tt block, 6 st blocks
    assert source.grad is not None and source.grad.abs().sum() > 0


@pytest.mark.parametrize("bad, message", [([], "bandwidths is empty"), ([1.0, -2.0], "must be finite and > 0")])
def test_mmd_bad_bandwidths(sequences, bad, message):
    source, target, source_mask, target_mask = sequences
    with pytest.raises(ValueError, match=message):
        mmd_loss(source, target, source_mask, target_mask, bandwidths=bad)


@pytest.mark.parametrize("side", ["source", "target"])
def test_mmd_all_pad_side(sequences, side):
    source, target, source_mask, target_mask = sequences
    masks = {"source_mask": source_mask, "target_mask": target_mask}
    masks[f"{side}_mask"] = torch.zeros_like(masks[f"{side}_mask"])
    with pytest.raises(ValueError, match=f"{side} has no real element"):
        mmd_loss(source, target, **masks)


# ---------------------------------------------------------------------------------------------- PEA selection
def random_attention(generator, batch, heads, target_len, source_len, source_mask):
    logits = torch.randn(batch, heads, target_len, source_len, generator=generator)
    logits = logits.masked_fill(~source_mask[:, None, None, :], float("-inf"))
    return logits.softmax(-1)


@pytest.mark.parametrize("tau", [0.05, 0.3, 0.7, 1.0])
def test_pea_selection_picks_top_k_real_pairs(tau):
    g = torch.Generator().manual_seed(5)
    target_mask, source_mask = random_masks(g, 4, 6), random_masks(g, 4, 9)
    attention = random_attention(g, 4, 3, 6, 9, source_mask)
    selected = pea_selection(attention, target_mask, source_mask, tau)
    assert selected.dtype == torch.bool and selected.shape == attention.shape
    real = target_mask[:, None, :, None] & source_mask[:, None, None, :]
    assert not bool((selected & ~real).any())  # pads never selected
    for b in range(4):
        k = math.ceil(round(tau * int(target_mask[b].sum()) * int(source_mask[b].sum()), 9))
        for h in range(3):
            assert int(selected[b, h].sum()) == k
            real_values = attention[b, h][real[b, 0]]
            kept = attention[b, h][selected[b, h]]
            dropped = attention[b, h][real[b, 0] & ~selected[b, h]]
            assert kept.numel() == k and real_values.numel() >= k
            if dropped.numel():
                assert kept.min() >= dropped.max()  # the largest ones


def test_pea_selection_hand_example_and_ties():
    attention = torch.tensor([[[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]]])  # (B=1, T_t=2, T_s=3), no head axis
    selected = pea_selection(attention, None, None, tau=0.5)  # k = ceil(0.5 * 6) = 3
    # 0.6, 0.5, 0.3 are the top 3
    assert selected.tolist() == [[[True, True, False], [False, False, True]]]
    # ties at gamma = 0.2: k = ceil(0.67 * 6) = 5 keeps the earlier 0.2 in row-major order
    selected = pea_selection(attention, None, None, tau=0.67)
    assert selected.tolist() == [[[True, True, True], [True, False, True]]]
    # a padded source step (column 0) and target step (row 1): real pairs = 1 x 2, k = ceil(0.5 * 2) = 1
    selected = pea_selection(attention, torch.tensor([[True, False]]), torch.tensor([[False, True, True]]), 0.5)
    assert selected.tolist() == [[[False, True, False], [False, False, False]]]


def test_pea_selection_has_no_gradient():
    attention = torch.rand(2, 2, 3, 4, requires_grad=True)
    selected = pea_selection(attention, None, None, 0.3)
    assert not selected.requires_grad


@pytest.mark.parametrize("tau", [0.0, 1.5, -0.1, float("nan")])
def test_pea_selection_bad_tau(tau):
    with pytest.raises(ValueError, match="tau must be in \\(0, 1\\]"):
        pea_selection(torch.rand(1, 2, 3), None, None, tau)


# ------------------------------------------------------------------------------------------------- propagation
def test_propagate_is_union_and_monotone():
    g = torch.Generator().manual_seed(6)
    layers = [torch.rand(2, 3, 4, 5, generator=g) > 0.8 for _ in range(4)]
    union = None
    history = []
    for w in layers:
        union = propagate(union, w)
        history.append(union)
    assert torch.equal(history[0], layers[0])  # V[0] = W[0]
    assert torch.equal(history[-1], layers[0] | layers[1] | layers[2] | layers[3])
    for earlier, later in zip(history, history[1:]):
        assert bool((later | earlier).eq(later).all())  # monotone: V[i-1] ⊆ V[i]
        assert later.sum() >= earlier.sum()
    with pytest.raises(ValueError, match="same \\(B, H, T_t, T_s\\)"):
        propagate(layers[0], layers[1][:, :, :3])


# ---------------------------------------------------------------------------------------------------- PEA loss
def random_pea_inputs(seed, batch, heads, target_len, source_len, d_k, drop):
    """SYNTHETIC float64 queries/keys (with gradients) and a random bool selection (density 1 − drop)."""
    g = torch.Generator().manual_seed(seed)
    queries = torch.randn(batch, heads, target_len, d_k, generator=g, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(batch, heads, source_len, d_k, generator=g, dtype=torch.float64, requires_grad=True)
    return queries, keys, torch.rand(batch, heads, target_len, source_len, generator=g) > drop


def test_pea_loss_matches_naive_double_loop_and_reaches_q_and_k():
    batch, heads, target_len, source_len, d_k = 2, 3, 4, 5, 2
    queries, keys, weights = random_pea_inputs(7, batch, heads, target_len, source_len, d_k, 0.6)
    expected = torch.zeros((), dtype=torch.float64)
    for j in range(batch):
        for h in range(heads):
            for n in range(target_len):
                for m in range(source_len):
                    if weights[j, h, n, m]:
                        expected = expected + ((queries[j, h, n] - keys[j, h, m]) ** 2).sum()
    expected = expected / batch  # mean over samples
    got = pea_loss(queries, keys, weights)
    torch.testing.assert_close(got, expected)
    grad_q, grad_k = torch.autograd.grad(got, (queries, keys))
    naive_q, naive_k = torch.autograd.grad(expected, (queries, keys))
    torch.testing.assert_close(grad_q, naive_q)
    torch.testing.assert_close(grad_k, naive_k)
    assert grad_q.abs().sum() > 0 and grad_k.abs().sum() > 0


def test_pea_loss_hand_value_and_shape_error():
    queries = torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]])  # (1, 1, 2, 2)
    keys = torch.tensor([[[[3.0, 4.0]]]])  # (1, 1, 1, 2)
    weights = torch.tensor([[[[True], [True]]]])
    assert pea_loss(queries, keys, weights).item() == pytest.approx(25.0 + 13.0)
    with pytest.raises(ValueError, match="weights \\(B, H, T_t, T_s\\)"):
        pea_loss(queries, keys, weights[..., :1, :])


def test_mmd_half_precision_inputs_are_computed_in_float32(sequences):
    source, target, source_mask, target_mask = sequences
    reference = mmd_loss(source.float(), target.float(), source_mask, target_mask)
    half_source = source.bfloat16().requires_grad_()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = mmd_loss(half_source, target.bfloat16(), source_mask, target_mask)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, reference, rtol=0.05, atol=2e-3)  # only the bf16 rounding of the inputs
    got.backward()
    assert half_source.grad is not None and half_source.grad.dtype == torch.bfloat16


def test_pea_loss_pairs_reduction_is_the_mean_over_selected_pairs():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 6, 5)
    w = torch.rand(2, 3, 4, 6) > 0.6
    naive = [sum(float(((q[b, h, n] - k[b, h, m]) ** 2).sum()) for h in range(3) for n in range(4) for m in range(6)
                 if w[b, h, n, m]) / int(w[b].sum()) for b in range(2)]
    got = pea_loss(q, k, w, reduction="pairs")
    assert float(got) == pytest.approx(sum(naive) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        pea_loss(q, k, w, reduction="mean")


# ------------------------------------------------------------------------- cost: references of the old formulas
def reference_pea_loss(queries, keys, weights):
    """The former formula: V as a float (B, H, T_t, T_s) tensor inside autograd (keeps it for backward)."""
    v = weights.to(queries.dtype)
    rows, cols = v.sum(-1), v.sum(-2)
    return ((rows * queries.pow(2).sum(-1)).sum(dim=(1, 2)) + (cols * keys.pow(2).sum(-1)).sum(dim=(1, 2))
            - 2 * (queries * (v @ keys)).sum(dim=(1, 2, 3))).mean()


def saved_tensor_sizes(function):
    """Run `function` and return the numel of every tensor autograd saved for backward."""
    sizes = []

    def pack(tensor):
        sizes.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = function()
    return result, sizes


def test_pea_loss_equals_reference_and_saves_no_pairwise_tensor():
    batch, heads, target_len, source_len = 2, 3, 20, 30
    queries, keys, weights = random_pea_inputs(8, batch, heads, target_len, source_len, 2, 0.7)
    expected, reference_sizes = saved_tensor_sizes(lambda: reference_pea_loss(queries, keys, weights))
    got, sizes = saved_tensor_sizes(lambda: pea_loss(queries, keys, weights))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)
    grads, reference_grads = (torch.autograd.grad(loss, (queries, keys)) for loss in (got, expected))
    for grad, reference in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(grad, reference, rtol=1e-12, atol=1e-10)
    assert max(reference_sizes) == batch * heads * target_len * source_len  # the old formula kept V
    assert sizes and max(sizes) < target_len * source_len  # now only (B, H, T, d_k)-sized tensors


def test_pea_loss_products_in_chunks_equal_one_pass():
    g = torch.Generator().manual_seed(9)
    queries, keys = torch.randn(5, 2, 4, 3, generator=g), torch.randn(5, 2, 6, 3, generator=g)
    weights = torch.rand(5, 2, 4, 6, generator=g) > 0.5
    whole, chunked = selection_products(weights, queries, keys), selection_products(weights, queries, keys, 1)
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(whole.selected_keys, weights.float() @ keys)
    torch.testing.assert_close(whole.selected_queries, weights.float().transpose(-1, -2) @ queries)
    torch.testing.assert_close(pea_loss_from_products(queries, keys, whole, "pairs"),
                               pea_loss(queries, keys, weights, "pairs"))


@pytest.mark.parametrize("tau", [0.01, 0.25, 0.3, 0.9, 1.0])
def test_pea_selection_equals_sort_reference_on_random_and_padded_inputs(tau):
    g = torch.Generator().manual_seed(10)
    target_mask, source_mask = random_masks(g, 6, 7), random_masks(g, 6, 11)
    target_mask[2] = False  # an all-padding target (k = 0)
    source_mask[4] = False  # an all-padding source (k = 0)
    attention = random_attention(g, 6, 3, 7, 11, source_mask | ~source_mask.any(1, keepdim=True))
    selected = pea_selection(attention, target_mask, source_mask, tau)
    assert torch.equal(selected, sorted_selection(attention, target_mask, source_mask, tau))
    assert not bool(selected[2].any()) and not bool(selected[4].any())


@pytest.mark.parametrize("tau", [0.1, 0.3, 0.5, 0.77])
def test_pea_selection_equals_sort_reference_with_many_ties(tau):
    g = torch.Generator().manual_seed(11)
    target_mask, source_mask = random_masks(g, 5, 6, min_real=2), random_masks(g, 5, 8)
    attention = torch.randint(0, 4, (5, 4, 6, 8), generator=g).float() / 4  # 4 distinct values: ties everywhere
    attention[1, 2] = 0.5  # a whole matrix tied
    selected = pea_selection(attention, target_mask, source_mask, tau)
    assert torch.equal(selected, sorted_selection(attention, target_mask, source_mask, tau))
    # no masks and a 3-D input take the same path
    flat = attention[:, 0]
    assert torch.equal(pea_selection(flat, None, None, tau),
                       sorted_selection(flat[:, None], torch.ones(5, 6, dtype=torch.bool),
                                           torch.ones(5, 8, dtype=torch.bool), tau)[:, 0])


@pytest.mark.parametrize("tau", [0.05, 0.3, 1.0])
def test_pea_selection_methods_agree(tau):
    """The CPU default (bracket) and the CUDA default (sort) give the same selection, 3-D input included."""
    g = torch.Generator().manual_seed(12)
    target_mask, source_mask = random_masks(g, 4, 9), random_masks(g, 4, 13)
    target_mask[3] = False
    attention = random_attention(g, 4, 2, 9, 13, source_mask)
    bracket = pea_selection(attention, target_mask, source_mask, tau, method="bracket")
    assert torch.equal(bracket, pea_selection(attention, target_mask, source_mask, tau, method="sort"))
    assert torch.equal(bracket, pea_selection(attention, target_mask, source_mask, tau))  # auto on CPU
    assert torch.equal(pea_selection(attention[:, 0], target_mask, source_mask, tau, method="sort"), bracket[:, 0])
    with pytest.raises(ValueError, match="method must be one of"):
        pea_selection(attention, None, None, tau, method="heap")


def test_top_k_per_row_keeps_the_earliest_ties():
    rows = torch.tensor([[0.1, 0.5, 0.5, 0.2, 0.5], [3.0, 1.0, 2.0, 1.0, 0.0]])
    assert top_k_per_row(rows, 2).tolist() == [[False, True, True, False, False], [True, False, True, False, False]]
    assert top_k_per_row(rows, 4).tolist() == [[False, True, True, True, True], [True, True, True, True, False]]


def test_top_k_per_row_accepts_pads_at_minus_infinity():
    rows = torch.tensor([[float("-inf"), 0.2, 0.1, float("-inf")]])
    assert top_k_per_row(rows, 2).tolist() == [[False, True, True, False]]


# rows longer than 8 x SELECTION_SAMPLE take the sampled-bracket path of kth_largest
LONG_ROW = 8 * alignment.SELECTION_SAMPLE + 123


@pytest.mark.parametrize("k", [1, 2, 1000, LONG_ROW // 3, LONG_ROW - 1, LONG_ROW])
def test_kth_largest_on_long_rows_equals_topk(k):
    g = torch.Generator().manual_seed(k)
    rows = torch.randn(3, LONG_ROW, generator=g).softmax(-1)
    rows[1, : LONG_ROW // 2] = float("-inf")  # pads of a partly padded matrix
    expected = rows.topk(k, dim=1).values[:, -1]
    assert torch.equal(kth_largest(rows, k), expected)


@pytest.mark.parametrize("k", [7, LONG_ROW // 2, LONG_ROW - 5])
def test_kth_largest_with_ties(k):
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(0, 9, (4, LONG_ROW), generator=g).float()  # 9 distinct values: ties everywhere
    rows[2] = 0.5  # a whole row tied
    assert torch.equal(kth_largest(rows, k), rows.topk(k, dim=1).values[:, -1])


@pytest.mark.parametrize("k", [LONG_ROW // 2, LONG_ROW - 5])
def test_kth_largest_falls_back_when_the_sample_misleads(k):
    """Entries the (fixed-seed) sample draws are made huge: the bracket misses and the whole row is searched."""
    rows = torch.randn(2, LONG_ROW, generator=torch.Generator().manual_seed(4))
    drawn = torch.randint(LONG_ROW, (2, alignment.SELECTION_SAMPLE), generator=torch.Generator().manual_seed(0))
    rows.scatter_(1, drawn, 1e9)
    assert torch.equal(kth_largest(rows, k), rows.topk(k, dim=1).values[:, -1])


def test_pea_selection_on_a_long_matrix_equals_sort_reference():
    """T_t x T_s above 8 x SELECTION_SAMPLE (the MOSEI audio/vision units' 500 x 500): the bracketed path."""
    g = torch.Generator().manual_seed(3)
    target_mask, source_mask = random_masks(g, 3, 260), random_masks(g, 3, 270)
    target_mask[0], source_mask[0] = True, True
    attention = random_attention(g, 3, 2, 260, 270, source_mask)
    for tau in (0.05, 0.3, 1.0):
        selected = pea_selection(attention, target_mask, source_mask, tau)
        assert torch.equal(selected, sorted_selection(attention, target_mask, source_mask, tau))


def test_kth_largest_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    kth_largest(torch.rand(2, LONG_ROW, generator=torch.Generator().manual_seed(0)), 100)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------------------- cost: MMD kernel and subsample
def test_doubling_ladder_detection():
    assert doubling_ladder([4.0, 1.0, 2.0, 0.5]) == (0.5, 4)
    assert doubling_ladder([1.0, 2.0 * (1 + 1e-7)]) == (1.0, 2)  # float32 rounding of σ
    assert doubling_ladder([1.0, 3.0]) is None and doubling_ladder([1.0]) is None and doubling_ladder([1, 1]) is None


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_ladder_kernel_equals_one_exp_per_bandwidth(dtype, tolerance, monkeypatch):
    import repro.models.sequence.mica_losses as alignment

    g = torch.Generator().manual_seed(12)
    x = (torch.randn(40, 6, generator=g) * 2).to(dtype).requires_grad_()
    y = (torch.randn(30, 6, generator=g) + 1).to(dtype).requires_grad_()
    sigmas = gaussian_kernel_bandwidths(x, y)
    assert alignment.doubling_ladder([1 / (2 * s * s) for s in sigmas.double().tolist()]) is not None
    results = []
    for ladder in (True, False):
        if not ladder:
            monkeypatch.setattr(alignment, "doubling_ladder", lambda rates: None)  # one exp per bandwidth
        loss = mmd_loss(x[None], y[None], None, None, chunk=16) + chunked_kernel_sum(x, None, sigmas, 7) / 1600
        results.append((loss.detach(), torch.autograd.grad(loss, (x, y))))
    (ladder_loss, ladder_grads), (plain_loss, plain_grads) = results
    torch.testing.assert_close(ladder_loss, plain_loss, rtol=tolerance, atol=tolerance)
    for a, b in zip(ladder_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)


def test_subsample_estimate_is_unbiased_for_the_full_batch_mmd():
    """Averaged over EVERY possible draw (2 of 4 source, 2 of 3 target elements) it equals the full-batch l_hat."""
    import itertools

    g = torch.Generator().manual_seed(13)
    source, target = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(3, 3, generator=g,
                                                                                        dtype=torch.float64)
    sigmas = [0.7, 1.5]
    full = mmd_loss(source[None], target[None], None, None, sigmas)
    estimates = [mmd_loss(source[list(s)][None], target[list(t)][None], None, None, sigmas, population_sizes=(4, 3))
                 for s in itertools.combinations(range(4), 2) for t in itertools.combinations(range(3), 2)]
    torch.testing.assert_close(torch.stack(estimates).mean(), full, rtol=1e-12, atol=1e-12)
    naive = [mmd_loss(source[list(s)][None], target[list(t)][None], None, None, sigmas)
             for s in itertools.combinations(range(4), 2) for t in itertools.combinations(range(3), 2)]
    assert abs(torch.stack(naive).mean() - full) > 1e-3  # the plain subsample V-statistic is biased
    torch.testing.assert_close(mmd_loss(source[None], target[None], None, None, sigmas, population_sizes=(4, 3)), full)
    with pytest.raises(ValueError, match="population_sizes"):
        mmd_loss(source[:1][None], target[None], None, None, sigmas, population_sizes=(4, 3))
