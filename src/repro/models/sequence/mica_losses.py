"""MICA's alignment losses (Liang et al., ICCV 2021, "Attention is not Enough", §3.4; hyper-parameters Table 1).

Marginal distribution alignment (§3.4, the MMD two-sample statistic and its empirical estimate):

    l_hat_{s,t} = 1/n_s² Σ_m Σ_n K(k_s,m, k_s,n) + 1/n_t² Σ_m Σ_n K(q_t,m, q_t,n) − 2/(n_s n_t) Σ_m Σ_n K(k_s,m, q_t,n)

between the keys k_s (source) and queries q_t (target) of one crossmodal attention unit; L_m sums it over layers and
modality pairs (done by the network). `mmd_loss` computes this biased (V-statistic) estimate with the real elements
of the WHOLE BATCH pooled on each side (n_s = Σ_j T_s,j real positions), in blocks of at most chunk x chunk kernel
entries, forward and backward (a custom autograd function recomputes each block in the backward pass, so no
n x n matrix is ever stored; MOSEI has n ≈ 24 x 500 = 12,000 key elements per unit).

Kernel (the paper only says "a characteristic kernel"): a multi-bandwidth Gaussian kernel, the MEAN over bandwidths

    K(x, y) = 1/|B| Σ_b exp(−‖x − y‖² / (2 σ_b²))

(a convex combination, as in DAN's multi-kernel MMD; DAN's public code SUMS the kernels instead, which multiplies
the loss — and so the effective α — by |B| = 5). Default bandwidths (`gaussian_kernel_bandwidths`): DAN's
geometric ladder around the data scale, 2 σ_b² = m_b · D̄ with m_b ∈ DEFAULT_BANDWIDTH_MULTIPLIERS = (1/4, 1/2, 1,
2, 4) and D̄ = the mean squared distance between distinct elements of the pooled source ∪ target set, computed in
closed form (no pairwise matrix) and DETACHED (the bandwidths are not trained). Fixed bandwidths can be passed
instead as a sequence of σ values. When the rates c_b = 1/(2σ_b²) form a ×2 ladder (the default ladder does) a
block's five kernels come from ONE exp and repeated squaring, exp(−D c)² = exp(−D 2c) (`doubling_ladder`; other
bandwidths: one exp each). `mmd_loss(..., population_sizes=(N_s, N_t))` turns the statistic of uniform random
subsamples into an unbiased estimate of the statistic on all N_s, N_t elements (`subsample_kernel_mean`).

Heads: keys/queries may come as (B, H, T, d_k); the heads are folded into the feature dimension, i.e. the MMD is
taken between the full H·d_k-dimensional key and query vectors (the paper's single-head notation k = W_K^T z with
W_K ∈ R^{d x d_k}; one kernel matrix per unit instead of H).

Propagated element-level alignment (§3.4, Eq. 2 and the W / V definitions):

    W^[i] = softmax(Q_t K_s^T / sqrt(d_k)) > γ,  γ = the probability ranked at τ·T_s·T_t;
    V^[i] = V^[i−1] ∪ W^[i],  V^[0] = W^[0];
    d_j = Σ_n Σ_m V_n,m · ‖q_j,n − k_j,m‖²,  L_e = Σ_j Σ_i Σ_{s≠t} d_j.

`pea_selection` gives W (exactly ⌈τ · T_s,real · T_t,real⌉ real pairs per sample and head), `propagate` the union,
`pea_loss` the weighted squared distances (summed over heads, MEAN over the samples of the batch so β's scale does
not depend on the batch size — the paper's sum over the N training samples differs by the constant N).
Cost: the selection is exact without a full sort on CPU (`kth_largest`: a sampled bracket, then a partial selection
inside it, one sample at a time) and one stable sort of every row on CUDA (`sorted_selection`); the loss needs only
V's row/column sums, V k and V^T q (`selection_products`, computed without gradient a few samples at a time), so
autograd keeps no (T_t, T_s)-sized tensor.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

DEFAULT_BANDWIDTH_MULTIPLIERS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
"""2σ_b² = multiplier · (mean pairwise squared distance of the pooled batch elements) — DAN's ladder (×2 steps)."""

DEFAULT_CHUNK = 2048
_MIN_SCALE = 1e-12  # floor for the data scale D̄ so identical elements do not give σ = 0


