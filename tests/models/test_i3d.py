"""I3D RGB encoder (NTU): parameter counts as the references, tap shapes, "same" padding, piergiaj-layout loading.

Clips here are SYNTHETIC random tensors; shapes at the authors' 32×224² are computed on the meta device.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from repro.config import ConfigError
from repro.models.backbones import i3d
from repro.models.backbones.i3d import I3D, load_piergiaj, piergiaj_state_dict, same_padding

# Derived by hand from the reference's layer list (piergiaj `InceptionI3d` / the MSAF fork's `I3D`, identical layers):
# each conv unit = c_in·c_out·k³ weights (no bias) + 2·c_out BN affine parameters; the logits conv = 1024·n + n.
REFERENCE_UNITS = [(3, 64, 7), (64, 64, 1), (64, 192, 3)]           # Conv3d_1a_7x7, Conv3d_2b_1x1, Conv3d_2c_3x3
REFERENCE_INCEPTION = [  # (c_in, [b0, b1a, b1b, b2a, b2b, b3b]) for Mixed_3b .. Mixed_5c, as pytorch_i3d.py
    (192, [64, 96, 128, 16, 32, 32]), (256, [128, 128, 192, 32, 96, 64]), (480, [192, 96, 208, 16, 48, 64]),
    (512, [160, 112, 224, 24, 64, 64]), (512, [128, 128, 256, 24, 64, 64]), (512, [112, 144, 288, 32, 64, 64]),
    (528, [256, 160, 320, 32, 128, 128]), (832, [256, 160, 320, 32, 128, 128]), (832, [384, 192, 384, 48, 128, 128])]
PARAMS_400 = 12_697_264  # piergiaj's InceptionI3d(num_classes=400): the Kinetics / rgb_imagenet.pt network
PARAMS_60 = 12_348_764   # the MSAF fork's I3D(num_classes=60) = PARAMS_400 − 340·(1024 + 1)


def reference_count(num_classes: int) -> int:
    def unit(c_in: int, c_out: int, k: int) -> int:
        return c_in * c_out * k ** 3 + 2 * c_out
    total = sum(unit(*u) for u in REFERENCE_UNITS)
    for c_in, (b0, b1a, b1b, b2a, b2b, b3b) in REFERENCE_INCEPTION:
        total += unit(c_in, b0, 1) + unit(c_in, b1a, 1) + unit(b1a, b1b, 3) + unit(c_in, b2a, 1)
        total += unit(b2a, b2b, 3) + unit(c_in, b3b, 1)
    return total + 1024 * num_classes + num_classes


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_are_the_references():
    assert reference_count(400) == PARAMS_400 and reference_count(60) == PARAMS_60
    assert n_params(I3D(num_classes=60)) == PARAMS_60
    assert n_params(I3D(num_classes=400, variant="piergiaj")) == PARAMS_400
    bns = [m for m in I3D().modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bns) == 3 + 9 * 6 and {(m.eps, m.momentum) for m in bns} == {(1e-3, 1e-3)}
    assert I3D().head.dropout.p == 0.5  # the fork's dropout_drop_prob before the logits conv
    assert {m.momentum for m in I3D(variant="piergiaj").modules() if isinstance(m, torch.nn.BatchNorm3d)} == {0.01}


def test_taps_at_the_authors_32x224_clip():
    net = I3D().to("meta")
    taps = dict(zip(net.stage_names, net.taps(torch.empty(1, 3, 32, 224, 224, device="meta"))))
    assert net.stage_names == ["Conv3d_2c_3x3", "Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d",
                               "Mixed_4e", "Mixed_4f", "Mixed_5b", "Mixed_5c"]
    assert [tuple(t.shape[1:]) for t in taps.values()] == [
        (192, 16, 56, 56), (256, 16, 28, 28), (480, 16, 28, 28), (512, 8, 14, 14), (512, 8, 14, 14),
        (512, 8, 14, 14), (528, 8, 14, 14), (832, 8, 14, 14), (832, 4, 7, 7), (1024, 4, 7, 7)]
    assert net.stage_channels == [t.shape[1] for t in taps.values()]
    assert set(i3d.MSAF_TAPS) <= set(net.stage_names) and net.embed_dim == 1024
    assert tuple(net(torch.empty(2, 3, 32, 224, 224, device="meta")).shape) == (2, 60)


def test_same_padding_is_piergiajs_compute_pad():
    # piergiaj: total = max(k − s, 0) if size % s == 0 else max(k − size % s, 0); front = total // 2.
    assert same_padding(224, 7, 2) == (2, 3) and same_padding(32, 7, 2) == (2, 3)
    assert same_padding(112, 3, 2) == (0, 1) and same_padding(7, 2, 2) == (0, 1) and same_padding(8, 2, 2) == (0, 0)
    assert same_padding(56, 3, 1) == (1, 1) and same_padding(9, 1, 1) == (0, 0)


def test_same_padding_gives_ceil_sizes_where_the_fork_floors():
    """At 16×112² Mixed_4f is 7×7: MaxPool3d_5a (2, stride 2) gives ceil → 4 with "same", the fork's unpadded 3."""
    clip = torch.empty(1, 3, 16, 112, 112, device="meta")
    same = I3D(variant="piergiaj").to("meta").taps(clip)
    fork = I3D(variant="msaf").to("meta").taps(clip)
    t, s = 16, 112
    expected = []
    for stride_t, stride_s in [(2, 4), (1, 2), (1, 1), (2, 2), (1, 1), (1, 1), (1, 1), (1, 1), (2, 2), (1, 1)]:
        t, s = math.ceil(t / stride_t), math.ceil(s / stride_s)  # conv 1a halves T, H; pool 2a halves H again
        expected.append((t, s, s))
    assert [tuple(x.shape[2:]) for x in same] == expected
    assert tuple(same[-1].shape[2:]) == (2, 4, 4) and tuple(fork[-1].shape[2:]) == (2, 3, 3)


