"""The lean dropout of the transformer models (repro.models.sequence.dropout) against its definition."""

import pytest
import torch
import torch.nn.functional as F

from repro.models.sequence.dropout import dropout, keep_mask, relu_dropout


def test_keep_mask_rate_and_shape():
    torch.manual_seed(0)
    keep = keep_mask(torch.Size((7, 301, 9)), 0.25, torch.device("cpu"))  # odd size: not a multiple of 4 int16s
    assert keep.shape == (7, 301, 9) and keep.dtype == torch.bool
    # 18,963 Bernoulli(0.75) draws: the mean is within 5 standard deviations (0.0031 each) of 0.75
    assert abs(keep.float().mean().item() - 0.75) < 5 * (0.75 * 0.25 / keep.numel()) ** 0.5
    assert keep_mask(torch.Size((1000,)), 0.0, torch.device("cpu")).all()


def test_keep_mask_repeats_under_a_seed_and_varies_otherwise():
    torch.manual_seed(3)
    first = keep_mask(torch.Size((64, 64)), 0.5, torch.device("cpu"))
    second = keep_mask(torch.Size((64, 64)), 0.5, torch.device("cpu"))
    torch.manual_seed(3)
    assert torch.equal(keep_mask(torch.Size((64, 64)), 0.5, torch.device("cpu")), first)
    assert not torch.equal(first, second)


def test_dropout_zeroes_or_scales_and_is_identity_in_eval():
    x = torch.randn(50, 40)
    torch.manual_seed(0)
    y = dropout(x, 0.2, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.8)
    assert 0.1 < 1 - kept.float().mean().item() < 0.3
    assert dropout(x, 0.2, training=False) is x and dropout(x, 0.0, training=True) is x


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_relu_dropout_matches_relu_then_masked_scaling(p):
    x = torch.randn(6, 30, 16, requires_grad=True)
    torch.manual_seed(5)
    fused = relu_dropout(x, p, training=True)
    torch.manual_seed(5)
    keep = keep_mask(x.shape, p, x.device)  # the same draws
    reference = F.relu(x) * keep / (1 - p)
    torch.testing.assert_close(fused, reference)
    grad = torch.randn_like(fused)
    (g_fused,) = torch.autograd.grad(fused, x, grad)
    (g_ref,) = torch.autograd.grad(reference, x, grad)
    torch.testing.assert_close(g_fused, g_ref)


def test_relu_dropout_keeps_only_its_output_for_backward():
    x = torch.randn(4, 100, 32, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = relu_dropout(x, 0.1, training=True)
    assert len(saved) == 1 and saved[0].data_ptr() == y.data_ptr()