# ----------------------------------------------------------------------------------------------- element pooling
def _as_sequence(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """(B, T, d) as is; (B, H, T, d_k) -> (B, T, H·d_k) (heads folded into the feature dimension)."""
    if tensor.dim() == 3:
        return tensor
    if tensor.dim() == 4:
        batch, heads, steps, dim = tensor.shape
        return tensor.permute(0, 2, 1, 3).reshape(batch, steps, heads * dim)
    raise ValueError(f"alignment.mmd_loss: {name} must be (B, T, d) or (B, H, T, d_k), got shape "
                     f"{tuple(tensor.shape)}; pass the keys/queries of one crossmodal attention unit")


def _pool_real(sequence: torch.Tensor, mask: torch.Tensor | None, name: str) -> torch.Tensor:
    """The real elements of the whole batch as an (n, d) matrix."""
    batch, steps, dim = sequence.shape
    if mask is None:
        return sequence.reshape(batch * steps, dim)
    if tuple(mask.shape) != (batch, steps):
        raise ValueError(f"alignment.mmd_loss: {name}_mask must be (B, T) = {(batch, steps)}, got "
                         f"{tuple(mask.shape)}; pass the (B, T) bool mask of the {name} sequence (True = real)")
    return sequence[mask.to(torch.bool)]


# ------------------------------------------------------------------------------------------------ bandwidths
def mean_pairwise_squared_distance(elements: torch.Tensor) -> torch.Tensor:
    """Mean ‖x_i − x_j‖² over i ≠ j, in closed form: (2n Σ‖x_i‖² − 2‖Σ x_i‖²) / (n(n − 1)); detached, float64."""
    x = elements.detach().double()
    n = x.shape[0]
    if n < 2:
        return x.new_zeros(())
    total = 2 * n * x.pow(2).sum() - 2 * x.sum(0).pow(2).sum()
    return (total / (n * (n - 1))).clamp_min(0)


def gaussian_kernel_bandwidths(source_elements: torch.Tensor, target_elements: torch.Tensor,
                               multipliers: Sequence[float] = DEFAULT_BANDWIDTH_MULTIPLIERS) -> torch.Tensor:
    """Default σ_b (1-D, detached): 2σ_b² = m_b · D̄, D̄ = mean pairwise squared distance of source ∪ target."""
    if len(multipliers) == 0:
        raise ValueError("alignment.gaussian_kernel_bandwidths: multipliers is empty; pass at least one, e.g. "
                         f"{DEFAULT_BANDWIDTH_MULTIPLIERS}")
    pooled = torch.cat([source_elements.detach(), target_elements.detach()], dim=0)
    scale = mean_pairwise_squared_distance(pooled).clamp_min(_MIN_SCALE)
    factors = torch.tensor([float(m) for m in multipliers], dtype=torch.float64, device=pooled.device)
    return (factors * scale / 2).sqrt().to(source_elements.dtype)


def _check_bandwidths(bandwidths: Sequence[float] | torch.Tensor, device: torch.device) -> torch.Tensor:
    sigmas = torch.as_tensor(bandwidths, dtype=torch.float64, device=device).detach().reshape(-1)
    if sigmas.numel() == 0:
        raise ValueError("alignment.mmd_loss: bandwidths is empty; pass a list of Gaussian σ values or None for "
                         "the default ladder (DEFAULT_BANDWIDTH_MULTIPLIERS x the batch's data scale)")
    if not bool(torch.isfinite(sigmas).all() & (sigmas > 0).all()):
        raise ValueError(f"alignment.mmd_loss: bandwidths must be finite and > 0, got {sigmas.tolist()}; "
                         "pass Gaussian σ values such as [0.5, 1, 2]")
    return sigmas


# -------------------------------------------------------------------------------------------- blockwise kernel
def kernel_blocks(n_rows: int, n_cols: int, chunk: int, symmetric: bool) -> Iterator[tuple[slice, slice, float]]:
    """(rows, cols, factor) blocks covering an n_rows x n_cols kernel matrix, each at most chunk x chunk.

    With `symmetric` (the matrix K(x, x)) only blocks on or above the diagonal are visited; the off-diagonal ones
    count twice (factor 2).
    """
    for row_start in range(0, n_rows, chunk):
        rows = slice(row_start, min(row_start + chunk, n_rows))
        for col_start in range(row_start if symmetric else 0, n_cols, chunk):
            cols = slice(col_start, min(col_start + chunk, n_cols))
            yield rows, cols, (2.0 if symmetric and col_start != row_start else 1.0)


def _block_squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖x_i − y_j‖² via ‖x‖² + ‖y‖² − 2 x·y (no (n, m, d) tensor); clamped at 0 against rounding."""
    norms = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1)
    return torch.addmm(norms, x, y.T, alpha=-2.0).clamp_min_(0)  # one fused pass over the block


class _ChunkedKernelSum(torch.autograd.Function):
    """Σ_ij K(x_i, y_j) for the mean-of-Gaussians kernel, block by block; backward recomputes each block.

    With K = mean_b exp(−D c_b), c_b = 1/(2σ_b²), D_ij = ‖x_i − y_j‖²: ∂K_ij/∂D_ij = −A_ij with
    A = mean_b c_b exp(−D c_b), so ∂/∂x_i = −2 Σ_j A_ij (x_i − y_j) and ∂/∂y_j = −2 Σ_i A_ij (y_j − x_i).
    When `y` is None the matrix is K(x, x) (symmetric: only upper blocks are computed).
    """

    @staticmethod
    def forward(ctx, x, y, rates, chunk):
        symmetric = y is None
        other = x if symmetric else y
        ladder = doubling_ladder(rates)
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        for rows, cols, factor in kernel_blocks(x.shape[0], other.shape[0], chunk, symmetric):
            kernel = _block_kernel(_block_squared_distances(x[rows], other[cols]), rates, ladder=ladder)
            total += factor * kernel.sum(dtype=torch.float64)
        ctx.save_for_backward(x, other)
        ctx.rates, ctx.ladder, ctx.chunk, ctx.symmetric = rates, ladder, chunk, symmetric
        return total.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_total):
        x, other = ctx.saved_tensors
        grad_x = torch.zeros_like(x)
        grad_other = grad_x if ctx.symmetric else torch.zeros_like(other)
        for rows, cols, factor in kernel_blocks(x.shape[0], other.shape[0], ctx.chunk, ctx.symmetric):
            x_block, other_block = x[rows], other[cols]
            slope = _block_kernel(_block_squared_distances(x_block, other_block), ctx.rates, True, ctx.ladder)
            scale = -2.0 * factor * grad_total
            grad_x[rows] += scale * (slope.sum(1, keepdim=True) * x_block - slope @ other_block)
            grad_other[cols] += scale * (slope.sum(0).unsqueeze(1) * other_block - slope.T @ x_block)
        return grad_x, (None if ctx.symmetric else grad_other), None, None


_LADDER_TOLERANCE = 1e-6  # relative; σ rounded to float32 moves the ratio of successive rates by ~1e-7


def doubling_ladder(rates: Sequence[float]) -> tuple[float, int] | None:
    """(smallest rate, count) when the sorted rates form a ×2 ladder c, 2c, 4c, … (to `_LADDER_TOLERANCE`), else None.

    The default bandwidths (multipliers 1/4 … 4) give such a ladder: exp(−D·2c) = exp(−D·c)², so one exp and
    repeated squaring give every kernel of the block.
    """
    ordered = sorted(float(rate) for rate in rates)
    if len(ordered) < 2 or any(abs(high / (2.0 * low) - 1.0) > _LADDER_TOLERANCE
                               for low, high in zip(ordered, ordered[1:])):
        return None
    return ordered[0], len(ordered)


def _block_kernel(squared_distances: torch.Tensor, rates: list[float], slope: bool = False,
                  ladder: tuple[float, int] | None = None) -> torch.Tensor:
    """K = mean_b exp(−D c_b) for one block, or (slope=True) A = mean_b c_b exp(−D c_b) = −∂K/∂D.

    With a ×2 `ladder` (base c_0, count) the rates are taken as c_0·2^b and the kernels come from one exp and
    repeated squaring (overwrites `squared_distances`); otherwise one exp per rate.
    """
    if ladder is None:
        total = torch.zeros_like(squared_distances)
        for c in rates:
            total.add_(squared_distances.mul(-c).exp_(), alpha=c if slope else 1.0)
        return total.div_(len(rates))
    base, count = ladder
    power = squared_distances.mul_(-base).exp_()  # exp(−D c_0), in place: D is not needed any more
    total = power.mul(base if slope else 1.0)
    for b in range(1, count):
        power.square_()  # exp(−D c_0)^(2^b) = exp(−D c_0 2^b)
        total.add_(power, alpha=base * 2.0 ** b if slope else 1.0)
    return total.div_(count)


def chunked_kernel_sum(x: torch.Tensor, y: torch.Tensor | None, sigmas: torch.Tensor, chunk: int) -> torch.Tensor:
    """Σ_ij K(x_i, y_j) (y None: K(x, x)) with K the mean over σ of exp(−‖·‖²/(2σ²)); differentiable.

    Computed in at least float32 with autocast off: half-precision distances ‖x‖² + ‖y‖² − 2x·y lose the small
    distances that the narrow kernels see. (TF32 matmuls, if enabled globally on GPU, blur them somewhat too.)
    """
    rates = [1.0 / (2.0 * sigma * sigma) for sigma in sigmas.double().tolist()]  # one host sync per call
    if x.dtype in (torch.float16, torch.bfloat16):
        x, y = x.float(), (None if y is None else y.float())
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _ChunkedKernelSum.apply(x, y, rates, chunk)


# --------------------------------------------------------------------------------------------------------- MMD
def mmd_loss(source: torch.Tensor, target: torch.Tensor, source_mask: torch.Tensor | None,
             target_mask: torch.Tensor | None, bandwidths: Sequence[float] | torch.Tensor | None = None,
             chunk: int = DEFAULT_CHUNK, *, population_sizes: tuple[int, int] | None = None) -> torch.Tensor:
    """Biased MMD² between the real source keys and target queries of the batch (§3.4, l_hat_{s,t}); scalar.

    source (B, T_s, d) or (B, H, T_s, d_k) keys, target (B, T_t, d) or (B, H, T_t, d_k) queries, masks (B, T) bool
    (True = real; None = all real). bandwidths: σ values, or None for `gaussian_kernel_bandwidths`' ladder.
    At most chunk x chunk kernel entries exist at once (forward and backward). Not clamped at 0: for coinciding
    distributions rounding can give ≈ −1e-7, and a clamp would zero the gradient.

    `population_sizes=(N_s, N_t)`: the real elements given are uniform random subsamples WITHOUT replacement of
    N_s source and N_t target elements; the result is then the unbiased estimate (over the draw) of l_hat on all
    N_s, N_t elements with the same bandwidths (see `subsample_kernel_mean`). Equal sizes: l_hat itself.
    """
    if int(chunk) < 1:
        raise ValueError(f"alignment.mmd_loss: chunk must be a positive int, got {chunk}; e.g. chunk=2048")
    keys = _pool_real(_as_sequence(source, "source"), source_mask, "source")
    queries = _pool_real(_as_sequence(target, "target"), target_mask, "target")
    if keys.shape[1] != queries.shape[1]:
        raise ValueError(f"alignment.mmd_loss: source and target feature sizes differ ({keys.shape[1]} vs "
                         f"{queries.shape[1]}); pass keys and queries of the same common space")
    for name, elements in (("source", keys), ("target", queries)):
        if elements.shape[0] == 0:
            raise ValueError(f"alignment.mmd_loss: {name} has no real element in the batch ({name}_mask all "
                             "False); the MMD needs at least one element per side — check the masks")
    if bandwidths is None:
        sigmas = gaussian_kernel_bandwidths(keys, queries).double()
    else:
        sigmas = _check_bandwidths(bandwidths, keys.device)
    n_s, n_t = keys.shape[0], queries.shape[0]
    full_s, full_t = (n_s, n_t) if population_sizes is None else (int(population_sizes[0]), int(population_sizes[1]))
    source_term = subsample_kernel_mean(chunked_kernel_sum(keys, None, sigmas, int(chunk)), n_s, full_s)
    target_term = subsample_kernel_mean(chunked_kernel_sum(queries, None, sigmas, int(chunk)), n_t, full_t)
    cross_term = chunked_kernel_sum(keys, queries, sigmas, int(chunk)) / (n_s * n_t)
    return source_term + target_term - 2 * cross_term


def subsample_kernel_mean(kernel_sum: torch.Tensor, drawn: int, population: int) -> torch.Tensor:
    """1/N² Σ_{i,j ≤ N} K(x_i, x_j) of a population of N elements, from the sum S over a uniform draw of n of them.

    n = N: S / N². n < N (without replacement): the diagonal K(x, x) = 1 of the Gaussian kernels is known exactly and
    the off-diagonal mean (S − n) / (n(n − 1)) is an unbiased estimate of the population's, so
    1/N + (N − 1)/N · (S − n)/(n(n − 1)) is unbiased for the population's V-statistic term (the plain S / n² is not:
    it over-weights the diagonal by 1/n − 1/N).
    """
    if drawn == population:
        return kernel_sum / (drawn * drawn)
    if not 2 <= drawn < population:
        raise ValueError(f"alignment.mmd_loss: population_sizes must be >= the elements drawn (>= 2 when smaller); "
                         f"got {drawn} drawn of {population}; pass the real-element counts before subsampling")
    off_diagonal_mean = (kernel_sum - drawn) / (drawn * (drawn - 1))
    return 1.0 / population + (population - 1) / population * off_diagonal_mean


# ------------------------------------------------------------------------------------------ PEA selection / loss
def _check_tau(tau: float) -> float:
    tau = float(tau)
    if not 0.0 < tau <= 1.0:  # also rejects NaN
        raise ValueError(f"alignment.pea_selection: selection rate tau must be in (0, 1], got {tau}; "
                         "MICA Table 1 uses 0.3 (MOSEI) / 0.25 (MOSI, IEMOCAP)")
    return tau


def selection_counts(target_mask: torch.Tensor, source_mask: torch.Tensor, tau: float) -> torch.Tensor:
    """Per sample k = ⌈τ · T_t,real · T_s,real⌉ (at least 1 when both sides have a real step), int64 (B,)."""
    real_pairs = target_mask.sum(1).double() * source_mask.sum(1).double()
    # the 1e-9 relative slack keeps float error in τ·n (0.7·10 = 7.000000000000001) from adding one extra pair
    counts = torch.ceil(tau * real_pairs * (1 - 1e-9)).long()
    return torch.where(real_pairs > 0, counts.clamp_min(1), torch.zeros_like(counts))


DEFAULT_SELECTION_ELEMENTS = 1 << 23
"""Entries of the (H, T_t, T_s) attention processed at once by the selection and V·k products (32 MB of float32)."""


SELECTION_METHODS = ("auto", "bracket", "sort")


def pea_selection(attention: torch.Tensor, target_mask: torch.Tensor | None, source_mask: torch.Tensor | None,
                  tau: float, method: str = "auto", overwrite: bool = False) -> torch.Tensor:
    """W^[i] (§3.4): the top ⌈τ · T_s,real · T_t,real⌉ attention probabilities of each (sample, head) matrix.

    attention (B, H, T_t, T_s) or (B, T_t, T_s); masks (B, T) bool, True = real (None = all real). Only real
    (target, source) pairs compete; pads are never selected. Returns a bool mask of attention's shape, with no
    gradient. Ties at the threshold γ: exactly k pairs are kept, the earlier ones in row-major (target, source)
    order (what a stable descending sort gives), so the paper's "> γ" is read as "ranked within the top k".
    Pads are masked to −inf rather than cut out. `method`: "bracket" (the CPU default) finds γ = the exact k-th
    largest with `kth_largest` (a sampled bracket, then a partial selection inside it; no sort), one sample's rows at
    a time so that they stay in the CPU cache; "sort" (the CUDA default) is one stable descending sort of every
    (sample, head) row at once, no per-sample loop and no host synchronisation inside. Both give the same selection.
    `overwrite=True` lets the bracket path mask the pads of `attention` in place (a caller's private copy: saves a
    copy of every padded sample). NaN-free input expected (softmax probabilities).
    """
    if method not in SELECTION_METHODS:
        raise ValueError(f"alignment.pea_selection: method must be one of {SELECTION_METHODS}, got {method!r}")
    tau = _check_tau(tau)
    squeeze = attention.dim() == 3
    scores = attention.detach().unsqueeze(1) if squeeze else attention.detach()
    if scores.dim() != 4:
        raise ValueError(f"alignment.pea_selection: attention must be (B, H, T_t, T_s) or (B, T_t, T_s), got "
                         f"{tuple(attention.shape)}; pass the softmax(Q K^T / sqrt(d_k)) probabilities")
    batch, heads, target_len, source_len = scores.shape
    target_mask = _mask_or_all(target_mask, batch, target_len, scores.device, "target_mask")
    source_mask = _mask_or_all(source_mask, batch, source_len, scores.device, "source_mask")
    if method == "sort" or (method == "auto" and scores.is_cuda):
        selected = sorted_selection(scores, target_mask, source_mask, tau)
        return selected.squeeze(1) if squeeze else selected
    selected = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    counts = selection_counts(target_mask, source_mask, tau).tolist()
    all_real = (target_mask.all(1) & source_mask.all(1)).tolist()
    for sample, count in enumerate(counts):  # one sample's (H, T_t·T_s) rows at a time: they stay in the CPU cache
        if count == 0:  # no real pair
            continue
        rows = scores[sample]
        if not all_real[sample]:  # pads compete as -inf: below every real pair, never among the k <= real pairs
            pads = ~(target_mask[sample][:, None] & source_mask[sample][None, :])
            rows = rows.masked_fill_(pads, float("-inf")) if overwrite else rows.masked_fill(pads, float("-inf"))
        top_k_per_row(rows.reshape(heads, -1), count, out=selected[sample].view(heads, -1))
    return selected.squeeze(1) if squeeze else selected


def sorted_selection(scores: torch.Tensor, target_mask: torch.Tensor, source_mask: torch.Tensor,
                     tau: float) -> torch.Tensor:
    """`pea_selection` of (B, H, T_t, T_s) `scores` by one stable descending sort of every (sample, head) row."""
    batch, heads, target_len, source_len = scores.shape
    real = target_mask[:, None, :, None] & source_mask[:, None, None, :]
    flat = scores.masked_fill(~real, float("-inf")).reshape(batch, heads, -1)
    order = torch.sort(flat, dim=-1, descending=True, stable=True).indices
    keep = torch.arange(flat.shape[-1], device=scores.device) < selection_counts(target_mask, source_mask,
                                                                                  tau)[:, None, None]
    selected = torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, order, keep.expand_as(order))
    return selected.view(scores.shape)


SELECTION_SAMPLE = 8192
"""Entries drawn per row to bracket the k-th largest value (`kth_largest`); rows up to 8x this use `torch.topk`."""
SELECTION_SPREAD = 5.0
"""Half-width of the bracket in standard deviations of the sample rank (a miss falls back to a whole-row search)."""


_DRAWS: dict[tuple, torch.Tensor] = {}  # the fixed-seed sample positions per (rows, n, device), reused


def _sample_positions(count: int, n: int, device: torch.device) -> torch.Tensor:
    key = (count, n, str(device))
    if key not in _DRAWS:
        if len(_DRAWS) > 64:  # a few shapes per model: bound the cache anyway
            _DRAWS.clear()
        generator = torch.Generator(device=device).manual_seed(0)
        _DRAWS[key] = torch.randint(n, (count, SELECTION_SAMPLE), generator=generator, device=device)
    return _DRAWS[key]


def kth_largest(rows: torch.Tensor, k: int) -> torch.Tensor:
    """The exact k-th largest value of every row of (R, n), 1 <= k <= n -> (R,)."""
    return _kth_largest_and_count(rows, k)[0]


def _kth_largest_and_count(rows: torch.Tensor, k: int) -> tuple[torch.Tensor, list[int]]:
    """(γ, count(rows >= γ) per row) with γ the exact k-th largest of every row of (R, n).

    Why not `rows.topk(k)` alone: at MICA's MOSEI shape (n = 250,000 pairs, k = 75,000) a partial selection that
    carries indices costs ~1 ns per entry and was most of PEA's time. Here: order statistics of a uniform sample of
    `SELECTION_SAMPLE` entries per row bracket the value, [lo, hi] at ± `SELECTION_SPREAD` standard deviations of the
    sample rank; one count pass per side checks that the k-th largest lies inside (count(> hi) < k <= count(>= lo));
    then only the bracket's few % of entries are searched (`topk`). Exact whatever the draw: a row whose bracket
    misses (probability ~1e-6) is searched whole. The draw is made once per shape with its own generator and a
    fixed seed, so the global RNG stream (dropout) is not touched.
    """
    count, n = rows.shape
    if n <= 8 * SELECTION_SAMPLE:
        threshold = rows.topk(k, dim=1, sorted=False).values.amin(1)
        return threshold, (rows >= threshold[:, None]).sum(1, dtype=torch.int32).tolist()
    sample = rows.gather(1, _sample_positions(count, n, rows.device))
    expected = k * SELECTION_SAMPLE / n  # the k-th largest's rank in the sample (1-based), on average
    spread = max(SELECTION_SPREAD, 0.0) * math.sqrt(SELECTION_SAMPLE * (k / n) * (1 - k / n)) + 1
    hi_rank, lo_rank = math.floor(expected - spread), math.ceil(expected + spread)  # ranks from the top, hi < lo
    # kthvalue counts from the bottom: the r-th largest of m is the (m + 1 − r)-th smallest
    hi = (sample.kthvalue(SELECTION_SAMPLE + 1 - hi_rank, dim=1).values if hi_rank >= 1
          else rows.new_full((count,), float("inf")))
    lo = (sample.kthvalue(SELECTION_SAMPLE + 1 - lo_rank, dim=1).values if lo_rank <= SELECTION_SAMPLE
          else rows.new_full((count,), float("-inf")))
    above, inside = rows > hi[:, None], rows >= lo[:, None]
    above_count = above.sum(1, dtype=torch.int32)
    inside_count = inside.sum(1, dtype=torch.int32) - above_count
    inside ^= above  # hi >= lo, so {> hi} ⊆ {>= lo}: XOR leaves [lo, hi]
    values = rows[inside].split(inside_count.tolist())
    thresholds, at_least = [], []
    for row, skip, candidates in zip(rows, above_count.tolist(), values, strict=True):
        if skip < k <= skip + candidates.numel():
            threshold = candidates.topk(k - skip, sorted=False).values.min()
            at_least.append(skip + int((candidates >= threshold).sum()))
        else:  # the bracket missed: the whole row
            threshold = row.topk(k, sorted=False).values.min()
            at_least.append(int((row >= threshold).sum()))
        thresholds.append(threshold)
    return torch.stack(thresholds), at_least


def top_k_per_row(rows: torch.Tensor, k: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask of the k largest entries of every row of (R, n), ties at the k-th value taken earliest-first
    (written into `out`, a bool (R, n), when given).

    γ = the k-th largest (`kth_largest`, no sort); every entry >= γ is kept, and where more than k are (ties at γ)
    only the first ones equal to γ that fill the k places — the same k entries as a stable descending sort's first k.
    """
    threshold, at_least = _kth_largest_and_count(rows, k)
    kept = torch.ge(rows, threshold[:, None], out=out) if out is not None else rows >= threshold[:, None]
    for r, kept_count in enumerate(at_least):
        if kept_count > k:  # ties at γ: keep the first that fill the k places, drop the last kept_count − k
            ties = (rows[r] == threshold[r]).nonzero()[:, 0]
            kept[r, ties[ties.numel() - (kept_count - k):]] = False
    return kept


