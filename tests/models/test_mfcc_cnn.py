"""MSAF's MFCC 1D CNN (RAVDESS audio; anita-hu/MSAF ravdess/networks/mfcc_cnn.py): parameter count, taps, and
the authors' layer order (ReLU before BatchNorm, max-pool before the second BatchNorm). Inputs are SYNTHETIC."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repro.models.backbones.mfcc_cnn import MFCCNet


def randomise_batchnorm(net: MFCCNet, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters, so that moving a BatchNorm changes the output."""
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.bias.data.copy_(torch.randn(n, generator=gen))


def authors_forward(net: MFCCNet, x: torch.Tensor, relu_before_bn: bool = True) -> torch.Tensor:
    """The authors' MFCCNet.forward in eval mode, written with the functional API on `net`'s own weights."""
    s1, s2, s3 = net.stages[0], net.stages[1], net.stages[2]

    def bn(m, t):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, training=False, eps=m.eps)

    def conv_act_bn(conv, bn_layer, t):
        return bn(bn_layer, F.relu(conv(t))) if relu_before_bn else F.relu(bn(bn_layer, conv(t)))

    x = conv_act_bn(s1.conv, s1.bn, x)                 # conv1 -> relu -> bn1
    x = F.relu(s2.conv(x))                             # conv2 -> relu
    x = bn(s3.bn_pool, F.max_pool1d(x, 8))             # maxpool -> bn2 (dropout1: identity in eval)
    x = conv_act_bn(s3.conv, s3.bn, x)                 # conv3 -> relu -> bn3
    return net.head(x.flatten(1))                      # flatten (dropout2: identity) -> fc1


def test_parameter_count_is_the_authors_34024():
    net = MFCCNet()
    assert sum(p.numel() for p in net.parameters()) == 34_024
    # conv1 2,944 + bn1 64 + conv2 7,200 + bn2 64 + conv3 10,304 + bn3 128 + fc1 1664·8+8 = 13,320
    assert sum(p.numel() for p in net.head.parameters()) == 13_320


def test_tap_shapes_for_a_clip_batch_and_msaf_fusion_taps():
    net = MFCCNet().eval()
    x = torch.randn(3, 13, 212)  # SYNTHETIC MFCCs
    taps = net.taps(x)
    assert net.stage_names == ["conv1", "conv2", "conv3", "flatten"]
    assert [tuple(t.shape) for t in taps] == [(3, 32, 210), (3, 32, 208), (3, 64, 26), (3, 1664)]
    assert net.stage_channels == [t.shape[1] for t in taps]
    # MSAF module 1 fuses audio conv2 (32 channels = 2 blocks of 16); module 2 audio conv3 (64 = 2 blocks of 32).
    assert [net.stage_channels[net.stage_index(t)] for t in ("conv2", "conv3")] == [32, 64]
    assert net.embed_dim == 1664
    assert tuple(net(x).shape) == (3, 8)


def test_forward_follows_the_authors_layer_order():
    torch.manual_seed(0)
    net = MFCCNet()
    randomise_batchnorm(net)
    net.eval()
    x = torch.randn(4, 13, 212)  # SYNTHETIC MFCCs
    with torch.no_grad():
        ours = net(x)
        reference = authors_forward(net, x)
        swapped = authors_forward(net, x, relu_before_bn=False)
    torch.testing.assert_close(ours, reference)
    assert (ours - swapped).abs().max() > 1e-2  # the reference can tell BN/ReLU order apart


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    net = MFCCNet()
    x = torch.randn(4, 13, 212)
    net.train()
    a, b = net(x), net(x)
    assert not torch.allclose(a, b)  # two dropout draws differ
    net.eval()
    torch.testing.assert_close(net(x), net(x))


def test_wrong_input_shape_is_one_line_error():
    with pytest.raises(ValueError, match=r"expects MFCC input \(B, 13, 212\), got \(2, 13, 200\)") as err:
        MFCCNet()(torch.randn(2, 13, 200))
    assert "\n" not in str(err.value)


def test_other_input_length_changes_only_the_head():
    net = MFCCNet(input_length=100)  # (100-4)//8 = 12 positions after the pool
    assert tuple(net.taps(torch.randn(2, 13, 100))[-1].shape) == (2, 64 * 12)
    assert sum(p.numel() for p in net.parameters()) == 34_024 - 64 * (26 - 12) * 8


def test_msaf_fuses_before_the_pool_as_the_authors_cut():
    """MSAFNet on a small LeNet stand-in for the video net: the fused audio conv2 map (32 × 208) enters stage conv3,
    whose max-pool comes after the fusion (authors' msaf_ravdess.py: audio blocks end before indices 5 and 11)."""
    from repro.models.backbones.lenet import LeNet
    from repro.models.fusion.msaf import MSAFNet

    torch.manual_seed(0)
    video = LeNet(in_channels=1, base_channels=16, num_stages=3, num_classes=8)  # taps conv2: 32 ch, conv3: 64 ch
    net = MSAFNet({"video": video, "audio": MFCCNet()}, 8,
                  points=[{"video": "conv2", "audio": "conv2"}, {"video": "conv3", "audio": "conv3"}],
                  block_channels=[16, 32], reduction=4, block_dropout=0.2).eval()
    assert [m.num_blocks for m in net.msaf] == [[2, 2], [2, 2]]  # audio: 32/16 and 64/32 blocks, as the authors'
    seen = {}
    net.msaf[0].register_forward_hook(lambda m, args, out: seen.update(fused=out[0][1]))
    net.encoders["audio"].stages[2].register_forward_pre_hook(lambda m, args: seen.update(conv3_in=args[0]))
    batch = {"video": torch.randn(2, 1, 16, 16), "audio": torch.randn(2, 13, 212), "label": torch.zeros(2).long()}
    with torch.no_grad():
        out = net(batch)
    assert tuple(out.logits.shape) == (2, 8)
    assert tuple(seen["fused"].shape) == (2, 32, 208) and seen["conv3_in"] is seen["fused"]
