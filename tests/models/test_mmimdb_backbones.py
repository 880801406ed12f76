"""The MM-IMDB encoders (MFAS §4.3): VGG-19 cut at named taps, ImageNet weights from a torchvision-format state
dict, and the Maxout MLP text encoder."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from repro.config import ConfigError
from repro.models.backbones.base import global_average
from repro.models.backbones.maxout_mlp import Maxout, MaxoutMLP
from repro.models.backbones.vgg import AUTHORS_TAPS, DEFAULT_TAPS, VGG, layer_plan

THIN = 1 / 16  # 4..32 channels: a VGG-19 that runs in milliseconds on CPU


def torchvision_features(width: float = THIN) -> nn.Sequential:
    """A stand-in for torchvision's vgg19().features (same layer order and indices), built here."""
    layers, c_in = [], 3
    for _, kind, block in layer_plan("vgg19"):
        c_out = max(1, round((64, 128, 256, 512, 512)[block - 1] * width))
        if kind == "conv":
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            c_in = c_out
        else:
            layers.append(nn.ReLU() if kind == "relu" else nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


def save_torchvision_state(path, features: nn.Sequential) -> None:
    state = OrderedDict((f"features.{k}", v) for k, v in features.state_dict().items())
    state["classifier.0.weight"] = torch.zeros(4, 2)  # ignored, as the ImageNet classifier is not used
    torch.save(state, path)


def test_vgg19_conv_parameters_match_the_standard_network():
    vgg = VGG(num_classes=23)
    conv = sum(p.numel() for c in vgg.convs().values() for p in c.parameters())
    assert conv == 20_024_384  # VGG-19 features (143,667,240 with the ImageNet classifier, not used here)
    assert sorted(vgg.convs()) == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]  # torchvision idx
    head = sum(p.numel() for p in vgg.head.parameters())
    assert head == 2 * 512 + 512 * 23 + 23  # BatchNorm1d(512) + Linear(512, 23)


def test_default_taps_cover_block_outputs_the_papers_eight_convs_and_the_authors_taps():
    names = [n for n, _, _ in layer_plan("vgg19")]
    assert [names.index(t) for t in DEFAULT_TAPS] == [3, 8, 17, 20, 22, 24, 26, 29, 31, 33, 35, 36]
    assert [names.index(t) for t in AUTHORS_TAPS] == [20, 26, 33, 36]  # jperezrua/mfas GP_VGG
    vgg = VGG(width=THIN)
    assert vgg.stage_names == list(DEFAULT_TAPS)
    assert vgg.stage_channels == [4, 8, 16] + [32] * 9
    taps = vgg.taps(torch.randn(2, 3, 64, 32))
    assert [tuple(t.shape[2:]) for t in taps] == [(64, 32), (32, 16), (16, 8)] + [(8, 4)] * 4 + [(4, 2)] * 4 + [(2, 1)]
    assert [t.shape[1] for t in taps] == vgg.stage_channels


def test_forward_is_bn_linear_head_on_pooled_last_tap():
    vgg = VGG(num_classes=5, width=THIN).eval()
    x = torch.randn(3, 3, 64, 32)
    assert torch.allclose(vgg(x), vgg.head(global_average(vgg.taps(x)[-1])), atol=1e-6)
    assert isinstance(vgg.head.norm, nn.BatchNorm1d) and vgg.embed_dim == 32
    assert isinstance(VGG(width=THIN, head_batchnorm=False).head.norm, nn.Identity)


def test_pretrained_weights_load_and_taps_are_the_torchvision_layer_outputs(tmp_path):
    torch.manual_seed(0)
    features = torchvision_features().eval()
    path = tmp_path / "vgg19-fake.pth"
    save_torchvision_state(path, features)
    vgg = VGG(width=THIN, taps=AUTHORS_TAPS, pretrained=str(path)).eval()
    x = torch.randn(2, 3, 64, 32)
    # Reference: the authors' loop — global-average features after torchvision layers 20, 26, 33, 36.
    expected, h = {}, x
    for i, layer in enumerate(features):
        h = layer(h)
        if i in (20, 26, 33, 36):
            expected[i] = global_average(h)
    got = [vgg.pool(t) for t in vgg.taps(x)]
    for g, i in zip(got, (20, 26, 33, 36)):
        assert torch.allclose(g, expected[i], atol=1e-5), i