def _mask_or_all(mask: torch.Tensor | None, batch: int, steps: int, device, name: str) -> torch.Tensor:
    if mask is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    if tuple(mask.shape) != (batch, steps):
        raise ValueError(f"alignment.pea_selection: {name} must be (B, T) = {(batch, steps)}, got "
                         f"{tuple(mask.shape)}; pass the (B, T) bool mask (True = real step)")
    return mask.to(device=device, dtype=torch.bool)


def propagate(previous: torch.Tensor | None, current: torch.Tensor) -> torch.Tensor:
    """V^[i] = V^[i−1] ∪ W^[i] (V^[0] = W^[0]: pass previous=None for the first layer); bool.

    The union is element-wise, so every layer's selection must have the same (B, H, T_t, T_s) shape — true in
    MulT/MICA, whose crossmodal layers keep the sequence lengths.
    """
    current = current.to(torch.bool)
    if previous is None:
        return current
    if previous.shape != current.shape:
        raise ValueError(f"alignment.propagate: previous selection {tuple(previous.shape)} and current "
                         f"{tuple(current.shape)} differ; the union needs the same (B, H, T_t, T_s) at every layer")
    return previous.to(torch.bool) | current


PEA_REDUCTIONS = ("sum", "pairs")


class SelectionProducts(NamedTuple):
    """What Eq. 2's loss needs from a selection V (B, H, T_t, T_s): its row and column sums, V k and V^T q.

    All (B, H, T, ·)-sized and without gradient (V is a constant 0/1 selection), so the loss never keeps a
    (T_t, T_s) tensor for backward.
    """

    rows: torch.Tensor  # (B, H, T_t): r_n = Σ_m V_n,m
    cols: torch.Tensor  # (B, H, T_s): c_m = Σ_n V_n,m
    selected_keys: torch.Tensor  # (B, H, T_t, d_k): (V k)_n
    selected_queries: torch.Tensor  # (B, H, T_s, d_k): (V^T q)_m


