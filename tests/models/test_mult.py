"""MulT (mult.py) and MICA (mica.py) on tiny SYNTHETIC unaligned, left-zero-padded random batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repro.models.backbones.sequence_features import SequenceFeatures
from repro.models.sequence.dropout import keep_mask
from repro.models.sequence.mica import MICA, MergeGate
from repro.models.sequence.mult import (
    AttentionMask,
    DropoutAttention,
    EncoderLayer,
    MulT,
    MultiheadAttention,
    masked_probabilities,
    padded_head_attention,
    sinusoidal_embedding,
    step_positions,
)

DIMS = {"text": 5, "audio": 4, "vision": 3}
STEPS = {"text": 6, "audio": 12, "vision": 10}
NO_DROPOUT = {"attn_dropout": 0.0, "relu_dropout": 0.0, "res_dropout": 0.0, "embed_dropout": 0.0}
TINY = {"d": 8, "heads": 2, "layers": 2, "kernel_size": {"text": 3, "audio": 3, "vision": 1}}


def encoders():
    return {m: SequenceFeatures(d) for m, d in DIMS.items()}


def left_padded_batch(real=None, seed=0, batch_size=3, steps=STEPS):
    """SYNTHETIC: random features, zeros before the real steps (the CMU releases' left padding), masks."""
    g = torch.Generator().manual_seed(seed)
    real = real or {m: [steps[m], steps[m] - 3, 2][:batch_size] for m in DIMS}
    batch = {}
    for m, d in DIMS.items():
        lengths = torch.tensor(real[m])
        mask = torch.arange(steps[m]) >= (steps[m] - lengths)[:, None]
        batch[m] = torch.randn(batch_size, steps[m], d, generator=g) * mask[..., None]
        batch[f"{m}_mask"] = mask
    return batch


def make(cls=MulT, num_classes=1, seed=0, **overrides):
    torch.manual_seed(seed)
    return cls(encoders(), num_classes, **{**TINY, **NO_DROPOUT, **overrides}).eval()


@pytest.mark.parametrize("cls", [MulT, MICA])
@pytest.mark.parametrize("num_classes", [1, 8])
def test_output_shapes_on_unaligned_batches(cls, num_classes):
    out = make(cls, num_classes)(left_padded_batch())
    assert out.logits.shape == (3, num_classes)
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("cls", [MulT, MICA])
@pytest.mark.parametrize("readout", ["mean", "last"])
def test_pad_features_do_not_change_logits(cls, readout):
    net = make(cls, readout=readout)
    batch = left_padded_batch()
    noisy = dict(batch)
    for m in DIMS:
        noisy[m] = torch.where(batch[f"{m}_mask"][..., None], batch[m], torch.full_like(batch[m], 7.0))
    assert not torch.equal(noisy["audio"], batch["audio"])
    torch.testing.assert_close(net(noisy).logits, net(batch).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cls", [MulT, MICA])
def test_an_all_padding_modality_row_gives_finite_output(cls):
    real = {"text": [6, 4, 2], "audio": [0, 5, 2], "vision": [10, 0, 3]}
    for quirks in ({}, {"quirk_causal_mask": True}):
        net = make(cls, **quirks)
        out = net(left_padded_batch(real))
        assert torch.isfinite(out.logits).all()
        net.train()
        out = net(left_padded_batch(real))
        loss = out.logits.sum() + sum(out.aux_losses.values())
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_fully_masked_query_rows_attend_to_nothing():
    attention = MultiheadAttention(4, 2, 0.0).eval()
    key_mask = torch.tensor([[False, False, False], [True, True, False]])
    mask = AttentionMask(key_mask, query_steps=2, causal=False)
    query, key = torch.randn(2, 2, 4), torch.randn(2, 3, 4)
    out, _ = attention(query, key, key, mask)
    # sample 0 has no real key: its attention mix is zero, so the output is the out-projection's bias
    torch.testing.assert_close(out[0], attention.out_proj.bias.expand(2, 4))
    assert torch.isfinite(out).all()


def test_causal_quirk_mask_is_mults_triu():
    mask = AttentionMask(torch.ones(1, 5, dtype=torch.bool), query_steps=3, causal=True)
    expected = torch.tensor([[j <= i + 2 for j in range(5)] for i in range(3)])  # triu(-inf, 1 + |5 - 3|)
    assert torch.equal(mask.allowed[0, 0], expected)
    assert AttentionMask(torch.ones(1, 5, dtype=torch.bool), 3, causal=False).allowed is None


@pytest.mark.parametrize("causal", [False, True])
def test_causal_quirk_hides_the_future(causal):
    """Equal lengths, kernel 1: with the quirk the cross-modal outputs before the last step ignore the last step."""
    steps = {m: 8 for m in DIMS}
    net = make(kernel_size=1, quirk_causal_mask=causal)
    batch = left_padded_batch({m: [8, 8, 8] for m in DIMS}, steps=steps)
    changed = {k: v.clone() for k, v in batch.items()}
    for m in DIMS:
        changed[m][:, -1] += 1.0

    def streams(b):
        xs, masks = net.sequences(b)
        return net.crossmodal_streams(net.project(xs, masks), masks)["text"]

    before, after = streams(batch), streams(changed)
    assert torch.allclose(before[:, :-1], after[:, :-1], atol=1e-6) == causal
    assert not torch.allclose(before[:, -1], after[:, -1])


def test_first_feature_positions_quirk():
    x = torch.tensor([[[0.0, 1.0], [0.0, 2.0], [3.0, 0.0], [1.0, 1.0]]])
    assert step_positions(x, from_first_feature=False).tolist() == [[1, 2, 3, 4]]
    assert step_positions(x, from_first_feature=True).tolist() == [[0, 0, 3, 4]]
    table = sinusoidal_embedding(torch.tensor([0, 1]), 6)
    assert torch.equal(table[0], torch.zeros(6))
    # fairseq: frequencies 10000^(-j/(half-1)) = 1, 0.01, 1e-4 for dim 6; sin half then cos half
    assert table[1].tolist() == pytest.approx([0.841471, 0.00999983, 1e-4, 0.540302, 0.99995, 1.0], abs=1e-6)
    # unmasked zero-padded data (the released code's input): the quirk changes the logits; without zero first
    # features it changes nothing
    padded = {k: v for k, v in left_padded_batch().items() if not k.endswith("_mask")}
    full = left_padded_batch({m: [STEPS[m]] * 3 for m in DIMS})
    plain, quirky = make(kernel_size=1), make(kernel_size=1, quirk_position_from_first_feature=True)
    assert not torch.allclose(plain(padded).logits, quirky(padded).logits)
    torch.testing.assert_close(plain(full).logits, quirky(full).logits)


@pytest.mark.parametrize("cls", [MulT, MICA])
def test_explicit_attention_equals_sdpa(cls):
    net = make(cls)
    batch = left_padded_batch()
    sdpa = net(batch).logits
    for module in net.modules():
        if isinstance(module, MultiheadAttention):
            module.explicit = True
    torch.testing.assert_close(net(batch).logits, sdpa, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cls", [MulT, MICA])
def test_attention_dropout_follows_the_released_get_network(cls):
    """yaohungt/Multimodal-Transformer src/models.py `get_network`: a unit gets its SOURCE's attention dropout
    ('la' = text attending to audio -> attn_dropout_a, ...) and l_mem, a_mem, v_mem all get attn_dropout."""
    net = make(cls, attn_dropout=0.1, attn_dropout_audio=0.2, attn_dropout_vision=0.3)
    released = {"la": 0.2, "lv": 0.3, "al": 0.1, "av": 0.3, "vl": 0.1, "va": 0.2,  # self_type -> its dropout
                "l_mem": 0.1, "a_mem": 0.1, "v_mem": 0.1}
    ours = {"la": "text_with_audio", "lv": "text_with_vision", "al": "audio_with_text", "av": "audio_with_vision",
            "vl": "vision_with_text", "va": "vision_with_audio"}
    stacks = {**{r: net.crossmodal[name] for r, name in ours.items()},
              **{f"{r}_mem": net.memory[m] for r, m in (("l", "text"), ("a", "audio"), ("v", "vision"))}}
    got = {r: sorted({layer.attention.dropout for layer in stack.layers}) for r, stack in stacks.items()}
    assert got == {r: [p] for r, p in released.items()}


def reference_dropout_attention(q, k, v, allowed, p, step):
    """Autograd through the explicit formula, with the keep-masks DropoutAttention draws (chunk by chunk)."""
    keep = torch.cat([keep_mask((min(step, q.shape[0] - start), *q.shape[1:3], k.shape[2]), p, q.device)
                      for start in range(0, q.shape[0], step)])
    return (masked_probabilities(q, k, allowed) * keep / (1 - p)) @ v, keep


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("step", [1, 2, 5])  # one sample per chunk, an uneven split, the whole batch
def test_dropout_attention_equals_autograd_through_the_explicit_formula(causal, step):
    g = torch.Generator().manual_seed(0)
    batch, heads, target_len, source_len, d_k, p = 5, 2, 7, 9, 3, 0.3
    q, k, v = (torch.randn(batch, heads, n, d_k, generator=g, requires_grad=True)
               for n in (target_len, source_len, source_len))
    key_mask = torch.arange(source_len)[None, :] >= torch.tensor([0, 2, 4, 8, 9])[:, None]  # last row: no key
    allowed = AttentionMask(key_mask, target_len, causal).allowed
    grad_out = torch.randn(batch, heads, target_len, d_k, generator=g)
    torch.manual_seed(3)
    out = DropoutAttention.apply(q, k, v, allowed, p, step)
    after_forward = torch.get_rng_state()
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    assert torch.equal(torch.get_rng_state(), after_forward)  # backward replays the draws on a forked generator
    torch.manual_seed(3)
    expected, keep = reference_dropout_attention(q, k, v, allowed, p, step)
    assert 0.5 < keep.float().mean() < 0.9  # dropout did drop (p = 0.3)
    torch.testing.assert_close(out, expected)
    for grad, reference in zip(grads, torch.autograd.grad(expected, (q, k, v), grad_out), strict=True):
        torch.testing.assert_close(grad, reference)
    undropped = masked_probabilities(q, k, allowed) @ v
    assert not torch.allclose(out, undropped, atol=1e-3)


@pytest.mark.parametrize("d_k", [4, 6, 8])  # MICA Table 1's, the released code's, one already aligned
def test_padded_head_attention_equals_attention_on_the_true_head_size(d_k):
    """CUDA pads d_k for its fused kernels (fused_attention): same output and gradients as the unpadded softmax."""
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(3, 2, n, d_k, generator=g, requires_grad=True) for n in (5, 7, 7))
    allowed = AttentionMask(torch.arange(7)[None, :] >= torch.tensor([0, 3, 6])[:, None], 5, False).allowed
    got = padded_head_attention(q, k, v, allowed, 0.0, multiple=8)
    expected = masked_probabilities(q, k, allowed) @ v
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)
    grad_out = torch.randn(expected.shape, generator=g)
    for grad, reference in zip(torch.autograd.grad(got, (q, k, v), grad_out),
                               torch.autograd.grad(expected, (q, k, v), grad_out), strict=True):
        torch.testing.assert_close(grad, reference)


def test_attention_with_dropout_matches_the_explicit_path_in_a_training_net():
    """The layers' DropoutAttention path (one chunk: one keep-mask draw, as `explicit_mix`) = the explicit path."""
    results = []
    for explicit in (False, True):
        net = make(attn_dropout=0.3, attn_dropout_audio=0.2, attn_dropout_vision=0.4).train()
        for module in net.modules():
            if isinstance(module, MultiheadAttention):
                module.explicit, module.dropout_chunk_elements = explicit, 10**9
        torch.manual_seed(1)
        logits = net(left_padded_batch()).logits
        logits.square().sum().backward()
        results.append((logits.detach(), [p.grad.clone() for p in net.parameters()]))
    (logits, grads), (logits_explicit, grads_explicit) = results
    torch.testing.assert_close(logits, logits_explicit)
    for g, g_explicit in zip(grads, grads_explicit, strict=True):
        torch.testing.assert_close(g, g_explicit)
    torch.manual_seed(1)
    net = make(attn_dropout=0.0, attn_dropout_audio=0.0, attn_dropout_vision=0.0).train()
    torch.manual_seed(1)
    assert not torch.allclose(net(left_padded_batch()).logits, logits, atol=1e-4)  # the dropout did act


def test_alignment_hook_returns_queries_keys_and_probabilities():
    layer = make().crossmodal["text_with_audio"].layers[0]
    batch = left_padded_batch()
    x, source = torch.randn(3, 6, 8), torch.randn(3, 12, 8)
    mask = AttentionMask(batch["audio_mask"], 6, causal=False)
    _, info = layer(x, source, source, mask, details=True)
    assert info["queries"].shape == (3, 2, 6, 4) and info["keys"].shape == (3, 2, 12, 4)
    attention = info["attention"]
    assert attention.shape == (3, 2, 6, 12) and not attention.requires_grad
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 2, 6))
    assert (attention[2, :, :, :10] == 0).all()  # sample 2 has 2 real audio steps, the last two
    assert layer(x, source, source, mask)[1] is None


