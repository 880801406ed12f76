"""HCN, MFAS's NTU skeleton network (jperezrua/mfas models/central/ntu.py `Skeleton`): the authors' parameter count,
tap shapes, loading the authors' checkpoint keys, a functional re-statement of the authors' per-person forward,
shared person weights, the motion stream against a hand-built frame difference, and a learnability check.
Every input here is SYNTHETIC random data."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repro.config import ConfigError
from repro.models.backbones.base import global_average
from repro.models.backbones.hcn import HCN, SEARCH_TAPS, authors_state_dict, load_authors, motion

AUTHORS_PARAMS = 1_062_652  # MFAS Skeleton(num_outputs=60, vid_len[1]=32); issue 15 "## Networks"


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def synthetic_skeletons(batch: int = 2, seed: int = 0) -> torch.Tensor:
    """SYNTHETIC (B, 3, 32, 25, 2) skeleton clips."""
    return torch.randn(batch, 3, 32, 25, 2, generator=torch.Generator().manual_seed(seed))


def authors_forward(net: HCN, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The authors' Skeleton.forward in eval mode (a loop over the two persons, then max), on `net`'s weights.

    Returns their `new_hidden[3:]` (conv4 .. conv6 max over persons, out7, out8) and the logits."""
    stem, conv5, conv6, fc7 = net.stages[0], net.stages[1], net.stages[2], net.stages[4]

    def branch(b, t):
        out = b.conv2(F.relu(b.conv1[0](t))).permute(0, 3, 2, 1)
        out = F.max_pool2d(b.conv3[0](out), 2)
        return F.max_pool2d(b.conv4[0](out), 2)

    mot = motion(x)
    per_person = []
    for i in range(2):
        out4 = torch.cat([branch(stem.position, x[..., i]), branch(stem.motion, mot[..., i])], dim=1)
        out5 = F.max_pool2d(F.relu(conv5[0](out4)), 2)
        out6 = F.max_pool2d(F.relu(conv6[0](out5)), 2)
        per_person.append([out4, out5, out6])
    hidden = [torch.max(a, b) for a, b in zip(*per_person)]
    out7 = hidden[-1].flatten(1)
    out8 = F.relu(fc7[0](out7))
    return [*hidden, out7, out8], net.head(out8)


def test_parameter_count_is_the_authors():
    assert n_params(HCN(num_classes=60, window=32)) == AUTHORS_PARAMS


def test_taps_shapes_and_search_taps():
    net = HCN().eval()
    taps = net.taps(synthetic_skeletons())
    assert [tuple(t.shape) for t in taps] == [(2, 128, 8, 8, 2), (2, 128, 4, 4, 2), (2, 256, 2, 2, 2), (2, 1024),
                                              (2, 512)]
    assert net.stage_channels == [t.shape[1] for t in taps]
    # MFAS's `sizes_ske` for the last four skeleton features: [128, 256, vid_len[1]*32, 512]
    assert [net.stage_channels[net.stage_index(n)] for n in SEARCH_TAPS] == [128, 256, 32 * 32, 512]


def test_forward_and_taps_match_the_authors_per_person_loop():
    torch.manual_seed(0)
    net = HCN().eval()
    x = synthetic_skeletons()
    with torch.no_grad():
        hidden, logits = authors_forward(net, x)
        taps = net.taps(x)
        torch.testing.assert_close(net(x), logits)
        for tap, ref in zip(taps, hidden):
            # pool() maxes over persons before averaging: MFAS's GlobalPooling2D of its person-maxed hidden.
            torch.testing.assert_close(net.pool(tap), global_average(ref))
        torch.testing.assert_close(taps[3], hidden[3])
        torch.testing.assert_close(taps[4], hidden[4])
        assert net.pool(taps[0]).shape == (2, 128)