def selection_products(weights: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor,
                       max_elements: int = DEFAULT_SELECTION_ELEMENTS) -> SelectionProducts:
    """r, c, V k and V^T q (no gradient) for weights (B, H, T_t, T_s), a few samples at a time: the float copy of V
    has at most max(`max_elements`, one sample) entries."""
    per_sample = max(1, weights[0].numel()) if weights.shape[0] else 1
    step = max(1, int(max_elements) // per_sample)
    parts = []
    with torch.no_grad():
        for start in range(0, weights.shape[0], step):
            part = slice(start, start + step)
            v = weights[part].to(queries.dtype)
            # a ones column appended to k (q) makes the same matmul give the row (column) sums of V
            with_rows = v @ _with_ones(keys[part].detach())
            with_cols = v.transpose(-1, -2) @ _with_ones(queries[part].detach())
            parts.append((with_rows[..., -1], with_cols[..., -1], with_rows[..., :-1], with_cols[..., :-1]))
    return SelectionProducts(*(torch.cat(tensors) for tensors in zip(*parts, strict=True)))


def _with_ones(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_ones(*x.shape[:-1], 1)], dim=-1)


class _SelectedCross(torch.autograd.Function):
    """Per sample Σ_n q_n · (V k)_n with ∂/∂q = V k and ∂/∂k = V^T q: saves only the two (B, H, T, d_k) products."""

    @staticmethod
    def forward(ctx, queries, keys, selected_keys, selected_queries):
        ctx.save_for_backward(selected_keys, selected_queries)
        return (queries * selected_keys).sum(dim=(1, 2, 3))

    @staticmethod
    def backward(ctx, grad):
        selected_keys, selected_queries = ctx.saved_tensors
        scale = grad[:, None, None, None]
        return scale * selected_keys, scale * selected_queries, None, None