@pytest.mark.parametrize("cls", [MulT, MICA])
def test_gradient_reaches_every_parameter(cls):
    net = make(cls, num_classes=8).train()
    out = net(left_padded_batch())
    (out.logits.square().sum() + sum(out.aux_losses.values())).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def layer_params(w: int) -> int:
    """in-projection 3w²+3w, out w²+w, two LayerNorms 4w, FFN w·4w+4w + 4w·w+w."""
    return 12 * w * w + 13 * w


def test_parameter_count_matches_formula():
    net = make(num_classes=8, memory_layers=3)
    d, layers, m, classes = 8, 2, 3, 8
    projections = d * (5 * 3 + 4 * 3 + 3 * 1)
    crossmodal = m * (m - 1) * (layers * layer_params(d) + 2 * d)
    width = (m - 1) * d
    memory = m * (3 * layer_params(width) + 2 * width)
    joint = m * width
    head = 2 * (joint * joint + joint) + joint * classes + classes
    assert sum(p.numel() for p in net.parameters()) == projections + crossmodal + memory + head
    assert make().memory_layers == 3 and make(layers=5).memory_layers == 5  # max(layers, 3) as MulT


def test_hardcoded_d30_quirk_and_bad_configs():
    net = make(d=16, heads=5, quirk_hardcoded_d30=True)
    assert net.d == 30 and all(p.kernel_size == (1,) for p in net.projections.values())
    with pytest.raises(ValueError, match="readout"):
        make(readout="first")
    with pytest.raises(ValueError, match="divisible"):
        make(d=9)