def test_persons_share_weights_and_are_symmetric():
    net = HCN().eval()
    x = synthetic_skeletons()
    swapped = x.flip(-1)
    with torch.no_grad():
        a, b = net.taps(x), net.taps(swapped)
        torch.testing.assert_close(net(swapped), net(x))
        # the per-person taps swap with the persons: one set of weights serves both
        for i in range(3):
            torch.testing.assert_close(b[i], a[i].flip(-1))
        # person 1 alone through the network is person 0's computation on that person's data
        dup = torch.stack([x[..., 1], x[..., 1]], dim=-1)
        conv5 = net.taps(dup)[1]
        torch.testing.assert_close(conv5[..., 0], a[1][..., 1])
        assert not torch.allclose(a[1][..., 0], a[1][..., 1])  # the two persons' data differ


def test_motion_is_the_frame_difference_linearly_resized_in_time():
    x = torch.randn(1, 3, 5, 25, 2, generator=torch.Generator().manual_seed(1))
    t = x.shape[2]
    diff = x[:, :, 1:] - x[:, :, :-1]  # t-1 differences
    frames = []
    for i in range(t):  # align_corners=False: source position (i + 0.5)·(t-1)/t - 0.5, clamped at 0
        src = max((i + 0.5) * (t - 1) / t - 0.5, 0.0)
        lo = int(src)
        hi = min(lo + 1, t - 2)
        w = src - lo
        frames.append((1 - w) * diff[:, :, lo] + w * diff[:, :, hi])
    torch.testing.assert_close(motion(x), torch.stack(frames, dim=2))


def test_bad_input_shape_is_one_clear_error():
    with pytest.raises(ValueError, match=r"HCN expects skeletons \(B, 3, 32, 25, 2\).*got \(2, 3, 16, 25, 2\)"):
        HCN()(torch.zeros(2, 3, 16, 25, 2))
    with pytest.raises(ValueError, match="multiple of 8"):
        HCN(window=20)


def test_window_8_quirk_keeps_conv5_unpooled():
    net = HCN(window=8).eval()
    taps = net.taps(torch.randn(2, 3, 8, 25, 2))
    assert [tuple(t.shape) for t in taps[1:]] == [(2, 128, 2, 2, 2), (2, 256, 1, 1, 2), (2, 256), (2, 512)]


def test_learns_a_fixed_synthetic_batch():
    """Gradients reach every layer: 20 Adam steps fit 8 SYNTHETIC clips (dropout off: with 0.4 and 8 clips the
    loss barely moves in 20 steps; measured eval CE 1.40 -> 0.03 at lr 3e-4)."""
    torch.manual_seed(0)
    net = HCN(num_classes=4, dropout=0.0)
    x = synthetic_skeletons(batch=8, seed=2)
    y = torch.arange(8) % 4
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    with torch.no_grad():
        final = F.cross_entropy(net(x), y).item()
    assert losses[0] > 1.0 and final < 0.2, (losses, final)  # chance CE is ln 4 = 1.39


# The authors' Skeleton state-dict keys, read off models/central/ntu.py (conv/linear weight+bias per layer).
AUTHORS_LAYERS = ["conv1.0", "conv2", "conv3.0", "conv4.0", "conv1m.0", "conv2m", "conv3m.0", "conv4m.0", "conv5.0",
                  "conv6.0", "fc7.0", "fc8"]


def test_authors_checkpoint_keys_load_strictly(tmp_path):
    src = HCN()
    state = authors_state_dict(src)
    assert sorted(state) == sorted(f"{layer}.{p}" for layer in AUTHORS_LAYERS for p in ("weight", "bias"))
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "skeleton_32frames")  # DataParallel prefix
    dst = HCN()
    load_authors(dst, tmp_path / "skeleton_32frames")
    x = synthetic_skeletons()
    with torch.no_grad():
        torch.testing.assert_close(dst.eval()(x), src.eval()(x))
    torch.save({k: v for k, v in state.items() if k != "fc8.bias"}, tmp_path / "partial")
    with pytest.raises(ConfigError, match=r"partial does not fit this HCN: missing fc8.bias \(1\)"):
        load_authors(dst, tmp_path / "partial")
    with pytest.raises(ConfigError, match="wrong shape fc8.weight"):
        load_authors(HCN(num_classes=10), tmp_path / "skeleton_32frames")
    with pytest.raises(ConfigError, match="absent.pt do not exist"):
        load_authors(dst, tmp_path / "absent.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read .*text.pt as a torch state dict"):
        load_authors(dst, tmp_path / "text.pt")
