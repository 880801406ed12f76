"""The MFAS AV-MNIST LeNets as staged encoders (mfas.txt §4.1; authors' models/central/avmnist.py)."""

from __future__ import annotations

import torch

from repro.models.backbones.base import global_average
from repro.models.backbones.lenet import LeNet


def test_taps_names_channels_and_sizes():
    image, audio = LeNet(1, 8, 3, 10), LeNet(1, 8, 5, 10)
    assert image.stage_names == ["conv1", "conv2", "conv3"] and image.stage_channels == [8, 16, 32]
    assert audio.stage_channels == [8, 16, 32, 64, 128]
    taps = audio.taps(torch.randn(2, 1, 112, 112))
    assert [t.shape[-1] for t in taps] == [112, 56, 28, 14, 7]  # 2x2 max-pool between stages
    assert [t.shape[1] for t in taps] == audio.stage_channels


def test_forward_is_head_of_pooled_last_tap():
    net = LeNet(1, 4, 3, 10).eval()
    x = torch.randn(3, 1, 28, 28)
    last = net.taps(x)[-1]
    assert torch.allclose(net(x), net.head(global_average(last)), atol=1e-6)
    assert net.embed_dim == 16


def twin_lenets(base: int, **switch) -> tuple[LeNet, LeNet]:
    """Two LeNets with identical weights, the second with `switch` set (flag name -> value)."""
    (name, value), = switch.items()
    torch.manual_seed(0)
    a = LeNet(1, base, 5, 10, **{name: not value}).eval()
    torch.manual_seed(0)
    return a, LeNet(1, base, 5, 10, **{name: value}).eval()


def test_channels_last_gives_the_same_numbers():
    a, b = twin_lenets(8, channels_last=True)
    x = torch.randn(2, 1, 112, 112)
    assert torch.allclose(a(x), b(x), atol=1e-5)


def test_quirk_first_tap_after_pool():
    paper, code = twin_lenets(4, quirk_first_tap_after_pool=True)
    x = torch.randn(2, 1, 112, 112)
    assert code.taps(x)[0].shape[-1] == 56 and paper.taps(x)[0].shape[-1] == 112
    assert torch.allclose(paper(x), code(x), atol=1e-5)  # only the tap differs, not the network