# ------------------------------------------------------------------------------------------------ MICA
def test_merge_gate_shapes_and_formula():
    gate = MergeGate(4)
    assert gate.first.weight.shape == (4, 4) and gate.second.weight.shape == (4, 4) and gate.bias.shape == (4,)
    z1, z2 = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    with torch.no_grad():
        gate.first.weight.zero_()
        gate.second.weight.zero_()
    merged, g = gate(z1, z2)
    torch.testing.assert_close(g, torch.full((2, 3, 4), 0.5))
    torch.testing.assert_close(merged, (z1 + z2) / 2)
    per_position = MergeGate(4, bias_steps=5)
    assert per_position.bias.shape == (5, 4)
    with pytest.raises(ValueError, match="gate_bias_steps"):
        per_position(torch.randn(1, 6, 4), torch.randn(1, 6, 4))


def test_mica_gates_and_extras():
    net = make(MICA, gate_bias_steps={"audio": 12})
    assert len(net.gates) == 2 and set(net.gates[0]) == set(DIMS)
    assert net.gates[1]["audio"].bias.shape == (12, 8) and net.gates[1]["text"].bias.shape == (8,)
    out = net(left_padded_batch())
    assert out.extras["gate_vision"].shape == (3, 10, 8)
    assert not any(k.startswith("attention_") for k in out.extras)
    net.export_attention_layer = 1
    extras = net(left_padded_batch()).extras
    assert extras["attention_text_with_audio"].shape == (3, 2, 6, 12)
    assert extras["attention_audio_with_vision"].shape == (3, 2, 12, 10)
    assert len([k for k in extras if k.startswith("attention_")]) == 6
    assert make(MICA, memory_input="streams").proj1.in_features == 6 * 8 and net.proj1.in_features == 3 * 8