def test_stage_split_does_not_change_the_network():
    torch.manual_seed(1)
    default = VGG(width=THIN).eval()
    torch.manual_seed(1)
    authors = VGG(width=THIN, taps=AUTHORS_TAPS).eval()
    x = torch.randn(2, 3, 64, 32)
    assert torch.allclose(default(x), authors(x), atol=1e-5)


def test_in_place_relu_never_overwrites_the_previous_tap():
    vgg = VGG(width=THIN, taps=["conv1_1", "relu1_1", "pool5"])
    first, second, _ = vgg.taps(torch.randn(2, 3, 32, 32))
    assert (first < 0).any() and (second >= 0).all()  # stage 2 starts with relu1_1: not applied in place


@pytest.mark.parametrize("case", ["missing", "not_torch", "wrong_width", "missing_key", "not_a_dict"])
def test_wrong_pretrained_file_is_one_line(case, tmp_path):
    path = tmp_path / "weights.pth"
    if case == "not_torch":
        path.write_text("<html>404</html>")
    elif case == "wrong_width":
        save_torchvision_state(path, torchvision_features(width=1 / 8))
    elif case == "missing_key":
        torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3)}, path)
    elif case == "not_a_dict":
        torch.save([torch.zeros(1)], path)
    with pytest.raises(ConfigError) as err:
        VGG(width=THIN, pretrained=str(path))
    message = str(err.value)
    assert "\n" not in message and "vgg19-dcbb9e9d.pth" in message and str(path) in message
    expected = {"missing": "do not exist", "not_torch": "cannot read", "wrong_width": "has shape",
                "missing_key": "has no 'features.0.bias'", "not_a_dict": "not a state dict"}[case]
    assert expected in message


def test_bad_taps_are_one_line():
    with pytest.raises(ConfigError, match="not layers of vgg19"):
        VGG(width=THIN, taps=["block1"])
    with pytest.raises(ConfigError, match="network order"):
        VGG(width=THIN, taps=["pool5", "relu4_1"])


def test_maxout_is_the_max_over_consecutive_pieces():
    unit = Maxout(6, 3, pieces=4)
    x = torch.randn(5, 6)
    linear = unit.linear(x).view(5, 3, 4)
    assert torch.equal(unit(x), linear.max(dim=-1).values)


def test_maxout_mlp_layout_taps_and_parameters():
    net = MaxoutMLP(num_classes=23).eval()
    assert net.stage_names == ["maxout1", "maxout2"] and net.stage_channels == [64, 128]
    # Maxout(300->64 x5) + BN(64) + Maxout(64->128 x5) + BN(128) + Linear(128->23)
    expected = (300 * 320 + 320) + 2 * 64 + (64 * 640 + 640) + 2 * 128 + (128 * 23 + 23)
    assert sum(p.numel() for p in net.parameters()) == expected == 141_271
    x = torch.randn(4, 300)
    t1, t2 = net.taps(x)
    assert t1.shape == (4, 64) and t2.shape == (4, 128)
    assert torch.allclose(net(x), net.head(t2), atol=1e-6)  # BN -> Dropout -> Linear on the raw maxout2 output
    assert isinstance(net.stages[1][0], nn.BatchNorm1d) and isinstance(net.stages[1][1], nn.Dropout)


def test_maxout_mlp_sizes_are_configurable():
    net = MaxoutMLP(num_classes=3, in_features=10, hidden=[8, 8, 4], pieces=2, dropout=0.1)
    assert net.stage_names == ["maxout1", "maxout2", "maxout3"] and net.embed_dim == 4
    assert net(torch.randn(2, 10)).shape == (2, 3)
