"""MFAS's inflated ResNet-50 (NTU RGB): parameter count as the authors' code, tap shapes, centre inflation from a
torchvision-layout state dict (checked against a 2-D ResNet-50 written here with torch.nn.functional), strict loading.

Clips and weights here are SYNTHETIC random tensors; shapes at the authors' 8×224² are computed on the meta device.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repro.config import ConfigError
from repro.models.backbones import inflated_resnet
from repro.models.backbones.inflated_resnet import InflatedResNet50, load_torchvision, torchvision_key

TORCHVISION_RESNET50 = 25_557_032      # torchvision resnet50(num_classes=1000), the resnet50-19c8e357.pth network
MFAS_VISUAL_60 = 46_265_468            # the authors' Visual(num_outputs=60) (the issue's count)
BLOCKS, PLANES = (3, 4, 6, 3), (64, 128, 256, 512)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def deflated(encoder: InflatedResNet50) -> dict[str, torch.Tensor]:
    """SYNTHETIC torchvision-layout state dict from an encoder: 3-D kernels cut to their centre slice, 1000-class fc,
    no BN counters (as resnet50-19c8e357.pth)."""
    gen = torch.Generator().manual_seed(1)
    state = {}
    for key, value in encoder.state_dict().items():
        if key.endswith("num_batches_tracked") or key.startswith("head."):
            continue
        if value.dim() == 5:
            value = value[:, :, value.shape[2] // 2]
        if key.endswith("running_var"):   # non-trivial BN statistics, so eval mode is not an identity
            value = 0.5 + torch.rand(value.shape, generator=gen)
        elif key.endswith(("running_mean", "bn1.bias", "bn2.bias", "bn3.bias")):
            value = 0.1 * torch.randn(value.shape, generator=gen)
        state[torchvision_key(key)] = value.clone()
    state["fc.weight"] = 0.01 * torch.randn(1000, 2048, generator=gen)
    state["fc.bias"] = torch.zeros(1000)
    return state


def bn(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    return F.batch_norm(x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"], state[f"{prefix}.weight"],
                        state[f"{prefix}.bias"], training=False, eps=1e-5)


def resnet50_2d(frames: torch.Tensor, state: dict) -> list[torch.Tensor]:
    """torchvision's ResNet-50 (eval mode) on (N, 3, H, W) from a torchvision state dict: layer1..layer4 outputs."""
    x = F.relu(bn(F.conv2d(frames, state["conv1.weight"], stride=2, padding=3), state, "bn1"))
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    outs = []
    for layer, blocks in enumerate(BLOCKS, start=1):
        for block in range(blocks):
            p = f"layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            out = F.relu(bn(F.conv2d(x, state[f"{p}.conv1.weight"]), state, f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(out, state[f"{p}.conv2.weight"], stride=stride, padding=1), state, f"{p}.bn2"))
            out = bn(F.conv2d(out, state[f"{p}.conv3.weight"]), state, f"{p}.bn3")
            if block == 0:
                x = bn(F.conv2d(x, state[f"{p}.downsample.0.weight"], stride=stride), state, f"{p}.downsample.1")
            x = F.relu(out + x)
        outs.append(x)
    return outs


def test_parameter_count_is_the_authors_visual():
    inflated_3x3 = 2 * 9 * sum(b * p * p for b, p in zip(BLOCKS, PLANES))   # two extra temporal slices per 3×3 conv
    derived = TORCHVISION_RESNET50 - (2048 * 1000 + 1000) + inflated_3x3 + (2048 * 60 + 60)
    assert inflated_3x3 == 22_634_496 and derived == MFAS_VISUAL_60
    with torch.device("meta"):
        net = InflatedResNet50(num_classes=60)
        assert n_params(net) == MFAS_VISUAL_60
        assert n_params(InflatedResNet50(num_classes=1000)) == TORCHVISION_RESNET50 + inflated_3x3
    kernels = {tuple(m.kernel_size) for m in net.modules() if isinstance(m, torch.nn.Conv3d)}
    assert kernels == {(1, 1, 1), (3, 3, 3)}
    assert all(m.stride[0] == 1 for m in net.modules() if isinstance(m, torch.nn.Conv3d))  # never strided in time
    assert isinstance(net.stages[0].conv1, torch.nn.Conv2d) and net.stages[0].conv1.kernel_size == (7, 7)


def test_taps_at_the_authors_8x224_clip():
    with torch.device("meta"):
        net = InflatedResNet50()
        taps = net.taps(torch.empty(2, 3, 8, 224, 224))
        logits = net(torch.empty(2, 3, 8, 224, 224))
    assert net.stage_names == ["layer1", "layer2", "layer3", "layer4"]
    assert [tuple(t.shape) for t in taps] == [(2, 256, 8, 56, 56), (2, 512, 8, 28, 28), (2, 1024, 8, 14, 14),
                                              (2, 2048, 8, 7, 7)]
    assert net.stage_channels == [t.shape[1] for t in taps] and net.embed_dim == 2048
    assert tuple(logits.shape) == (2, 60)
    assert set(inflated_resnet.SEARCH_TAPS) | set(inflated_resnet.MSAF_TAPS) <= set(net.stage_names)
    assert len(inflated_resnet.SEARCH_TAPS) == 4 and inflated_resnet.MSAF_TAPS == ("layer3", "layer4")