@pytest.mark.parametrize(("alpha", "beta", "keys"), [(0.8, 0.5, {"mmd", "pea"}), (0.0, 0.5, {"pea"}),
                                                     (0.8, 0.0, {"mmd"}), (0.0, 0.0, set())])
def test_mica_aux_losses_follow_the_weights(alpha, beta, keys):
    net = make(MICA, alpha=alpha, beta=beta).train()
    out = net(left_padded_batch())
    assert set(out.aux_losses) == keys
    assert all(v.ndim == 0 and torch.isfinite(v) and v > 0 for v in out.aux_losses.values())
    assert net.eval()(left_padded_batch()).aux_losses == {}  # not computed at evaluation (align_in_eval=False)


def test_mica_without_gate_is_mults_structure():
    mult, mica = make(MulT), make(MICA, gate=False)
    shapes = {k: v.shape for k, v in mult.state_dict().items()}
    assert {k: v.shape for k, v in mica.state_dict().items()} == shapes
    batch = left_padded_batch()
    torch.testing.assert_close(mica(batch).logits, mult(batch).logits, rtol=0, atol=1e-6)


def test_propagation_changes_the_element_loss():
    batch = left_padded_batch()
    propagated = make(MICA, alpha=0.0, layers=3, tau=0.2).train()(batch).aux_losses["pea"]
    plain = make(MICA, alpha=0.0, layers=3, tau=0.2, propagate=False).train()(batch).aux_losses["pea"]
    assert propagated > plain  # V = W ∪ V_prev selects at least the pairs of W, and more here