def test_same_unit_pads_back_heavier_as_tensorflow():
    torch.manual_seed(0)
    unit = i3d.Unit3D(3, 4, 7, stride=2, same=True).eval()
    x = torch.randn(1, 3, 8, 10, 10)
    expected = F.relu(unit.bn(F.conv3d(F.pad(x, (2, 3, 2, 3, 2, 3)), unit.conv3d.weight, stride=2)))
    torch.testing.assert_close(unit(x), expected)


def test_frames_first_layout_is_the_same_function():
    torch.manual_seed(0)
    net = I3D().eval()
    frames_first = I3D(input_layout="BTCHW").eval()
    frames_first.load_state_dict(net.state_dict())
    clip = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(frames_first(clip.permute(0, 2, 1, 3, 4)), net(clip))


def test_piergiaj_layout_round_trips_and_drops_400_class_logits(tmp_path):
    torch.manual_seed(0)
    source = I3D(num_classes=400, variant="piergiaj")
    state = piergiaj_state_dict(source)
    assert {"Conv3d_1a_7x7.conv3d.weight", "Mixed_4b.b1b.conv3d.weight", "Mixed_5c.b3b.bn.running_var",
            "logits.conv3d.weight", "logits.conv3d.bias"} <= set(state)
    assert len(state) == len(source.state_dict()) and not any(k.startswith(("stages", "head")) for k in state)
    # rgb_imagenet.pt predates BN counters: drop them, as a real checkpoint may.
    path = tmp_path / "rgb_imagenet.pt"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)

    same_size = I3D(num_classes=400, pretrained=str(path))
    for (key, theirs), ours in zip(source.state_dict().items(), same_size.state_dict().values()):
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(ours, theirs, msg=key)

    ntu = I3D(num_classes=60)
    fresh_logits = ntu.head.logits.conv3d.weight.clone()
    load_piergiaj(ntu, path)
    torch.testing.assert_close(ntu.head.logits.conv3d.weight, fresh_logits)  # 400-class logits dropped
    torch.testing.assert_close(ntu.stages[9].Mixed_5c.b3b.bn.running_var, source.stages[9].Mixed_5c.b3b.bn.running_var)


def test_a_missing_or_misshapen_key_is_one_line_naming_file_and_key(tmp_path):
    state = piergiaj_state_dict(I3D(num_classes=400))
    missing = tmp_path / "missing.pt"
    torch.save({k: v for k, v in state.items() if k != "Mixed_4f.b2b.bn.running_mean"}, missing)
    with pytest.raises(ConfigError, match=r"missing\.pt does not fit this I3D: missing Mixed_4f\.b2b\.bn\.running_mean"
                       ) as err:
        I3D(pretrained=str(missing))
    assert "\n" not in str(err.value)
    wrong = tmp_path / "wrong.pt"
    torch.save({**state, "Conv3d_2b_1x1.conv3d.weight": torch.zeros(64, 64, 3, 3, 3)}, wrong)
    with pytest.raises(ConfigError, match=r"wrong\.pt .*wrong shape Conv3d_2b_1x1\.conv3d\.weight") as err:
        I3D(pretrained=str(wrong))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"absent\.pt do not exist"):
        I3D(pretrained=str(tmp_path / "absent.pt"))


def test_learns_a_fixed_synthetic_batch():
    """SYNTHETIC: 4 random 8×32² clips with 4 labels; a few Adam steps must cut the training loss."""
    torch.manual_seed(0)
    net = I3D(num_classes=60, dropout=0.0).train()
    gen = torch.Generator().manual_seed(0)
    clips, labels = torch.randn(4, 3, 8, 32, 32, generator=gen), torch.tensor([0, 7, 21, 59])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = F.cross_entropy(net(clips), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_bad_variant_or_layout_is_one_line():
    with pytest.raises(ValueError, match="variant='tf'.*msaf.*piergiaj"):
        I3D(variant="tf")
    with pytest.raises(ValueError, match="input_layout='BTHWC'"):
        I3D(input_layout="BTHWC")


def fork_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """piergiaj keys -> the MSAF fork's `features.N.branchB.I.{conv,bn}` keys, written out from its `I3D.features`."""
    index = {v: k for k, v in i3d.FORK_FEATURES.items()}
    branch = {v: k for k, v in i3d.FORK_BRANCHES.items()}
    out = {}
    for key, value in state.items():
        if key.startswith("logits.conv3d."):
            out[f"features.18.{key.rsplit('.', 1)[1]}"] = value
            continue
        name, *rest = key.split(".")
        if rest[0] in branch:
            rest = [branch[rest[0]], *rest[1:]]
        rest = ["conv" if r == "conv3d" else r for r in rest]
        out[".".join(["features", str(index[name]), *rest])] = value
    return out


def test_the_msaf_fork_layout_loads_too(tmp_path):
    torch.manual_seed(0)
    source = I3D(num_classes=60)
    fork = fork_layout(piergiaj_state_dict(source))
    assert {"features.0.conv.weight", "features.8.branch1.1.bn.running_var", "features.14.branch3.1.conv.weight",
            "features.18.weight", "features.18.bias"} <= set(fork)
    path = tmp_path / "i3d_32frames.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in fork.items()}}, path)
    loaded = I3D(num_classes=60, pretrained=str(path))
    for (key, theirs), ours in zip(source.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(ours, theirs, msg=key)
