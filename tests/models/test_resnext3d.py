"""3D ResNeXt-50 (Hara et al.) staged encoder: parameter count, tap shapes, the MSAF no-ReLU quirk, and loading
checkpoints in Hara et al.'s Kinetics format. Clips and checkpoints here are SYNTHETIC (random tensors, files
written by the tests)."""

from __future__ import annotations

import pytest
import torch

from repro.config import ConfigError
from repro.models.backbones.resnext3d import MSAF_TAPS, ResNeXt3D, hara_state_dict, load_kinetics

# SYNTHETIC tiny clip (B, C, T, H, W); shapes from the strides: conv1 (1,2,2) -> 8×16², max-pool /2 -> 4×8²,
# layer1 stride 1, layers 2-4 stride 2 in time and space (ceil halving: 4 -> 2 -> 1 -> 1).
CLIP = (2, 3, 8, 32, 32)
EXPECTED_TAPS = {
    "stem": (2, 64, 4, 8, 8),
    "layer1": (2, 256, 4, 8, 8),
    "layer2": (2, 512, 2, 4, 4),
    "layer3": (2, 1024, 1, 2, 2),
    "layer4": (2, 2048, 1, 1, 1),
}


@pytest.fixture(scope="module")
def clip():
    return torch.randn(*CLIP, generator=torch.Generator().manual_seed(0))


def test_parameter_count_is_the_authors_with_8_classes():
    # anita-hu/MSAF ravdess/networks/resnext.py: resnet50(num_classes=8, shortcut_type='B', cardinality=32).
    assert sum(p.numel() for p in ResNeXt3D(num_classes=8).parameters()) == 25_882_056


def test_tap_shapes_follow_the_strides_and_msaf_taps_exist(clip):
    net = ResNeXt3D(num_classes=8).eval()
    with torch.no_grad():
        taps = net.taps(clip)
        logits = net(clip)
    assert {n: tuple(t.shape) for n, t in zip(net.stage_names, taps)} == EXPECTED_TAPS
    assert net.stage_channels == [shape[1] for shape in EXPECTED_TAPS.values()]
    assert [net.stage_index(t) for t in MSAF_TAPS] == [3, 4]
    assert logits.shape == (2, 8)
    # The head is global average -> fc on the layer4 tap.
    torch.testing.assert_close(logits, net.head(taps[-1].mean(dim=(2, 3, 4))))


def test_quirk_no_relu_after_bn1_is_off_by_default_and_changes_the_output(clip):
    torch.manual_seed(1)
    plain = ResNeXt3D(num_classes=8).eval()
    assert plain.quirk_no_relu_after_bn1 is False
    assert isinstance(plain.stages[0].relu, torch.nn.ReLU)
    quirk = ResNeXt3D(num_classes=8, quirk_no_relu_after_bn1=True).eval()
    quirk.load_state_dict(plain.state_dict())  # same weights: only the missing ReLU differs
    with torch.no_grad():
        a, b = plain.taps(clip)[0], quirk.taps(clip)[0]
        assert (a >= 0).all() and (b < 0).any()  # max-pooled ReLU output is non-negative; without ReLU it is not
        assert not torch.allclose(plain(clip), quirk(clip))


def write_hara_checkpoint(path, state):
    # Hara et al.'s Kinetics checkpoint layout (ENVIRONMENT.md).
    torch.save({"epoch": 200, "arch": "resnext-50", "state_dict": state, "optimizer": {}}, path)


def test_kinetics_checkpoint_round_trip_drops_the_400_class_fc(tmp_path, clip):
    torch.manual_seed(2)
    kinetics = ResNeXt3D(num_classes=400)
    for m in kinetics.modules():  # non-trivial BN statistics, so the buffers are checked too
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    state = hara_state_dict(kinetics)
    assert "module.layer4.0.downsample.0.weight" in state and "module.fc.weight" in state
    path = tmp_path / "resnext-50-kinetics.pth"
    write_hara_checkpoint(path, state)

    torch.manual_seed(3)
    fresh_head = ResNeXt3D(num_classes=8).head.weight.clone()
    torch.manual_seed(3)
    loaded = ResNeXt3D(num_classes=8, pretrained=str(path))
    ours = hara_state_dict(loaded)
    for key, value in state.items():
        if key.startswith("module.fc."):
            continue
        assert torch.equal(ours[key], value), key
    assert torch.equal(loaded.head.weight, fresh_head)  # the 400-class fc is dropped, the head stays fresh
    with torch.no_grad():  # the backbones agree: the same layer4 tap
        torch.testing.assert_close(loaded.eval().taps(clip)[-1], kinetics.eval().taps(clip)[-1])


def test_same_class_count_checkpoint_loads_the_head_too(tmp_path):
    # A plain state dict without `module.` (the MSAF authors' per-fold fold_{i}_resnext50_best.pth layout).
    source = ResNeXt3D(num_classes=8)
    path = tmp_path / "fold_1_resnext50_best.pth"
    torch.save({k.removeprefix("module."): v for k, v in hara_state_dict(source).items()}, path)
    target = ResNeXt3D(num_classes=8)
    load_kinetics(target, path)
    assert torch.equal(target.head.weight, source.head.weight)


def test_wrong_shaped_key_is_a_one_line_error(tmp_path):
    state = hara_state_dict(ResNeXt3D(num_classes=400))
    state["module.layer3.0.conv2.weight"] = torch.zeros(3, 3, 3, 3, 3)
    path = tmp_path / "bad.pth"
    write_hara_checkpoint(path, state)
    with pytest.raises(ConfigError) as err:
        ResNeXt3D(num_classes=8, pretrained=str(path))
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and "layer3.0.conv2.weight" in message and "pretrained=null" in message


def test_missing_keys_are_named(tmp_path):
    state = hara_state_dict(ResNeXt3D(num_classes=400))
    del state["module.layer1.0.bn1.weight"]
    path = tmp_path / "partial.pth"
    write_hara_checkpoint(path, state)
    with pytest.raises(ConfigError, match=r"missing layer1\.0\.bn1\.weight \(1\)"):
        load_kinetics(ResNeXt3D(num_classes=8), path)


def test_missing_or_unreadable_file_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        ResNeXt3D(num_classes=8, pretrained=str(tmp_path / "nope.pth"))
    assert "\n" not in str(err.value) and "nope.pth" in str(err.value) and "do not exist" in str(err.value)
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read .*junk.pth"):
        load_kinetics(ResNeXt3D(num_classes=8), junk)


def test_channels_last_is_the_same_function(clip):
    torch.manual_seed(4)
    plain = ResNeXt3D(num_classes=8).eval()
    fast = ResNeXt3D(num_classes=8, channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    assert fast.stages[0].conv1.weight.is_contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        torch.testing.assert_close(fast(clip), plain(clip), rtol=1e-4, atol=1e-4)