def test_mica_config_errors():
    two = {m: SequenceFeatures(d) for m, d in list(DIMS.items())[:2]}
    with pytest.raises(ValueError, match="three modalities"):
        MICA(two, 1, **TINY)
    MICA(two, 1, gate=False, **TINY)  # the MulT structure works with two
    with pytest.raises(ValueError, match="memory_input"):
        make(MICA, memory_input="concat")


@pytest.mark.parametrize("cls", [MulT, MICA])
@pytest.mark.parametrize(("layers", "ffn"), [(True, False), (False, True), (True, True)])
def test_checkpointing_gives_the_same_loss_and_gradients(cls, layers, ffn):
    results = []
    for checkpoint_layers, checkpoint_ffn in ((False, False), (layers, ffn)):
        net = make(cls, checkpoint_layers=checkpoint_layers, checkpoint_ffn=checkpoint_ffn, embed_dropout=0.2,
                   relu_dropout=0.1, attn_dropout=0.1).train()
        assert {m.checkpoint_ffn for m in net.modules() if isinstance(m, EncoderLayer)} == {checkpoint_ffn}
        torch.manual_seed(1)
        out = net(left_padded_batch())
        (out.logits.sum() + sum(out.aux_losses.values())).backward()
        results.append((out.logits.detach(), [p.grad.clone() for p in net.parameters()]))
    (logits, grads), (logits_ckpt, grads_ckpt) = results
    torch.testing.assert_close(logits_ckpt, logits)
    for g, g_ckpt in zip(grads, grads_ckpt, strict=True):
        torch.testing.assert_close(g_ckpt, g)


@pytest.mark.parametrize("name", ["mult", "mica"])
def test_fusion_configs_compose_and_run(name):
    hydra = pytest.importorskip("hydra")
    from hydra.utils import instantiate

    configs = str(Path(__file__).resolve().parents[2] / "configs")
    with hydra.initialize_config_dir(config_dir=configs, version_base="1.3"):
        cfg = hydra.compose(overrides=[f"+fusion={name}"])
    assert cfg.fusion.net.d == 40 and cfg.fusion.net.heads == 10 and cfg.fusion.net.layers == 6
    net = instantiate(cfg.fusion.net)(encoders=encoders(), num_classes=8)
    assert type(net) is {"mult": MulT, "mica": MICA}[name]
    if name == "mica":
        assert (net.tau, net.alpha, net.beta) == (0.3, 0.8, 0.5)
    assert net.eval()(left_padded_batch()).logits.shape == (3, 8)