def test_centre_inflation_computes_the_2d_resnet_frame_by_frame(tmp_path):
    torch.manual_seed(0)
    state = deflated(InflatedResNet50(num_classes=60))
    assert state["layer3.1.conv2.weight"].shape == (256, 256, 3, 3) and "layer1.0.downsample.0.weight" in state
    path = tmp_path / "resnet50-19c8e357.pth"
    torch.save(state, path)
    net = InflatedResNet50(num_classes=60, pretrained=str(path)).eval()
    conv2 = net.stages[2].layer3[1].conv2.weight
    torch.testing.assert_close(conv2[:, :, 1], state["layer3.1.conv2.weight"])
    assert conv2[:, :, 0].abs().sum() == 0 and conv2[:, :, 2].abs().sum() == 0   # centre, not mean, inflation
    # float64, so that 16 blocks of summation-order differences stay far below the tolerance
    clip = torch.randn(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)  # SYNTHETIC
    with torch.no_grad():
        ours = net.double().taps(clip)
        frames = clip.transpose(1, 2).reshape(6, 3, 64, 64)
        reference = resnet50_2d(frames, {k: v.double() for k, v in state.items()})
    for tap, ref in zip(ours, reference):
        per_frame = ref.view(2, 3, *ref.shape[1:]).transpose(1, 2)
        torch.testing.assert_close(tap, per_frame, rtol=1e-9, atol=1e-9)
        assert tap.abs().max() > 0.1   # a non-trivial comparison


def test_1000_class_fc_is_dropped_and_an_authors_checkpoint_loads(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "resnet50.pth"
    torch.save(deflated(InflatedResNet50()), path)
    net = InflatedResNet50(num_classes=60)
    fresh_head = net.head.weight.clone()
    load_torchvision(net, path)
    torch.testing.assert_close(net.head.weight, fresh_head)
    # The authors' trained Visual: already 3-D, keys cnn.* / classifier.*, saved from DataParallel.
    visual = {("module.cnn." + torchvision_key(k)).replace("module.cnn.fc.", "module.classifier."): v
              for k, v in net.state_dict().items()}
    visual_path = tmp_path / "best_rgb"
    torch.save(visual, visual_path)
    again = InflatedResNet50(num_classes=60, pretrained=str(visual_path))
    for (key, theirs), ours in zip(net.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(ours, theirs, msg=key)


def test_a_missing_or_misshapen_key_is_one_line_naming_file_and_key(tmp_path):
    with torch.device("meta"):
        shapes = {torchvision_key(k): v.shape for k, v in InflatedResNet50().state_dict().items()}
    state = {k: torch.zeros(s[:2] + s[3:] if len(s) == 5 else s) for k, s in shapes.items() if not k.startswith("fc.")}
    missing = tmp_path / "missing.pth"
    torch.save({k: v for k, v in state.items() if k != "layer4.2.bn3.running_var"}, missing)
    with pytest.raises(ConfigError, match=r"missing\.pth does not fit this inflated ResNet-50: missing "
                                          r"layer4\.2\.bn3\.running_var \(1\); fix: pass torchvision") as err:
        InflatedResNet50(pretrained=str(missing))
    assert "\n" not in str(err.value)
    wrong = tmp_path / "wrong.pth"
    torch.save({**state, "layer2.0.conv2.weight": torch.zeros(128, 128, 5, 5)}, wrong)
    with pytest.raises(ConfigError, match=r"wrong\.pth .*wrong shape layer2\.0\.conv2\.weight \(128, 128, 5, 5\)"
                       ) as err:
        InflatedResNet50(pretrained=str(wrong))
    assert "\n" not in str(err.value)
    extra = tmp_path / "extra.pth"
    torch.save({**state, "layer5.0.conv1.weight": torch.zeros(1)}, extra)
    with pytest.raises(ConfigError, match=r"extra\.pth .*unexpected layer5\.0\.conv1\.weight"):
        InflatedResNet50(pretrained=str(extra))
    with pytest.raises(ConfigError, match=r"absent\.pth do not exist"):
        InflatedResNet50(pretrained=str(tmp_path / "absent.pth"))


def test_frames_first_layout_is_the_same_function():
    torch.manual_seed(0)
    net = InflatedResNet50().eval()
    frames_first = InflatedResNet50(input_layout="BTCHW").eval()
    frames_first.load_state_dict(net.state_dict())
    clip = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(frames_first(clip.permute(0, 2, 1, 3, 4)), net(clip))
    with pytest.raises(ValueError, match="input_layout='BTHWC'"):
        InflatedResNet50(input_layout="BTHWC")


def test_learns_a_fixed_synthetic_batch():
    """SYNTHETIC: 4 random 4×32² clips with 4 labels; a few Adam steps must cut the training loss."""
    torch.manual_seed(0)
    net = InflatedResNet50(num_classes=60).train()
    gen = torch.Generator().manual_seed(0)
    clips, labels = torch.randn(4, 3, 4, 32, 32, generator=gen), torch.tensor([0, 7, 21, 59])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = F.cross_entropy(net(clips), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_channels_last_is_the_same_function_in_ndhwc_layout():
    """`channels_last=True` (configs/backbone/ntu_resnet.yaml): weights in channels_last(_3d), the same taps and
    logits as the default layout on the same weights (SYNTHETIC input, frames first as the datamodule feeds it)."""
    torch.manual_seed(0)
    default = InflatedResNet50(input_layout="BTCHW")
    fast = InflatedResNet50(input_layout="BTCHW", channels_last=True)
    fast.load_state_dict(default.state_dict())
    assert fast.stages[1].layer2[0].conv2.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert fast.stages[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for a, b in zip(default.taps(x), fast.taps(x)):
            # float rounding in another summation order grows over 16 blocks: 1e-3 on values of order 1
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)
