"""Sequence networks for the CMU datasets (repro.models.sequence): masked LSTM packing, unimodal LSTM, EF/LF-LSTM,
TFN, LMF and MSAF-MOSEI. Inputs are SYNTHETIC random tensors (shapes and equivalences only, no reproduction)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from repro.models.backbones.sequence_features import SequenceFeatures
from repro.models.fusion.msaf import SequenceMSAFNet
from repro.models.fusion.unimodal import UnimodalNet as SequenceUnimodalNet
from repro.models.sequence.early_late import EarlyFusionLSTM, LateFusionLSTM
from repro.models.sequence.lmf import LowRankFusion, LowRankFusionNet
from repro.models.sequence.recurrent import MaskedLSTM, front_order, masked_mean, real_lengths
from repro.models.sequence.tfn import TensorFusionNet, tensor_fusion, tensor_fusion_size

DIMS = {"text": 7, "audio": 5, "vision": 3}
STEPS = 10
LENGTHS = [10, 6, 3, 1]  # one full row, partial rows, a single real step
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def encoders(dims=DIMS) -> nn.ModuleDict:
    return nn.ModuleDict({m: SequenceFeatures(in_features=d) for m, d in dims.items()})


def step_mask(lengths, steps, side: str) -> torch.Tensor:
    """(B, steps) True on the real steps: at the end ("left" padding, CMU SDK) or the start ("right", MMSA)."""
    pos = torch.arange(steps).unsqueeze(0)
    n = torch.tensor(lengths).unsqueeze(1)
    return pos >= steps - n if side == "left" else pos < n


def make_batch(side: str, steps=None, lengths=LENGTHS, dims=DIMS) -> dict[str, torch.Tensor]:
    """SYNTHETIC batch; side in {left, right, none}. Pads are zero as in the releases."""
    steps = steps or {m: STEPS for m in dims}
    batch = {"label": torch.zeros(len(lengths), 1)}
    for m, d in dims.items():
        x = torch.randn(len(lengths), steps[m], d)
        if side != "none":
            mask = step_mask([min(n, steps[m]) for n in lengths], steps[m], side)
            batch[m] = x * mask.unsqueeze(-1)
            batch[f"{m}_mask"] = mask
        else:
            batch[m] = x
    return batch


def perturb_pads(batch) -> dict[str, torch.Tensor]:
    out = dict(batch)
    for m in DIMS:
        if f"{m}_mask" in batch:
            pads = ~batch[f"{m}_mask"]
            out[m] = batch[m] + 5.0 * torch.randn_like(batch[m]) * pads.unsqueeze(-1)
    return out


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def lstm_params(d_in: int, h: int) -> int:
    return 4 * h * (d_in + h) + 8 * h  # W_ih, W_hh and the two bias vectors of one nn.LSTM layer


def linear_params(d_in: int, d_out: int) -> int:
    return d_in * d_out + d_out


# ---------------------------------------------------------------------------------------------- recurrent pieces


def test_real_lengths_and_front_order_left_and_right():
    for side in ("left", "right"):
        mask = step_mask(LENGTHS, STEPS, side)
        assert real_lengths(mask).tolist() == LENGTHS
        order = front_order(mask)
        for b, n in enumerate(LENGTHS):
            real = torch.nonzero(mask[b]).flatten().tolist()
            assert order[b, :n].tolist() == real  # real steps first, in their order
            assert sorted(order[b].tolist()) == list(range(STEPS))  # a permutation


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packing_equals_running_the_unpadded_sequence(side, bidirectional):
    lstm = MaskedLSTM(4, 6, num_layers=2, bidirectional=bidirectional).eval()
    x = torch.randn(len(LENGTHS), STEPS, 4)
    mask = step_mask(LENGTHS, STEPS, side)
    outputs, last = lstm(x * mask.unsqueeze(-1), mask)
    for b in range(len(LENGTHS)):
        real = x[b : b + 1, mask[b]]  # the row without its padding
        ref_out, (h_n, _) = lstm.lstm(real)
        ref_last = torch.cat(list(h_n[-2:]), dim=-1)[0] if bidirectional else h_n[-1, 0]
        assert torch.allclose(last[b], ref_last, atol=1e-5)
        assert torch.allclose(outputs[b, mask[b]], ref_out[0], atol=1e-5)  # back at the original positions
        assert (outputs[b, ~mask[b]] == 0).all()
        if not bidirectional:
            assert torch.allclose(last[b], outputs[b, mask[b]][-1], atol=1e-6)  # last = output at last real step


def test_unmasked_lstm_runs_over_pads_and_reads_the_final_position():
    lstm = MaskedLSTM(4, 6, use_mask=False).eval()
    x = torch.randn(3, STEPS, 4)
    mask = step_mask([10, 4, 2], STEPS, "right")
    outputs, last = lstm(x, mask)
    ref, _ = lstm.lstm(x)
    assert torch.equal(outputs, ref)
    assert torch.allclose(last, ref[:, -1], atol=1e-6)


def test_row_without_real_steps_reads_one_pad_step():
    lstm = MaskedLSTM(4, 6).eval()
    x = torch.zeros(2, STEPS, 4)
    x[1] = torch.randn(STEPS, 4)
    mask = torch.zeros(2, STEPS, dtype=torch.bool)
    mask[1] = True
    outputs, last = lstm(x, mask)
    ref, _ = lstm.lstm(torch.zeros(1, 1, 4))  # documented: length 0 is read as one zero (padding) step
    assert torch.allclose(last[0], ref[0, 0], atol=1e-6)
    assert (outputs[0] == 0).all()
    assert torch.isfinite(last).all()


def test_masked_mean_ignores_pads_and_empty_rows_are_zero():
    x = torch.randn(2, 5, 3)
    mask = torch.tensor([[False, False, True, True, True], [False] * 5])
    mean = masked_mean(x, mask)
    assert torch.allclose(mean[0], x[0, 2:].mean(dim=0), atol=1e-6)
    assert (mean[1] == 0).all()


# ---------------------------------------------------------------------------------------------- networks


def build(name: str, enc=None, num_classes: int = 3, **overrides):
    enc = encoders() if enc is None else enc
    factories = {
        "unimodal": lambda: SequenceUnimodalNet(enc, num_classes, modality="text", hidden=8, **overrides),
        "ef_lstm": lambda: EarlyFusionLSTM(enc, num_classes, hidden=8, mlp_hidden=[6], dropout=0.1, **overrides),
        "ef_sblstm": lambda: EarlyFusionLSTM(enc, num_classes, hidden=8, layers=2, bidirectional=True, **overrides),
        "lf_lstm": lambda: LateFusionLSTM(enc, num_classes, hidden={"text": 8, "audio": 6, "vision": 4},
                                          mlp_hidden=[6], **overrides),
        "tfn": lambda: TensorFusionNet(enc, num_classes, text_hidden=8, text_out=6, subnet_hidden=4,
                                       post_fusion_hidden=[8], **overrides),
        "lmf": lambda: LowRankFusionNet(enc, num_classes, rank=3, text_hidden=8, text_out=6, subnet_hidden=4,
                                        **overrides),
        "msaf": lambda: SequenceMSAFNet(enc, num_classes, points=[{m: "lstm1" for m in DIMS}], block_channels=4,
                                        reduction=2, block_dropout=0.2, split_block=2,
                                        hidden={"text": 8, "audio": 8, "vision": 4}, **overrides),
    }
    return factories[name]()


NETS = ["unimodal", "ef_lstm", "ef_sblstm", "lf_lstm", "tfn", "lmf", "msaf"]


@pytest.mark.parametrize("side", ["left", "right", "none"])
@pytest.mark.parametrize("name", NETS)
def test_shapes_and_backward(name, side):
    net = build(name).train()
    batch = make_batch(side)
    out = net(batch)
    assert out.logits.shape == (len(LENGTHS), 3)
    loss = out.logits.pow(2).mean()
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_masked_pads_never_change_the_output(name, side):
    net = build(name, use_mask=True).eval()
    batch = make_batch(side)
    perturbed = perturb_pads(batch)
    assert not torch.equal(batch["text"], perturbed["text"])
    assert torch.allclose(net(batch).logits, net(perturbed).logits, atol=1e-5)


@pytest.mark.parametrize("name", ["lf_lstm", "msaf"])
def test_unmasked_networks_do_see_the_pads(name):
    net = build(name, use_mask=False).eval()
    batch = make_batch("right")
    assert not torch.allclose(net(batch).logits, net(perturb_pads(batch)).logits, atol=1e-4)


def test_regression_head_and_two_modalities():
    enc = encoders({"text": 7, "audio": 5})
    for name in ("tfn", "lmf", "ef_lstm"):
        net = build(name, enc=enc, num_classes=1).eval()
        out = net(make_batch("left", dims={"text": 7, "audio": 5}))
        assert out.logits.shape == (len(LENGTHS), 1)


def test_late_fusion_accepts_unaligned_steps_early_fusion_refuses():
    steps = {"text": 10, "audio": 23, "vision": 15}
    batch = make_batch("left", steps=steps)
    assert build("lf_lstm")(batch).logits.shape == (len(LENGTHS), 3)
    assert build("tfn")(batch).logits.shape == (len(LENGTHS), 3)
    with pytest.raises(ValueError, match="aligned data"):
        build("ef_lstm")(batch)


def test_unimodal_keeps_only_its_modality():
    net = build("unimodal")
    assert net.modalities == ["text"]
    out = net({"text": torch.randn(2, 4, 7)})  # other modalities are not needed in the batch
    assert out.logits.shape == (2, 3) and out.extras["modality_logits"].shape == (2, 1, 3)
    # MSAF-MOSEI text LSTM: two LSTMs 768 -> 128 -> 128, Dropout + Linear(128 -> 1).
    mosei = SequenceUnimodalNet(encoders({"text": 768, "audio": 74}), 1, modality="text", hidden={"text": 128})
    assert count(mosei) == lstm_params(768, 128) + lstm_params(128, 128) + linear_params(128, 1)
    with pytest.raises(KeyError, match="not one of the encoders"):
        SequenceUnimodalNet(encoders(), 1, modality="image", hidden=8)


# ---------------------------------------------------------------------------------------------- TFN / LMF


def test_tfn_fused_size_is_the_product_formula():
    net = build("tfn")
    assert net.fused_size == (6 + 1) * (4 + 1) * (4 + 1) == tensor_fusion_size([6, 4, 4])
    z = [torch.randn(2, 6), torch.randn(2, 4), torch.randn(2, 4)]
    fused = tensor_fusion(z)
    assert fused.shape == (2, 175)
    # entry (i, j, k) = [z1;1]_i [z2;1]_j [z3;1]_k; the all-"1" corner is 1, edges hold the unimodal terms.
    cube = fused.view(2, 7, 5, 5)
    assert torch.allclose(cube[:, 2, 3, 1], z[0][:, 2] * z[1][:, 3] * z[2][:, 1])
    assert torch.allclose(cube[:, :6, 4, 4], z[0]) and torch.all(cube[:, 6, 4, 4] == 1)
    # TFN on MOSI-sized embeddings (128, 32, 32): 129 * 33 * 33.
    assert tensor_fusion_size([128, 32, 32]) == 140481


def test_lmf_parameter_count_matches_formula():
    dims, out = [6, 4, 5], 3
    for rank in (1, 4):
        fusion = LowRankFusion(dims, out, rank)
        assert count(fusion) == rank * sum(d + 1 for d in dims) * out + rank + out


def test_lmf_equals_tfn_contraction_with_the_multiplied_out_weight():
    dims, out, rank = [6, 4, 5], 3, 4
    fusion = LowRankFusion(dims, out, rank)
    with torch.no_grad():
        fusion.fusion_bias.normal_()
    z = [torch.randn(8, d) for d in dims]
    # Full weight built independently from the factors: W[i,j,k,o] = sum_r lambda_r W1[r,i,o] W2[r,j,o] W3[r,k,o].
    w1, w2, w3 = fusion.factors
    full = torch.einsum("r,rio,rjo,rko->ijko", fusion.fusion_weights[0], w1, w2, w3).reshape(-1, out)
    assert torch.allclose(fusion.full_weight(), full, atol=1e-5)
    tfn_contraction = tensor_fusion(z) @ full + fusion.fusion_bias  # TFN's tensor times the full weight
    assert torch.allclose(fusion(z), tfn_contraction, atol=1e-4)


def test_lmf_head_identity_or_linear():
    assert isinstance(build("lmf").head, nn.Identity)
    net = build("lmf", fusion_dim=5)
    assert net.fusion.out_features == 5 and net.head.out_features == 3


# ---------------------------------------------------------------------------------------------- MSAF for sequences


def test_msaf_mosei_parameter_count_by_hand():
    enc = encoders({"vision": 35, "audio": 74, "text": 768})
    net = SequenceMSAFNet(enc, 1, points=[{"vision": "lstm1", "audio": "lstm1", "text": "lstm1"}],
                          block_channels=[16], reduction=2, block_dropout=0.2, split_block=5)
    hidden = {"vision": 32, "audio": 64, "text": 128}  # msaf.txt §4.2 defaults
    lstms = sum(lstm_params(d, hidden[m]) + lstm_params(hidden[m], hidden[m]) for m, d in net.dims.items())
    c, r, q = 16, 2, 5
    blocks = sum(math.ceil(h / c) for h in hidden.values())  # 2 + 4 + 8
    msaf_block = linear_params(c, c // r) + 2 * (c // r) + blocks * linear_params(c // r, c)  # joint FC + BN, FCs
    expected = lstms + q * msaf_block + linear_params(sum(hidden.values()), 1)
    assert blocks == 14 and expected == 689_337
    assert count(net) == expected


def test_msaf_records_attention_and_defaults_to_unmasked():
    net = build("msaf").eval()
    assert net.use_mask is False
    out = net(make_batch("left"))
    att = out.extras["msaf0_attention"]
    assert att.shape == (len(LENGTHS), 2, 2 + 2 + 1, 4)  # (B, q, blocks 8/4 + 8/4 + 4/4, C)
    assert torch.allclose(att.sum(dim=2), torch.ones(len(LENGTHS), 2, 4), atol=1e-5)


def test_msaf_point_on_a_subset_of_modalities():
    net = SequenceMSAFNet(encoders(), 2, points=[{"text": "lstm1", "audio": "lstm1"}], block_channels=4,
                          hidden={"text": 8, "audio": 8, "vision": 4})
    assert net.point_modalities == ["text", "audio"]
    assert net(make_batch("none")).logits.shape == (len(LENGTHS), 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"points": [{"text": "lstm2"}]}, ValueError, "the only tap is 'lstm1'"),
        ({"points": [{"text": "lstm1"}, {"audio": "lstm1"}]}, ValueError, "one fusion point"),
        ({"points": []}, ValueError, "one fusion point"),
        ({"points": [{"image": "lstm1"}]}, KeyError, "fusion point names modalities"),
        ({"block_channels": [4, 8]}, ValueError, "block_channels has 2 values"),
        ({"points": [{"text": "lstm1"}], "hidden": {"text": 8}, "encoders": {"text": 7, "pose": 3}}, ValueError,
         "no size for modalities"),
    ],
)
def test_msaf_bad_config_errors(kwargs, error, match):
    config = {"points": [{"text": "lstm1", "audio": "lstm1"}], "block_channels": 4}
    config.update(kwargs)
    enc = encoders(config.pop("encoders", DIMS))
    with pytest.raises(error, match=match):
        SequenceMSAFNet(enc, 1, **config)


def test_other_bad_configs():
    with pytest.raises(ValueError, match="no size for modalities"):
        LateFusionLSTM(encoders(), 1, hidden={"text": 4})
    with pytest.raises(ValueError, match="lstm_modalities"):
        TensorFusionNet(encoders(), 1, lstm_modalities=["words"])
    with pytest.raises(ValueError, match="2 or more modalities"):
        LowRankFusionNet(encoders({"text": 7}), 1)
    with pytest.raises(TypeError, match="pre-extracted features"):
        EarlyFusionLSTM({"text": nn.Identity()}, 1)


# ---------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", ["ef_lstm", "lf_lstm", "tfn", "lmf"])
def test_fusion_configs_instantiate(name):
    hydra = pytest.importorskip("hydra")
    from hydra.utils import instantiate

    with hydra.initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = hydra.compose(overrides=[f"+fusion={name}"])
    assert cfg.fusion.name == name
    net = instantiate(cfg.fusion.net)(encoders=encoders(), num_classes=1)
    assert net(make_batch("left")).logits.shape == (len(LENGTHS), 1)