def pea_loss(queries: torch.Tensor, keys: torch.Tensor, weights: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Eq. 2: mean_j Σ_heads Σ_n Σ_m V_n,m ‖q_j,n − k_j,m‖² (scalar; MEAN over the B samples of the batch).

    queries (B, H, T_t, d_k), keys (B, H, T_s, d_k), weights (B, H, T_t, T_s) (bool V or float, taken as a
    constant: no gradient reaches it); 3-D inputs (no head axis) are accepted too. Computed as
    Σ r_n ‖q_n‖² + Σ c_m ‖k_m‖² − 2 Σ_n q_n · (V k)_n with the row and column sums r, c of V (`selection_products`,
    a few samples at a time): no (T_t, T_s) distance tensor, no (T_t, T_s, d_k) one, and autograd keeps only
    (B, H, T, d_k)-sized tensors (the loss is quadratic: ∂/∂q_n = 2 r_n q_n − 2 (V k)_n,
    ∂/∂k_m = 2 c_m k_m − 2 (V^T q)_m).
    `reduction="pairs"` divides each sample's sum by its number of selected (head, n, m) pairs — the mean squared
    distance of the selected pairs. The literal sum ("sum", the equation) grows with τ·T_s·T_t: at the unaligned
    MOSEI shape it is ~1e7, which a weight β = 0.5 would make millions of times the task loss.
    """
    if reduction not in PEA_REDUCTIONS:
        raise ValueError(f"alignment.pea_loss: reduction must be one of {PEA_REDUCTIONS}, got {reduction!r}")
    if queries.dim() == 3 and keys.dim() == 3 and weights.dim() == 3:
        queries, keys, weights = queries.unsqueeze(1), keys.unsqueeze(1), weights.unsqueeze(1)
    expected = (*queries.shape[:3], keys.shape[2])
    if queries.dim() != 4 or keys.dim() != 4 or tuple(weights.shape) != expected \
            or keys.shape[:2] != queries.shape[:2] or keys.shape[3] != queries.shape[3]:
        raise ValueError(f"alignment.pea_loss: expected queries (B, H, T_t, d_k), keys (B, H, T_s, d_k), weights "
                         f"(B, H, T_t, T_s); got {tuple(queries.shape)}, {tuple(keys.shape)}, "
                         f"{tuple(weights.shape)}")
    return pea_loss_from_products(queries, keys, selection_products(weights, queries, keys), reduction)


def pea_loss_from_products(queries: torch.Tensor, keys: torch.Tensor, products: SelectionProducts,
                           reduction: str = "sum") -> torch.Tensor:
    """`pea_loss` from a selection's precomputed `SelectionProducts` (e.g. built chunk by chunk with the selection)."""
    if reduction not in PEA_REDUCTIONS:
        raise ValueError(f"alignment.pea_loss: reduction must be one of {PEA_REDUCTIONS}, got {reduction!r}")
    rows, cols, selected_keys, selected_queries = products
    per_sample = ((rows * queries.pow(2).sum(-1)).sum(dim=(1, 2)) + (cols * keys.pow(2).sum(-1)).sum(dim=(1, 2))
                  - 2 * _SelectedCross.apply(queries, keys, selected_keys, selected_queries))
    if reduction == "pairs":
        per_sample = per_sample / rows.sum(dim=(1, 2)).clamp(min=1.0)
    return per_sample.mean()


__all__ = [
    "DEFAULT_BANDWIDTH_MULTIPLIERS", "DEFAULT_CHUNK", "DEFAULT_SELECTION_ELEMENTS", "chunked_kernel_sum",
    "doubling_ladder", "gaussian_kernel_bandwidths", "kernel_blocks", "mean_pairwise_squared_distance", "mmd_loss",
    "kth_largest", "PEA_REDUCTIONS", "pea_loss", "pea_loss_from_products", "pea_selection", "propagate",
    "SELECTION_METHODS", "selection_counts", "selection_products", "SelectionProducts", "sorted_selection",
    "subsample_kernel_mean", "top_k_per_row",
]
