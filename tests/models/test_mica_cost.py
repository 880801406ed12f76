"""MICA's alignment cost work (mica.py `propagated_selection`, `mmd_max_elements`) against the plain reference path
(explicit probabilities of the whole batch, a sorted selection, the union) on tiny SYNTHETIC random tensors."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from repro.models.backbones.sequence_features import SequenceFeatures
from repro.models.sequence import mica as mica_module
from repro.models.sequence.mica import MICA, propagated_selection
from repro.models.sequence.mica_losses import pea_loss, pea_loss_from_products, sorted_selection
from repro.models.sequence.mult import AttentionMask, MultiheadAttention

DIMS = {"text": 5, "audio": 4, "vision": 3}
STEPS = {"text": 6, "audio": 12, "vision": 10}
TINY = {"d": 8, "heads": 2, "layers": 2, "kernel_size": {"text": 3, "audio": 3, "vision": 1}, "attn_dropout": 0.0,
        "relu_dropout": 0.0, "res_dropout": 0.0, "embed_dropout": 0.0}


def left_padded_masks(generator, batch, steps):
    lengths = torch.randint(0, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    return torch.arange(steps)[None, :] >= (steps - lengths)[:, None]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("max_elements", [1, 300, 10**6])  # one sample per chunk, a few, the whole batch
def test_propagated_selection_equals_the_reference_path(causal, max_elements):
    g = torch.Generator().manual_seed(0)
    batch, heads, target_len, source_len, d_k = 6, 2, 7, 9, 3
    attention = MultiheadAttention(heads * d_k, heads, 0.0)
    queries = torch.randn(batch, heads, target_len, d_k, generator=g, requires_grad=True)
    keys = torch.randn(batch, heads, source_len, d_k, generator=g, requires_grad=True)
    target_mask, source_mask = left_padded_masks(g, batch, target_len), left_padded_masks(g, batch, source_len)
    mask = AttentionMask(source_mask, target_len, causal)
    previous = torch.rand(batch, heads, target_len, source_len, generator=g) > 0.8
    with torch.no_grad():
        probabilities = attention.probabilities(queries, keys, mask)  # the whole batch at once
    reference = sorted_selection(probabilities, target_mask, source_mask, 0.3) | previous
    selection, products = propagated_selection(attention, queries, keys, mask, target_mask, source_mask, 0.3,
                                               previous, max_elements)
    assert selection.dtype == torch.bool and torch.equal(selection, reference)
    fresh, _ = propagated_selection(attention, queries, keys, mask, target_mask, source_mask, 0.3, None, max_elements)
    assert torch.equal(fresh, sorted_selection(probabilities, target_mask, source_mask, 0.3))
    expected = pea_loss(queries, keys, reference, "pairs")
    got = pea_loss_from_products(queries, keys, products, "pairs")
    torch.testing.assert_close(got, expected)
    for grad, reference_grad in zip(torch.autograd.grad(got, (queries, keys)),
                                    torch.autograd.grad(expected, (queries, keys)), strict=True):
        torch.testing.assert_close(grad, reference_grad)


def encoders():
    return {m: SequenceFeatures(d) for m, d in DIMS.items()}


def batch(seed=0, size=4):
    """SYNTHETIC: random features, left padding, one sample with a single real step per modality."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, d in DIMS.items():
        lengths = torch.tensor([STEPS[m], STEPS[m] - 3, 1, 2][:size])
        mask = torch.arange(STEPS[m]) >= (STEPS[m] - lengths)[:, None]
        out[m], out[f"{m}_mask"] = torch.randn(size, STEPS[m], d, generator=g) * mask[..., None], mask
    return out


def test_mica_computes_probabilities_in_sample_chunks(monkeypatch):
    """Training with β > 0: no full-batch explicit probabilities (mult's `details` path is asked for none)."""
    shapes = []
    original = MultiheadAttention.probabilities

    def recording(self, q, k, mask):
        shapes.append(tuple(q.shape))
        return original(self, q, k, mask)

    monkeypatch.setattr(MultiheadAttention, "probabilities", recording)
    torch.manual_seed(0)
    net = MICA(encoders(), 1, alpha=0.0, **TINY).train()
    net.selection_elements = 1  # one sample per chunk
    out = net(batch())
    assert out.aux_losses["pea"] > 0
    assert shapes and {s[0] for s in shapes} == {1}  # every call saw a single sample
    assert len(shapes) == 2 * 6 * 4  # layers x units x samples


def test_mica_pea_loss_matches_the_reference_path(monkeypatch):
    """The whole network's β·L_e equals the former path: whole-batch probabilities + sorted W + union + pea_loss."""
    torch.manual_seed(0)
    net = MICA(encoders(), 1, alpha=0.0, beta=1.0, **TINY).train()
    got = net(batch()).aux_losses["pea"]
    recorded = []

    def reference_align(self, unit, info, masks, state, attention, attention_mask):
        with torch.no_grad():
            probabilities = attention.probabilities(info["queries"], info["keys"], attention_mask)
        selection = sorted_selection(probabilities, masks[unit[0]], masks[unit[1]], self.tau)
        previous = state["selections"].get(unit)
        selection = selection if previous is None else selection | previous
        state["selections"][unit] = selection
        recorded.append(selection)
        state["pea"] = state.get("pea", 0.0) + pea_loss(info["queries"], info["keys"], selection, "pairs")

    monkeypatch.setattr(MICA, "align", reference_align)
    expected = net(batch()).aux_losses["pea"]  # no dropout: the same forward
    torch.testing.assert_close(got, expected)
    assert len(recorded) == 12 and all(bool(s.any()) for s in recorded)


def test_mmd_max_elements_default_config_and_errors():
    hydra = pytest.importorskip("hydra")
    from hydra.utils import instantiate

    configs = str(Path(__file__).resolve().parents[2] / "configs")
    with hydra.initialize_config_dir(config_dir=configs, version_base="1.3"):
        cfg = hydra.compose(overrides=["+fusion=mica"])
    net = instantiate(cfg.fusion.net)(encoders=encoders(), num_classes=1)
    default = inspect.signature(MICA).parameters["mmd_max_elements"].default
    assert net.mmd_max_elements == cfg.fusion.net.mmd_max_elements == default == mica_module.DEFAULT_MMD_MAX_ELEMENTS
    with pytest.raises(ValueError, match="mmd_max_elements"):
        MICA(encoders(), 1, mmd_max_elements=1, **TINY)


def test_mmd_subsample_is_exact_when_the_limit_exceeds_the_batch_and_random_below():
    torch.manual_seed(0)
    full = MICA(encoders(), 1, beta=0.0, mmd_max_elements=None, **TINY).train()
    capped = MICA(encoders(), 1, beta=0.0, mmd_max_elements=1000, **TINY).train()
    capped.load_state_dict(full.state_dict())
    small = MICA(encoders(), 1, beta=0.0, mmd_max_elements=5, **TINY).train()
    small.load_state_dict(full.state_dict())
    reference = full(batch()).aux_losses["mmd"]
    torch.testing.assert_close(capped(batch()).aux_losses["mmd"], reference)  # 1000 > every n: no subsample
    draws = torch.stack([small(batch()).aux_losses["mmd"] for _ in range(3)])
    assert torch.isfinite(draws).all() and not torch.allclose(draws, reference.expand(3))
