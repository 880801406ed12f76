"""The authors' NTU network structures (repro.analysis.reference_ntu) compute what our encoders compute: equal
parameter counts, and with our weights copied into theirs (state-dict key mapping) equal outputs and gradients —
so scripts/bench_ntu.py times the same function twice. Every input here is SYNTHETIC random data."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repro.analysis.reference_ntu import AuthorsSkeleton, AuthorsVisual, ForkI3D, PiergiajI3D, same_padding_agrees
from repro.models.backbones.base import global_average
from repro.models.backbones.hcn import HCN, authors_state_dict
from repro.models.backbones.i3d import I3D, fork_to_piergiaj_key, piergiaj_state_dict
from repro.models.backbones.inflated_resnet import InflatedResNet50, torchvision_key

TOL = {"atol": 1e-4, "rtol": 1e-4}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -- weight copying: ours → theirs, every tensor (a missing or extra key fails load_state_dict's strict check) -------

def hcn_pair() -> tuple[HCN, AuthorsSkeleton]:
    torch.manual_seed(0)
    ours, theirs = HCN(), AuthorsSkeleton()
    theirs.load_state_dict(authors_state_dict(ours))
    return ours, theirs


def resnet_pair(frames: int) -> tuple[InflatedResNet50, AuthorsVisual]:
    torch.manual_seed(0)
    ours, theirs = InflatedResNet50(), AuthorsVisual(frames=frames)
    mapped = {torchvision_key(k): v for k, v in ours.state_dict().items()}
    theirs.load_state_dict({("classifier." + k[3:]) if k.startswith("fc.") else "cnn." + k: v
                            for k, v in mapped.items()})
    return ours, theirs


def fork_pair() -> tuple[I3D, ForkI3D]:
    torch.manual_seed(0)
    ours, theirs = I3D(variant="msaf"), ForkI3D()
    by_piergiaj_name = piergiaj_state_dict(ours)
    theirs.load_state_dict({k: by_piergiaj_name[fork_to_piergiaj_key(k)] for k in theirs.state_dict()})
    return ours, theirs


def piergiaj_pair(variant: str = "piergiaj") -> tuple[I3D, PiergiajI3D]:
    torch.manual_seed(0)
    ours, theirs = I3D(variant=variant), PiergiajI3D(num_classes=60)
    theirs.load_state_dict(piergiaj_state_dict(ours))
    return ours, theirs


# -- parameter counts -------------------------------------------------------------------------------------------------

def test_parameter_counts_equal_ours_and_the_issue():
    assert n_params(AuthorsSkeleton()) == n_params(HCN()) == 1_062_652
    assert n_params(AuthorsVisual()) == n_params(InflatedResNet50()) == 46_265_468
    assert n_params(ForkI3D()) == n_params(PiergiajI3D(num_classes=60)) == n_params(I3D()) == 12_348_764


# -- HCN --------------------------------------------------------------------------------------------------------------

def test_hcn_logits_hidden_and_gradients_equal_the_authors_loop():
    ours, theirs = hcn_pair()
    ours.eval(), theirs.eval()  # dropout off: their loop and our folded batch draw masks in another order
    x, labels = randn(4, 3, 32, 25, 2), torch.tensor([0, 5, 17, 59])
    hidden, logits = theirs(x)
    torch.testing.assert_close(ours(x), logits, **TOL)
    taps = ours.taps(x)
    torch.testing.assert_close(taps[1].amax(-1), hidden[4], **TOL)   # conv5, max over persons
    torch.testing.assert_close(taps[3], hidden[6], **TOL)            # out7 = person_max
    F.cross_entropy(ours(x), labels).backward()
    F.cross_entropy(theirs(x)[1], labels).backward()
    grads = {k: p.grad for k, p in zip(authors_state_dict(ours), ours.parameters())}
    for key, p in theirs.named_parameters():
        torch.testing.assert_close(grads[key], p.grad, **TOL)
    assert logits.abs().max() > 1e-3  # not a trivially zero output


# -- inflated ResNet-50 ----------------------------------------------------------------------------------------------

def test_inflated_resnet_feature_maps_equal_in_training_mode():
    ours, theirs = resnet_pair(frames=4)
    x = randn(2, 3, 4, 64, 64)  # (B, C, T, H, W); theirs reads (B, T, H, W, C)
    taps = ours.taps(x)
    with torch.no_grad():
        maps = theirs.cnn.get_feature_maps(x)
    assert [tuple(t.shape) for t in taps] == [(2, 256, 4, 16, 16), (2, 512, 4, 8, 8), (2, 1024, 4, 4, 4),
                                              (2, 2048, 4, 2, 2)]
    for tap, ref in zip(taps, maps):  # train mode: BatchNorm on batch statistics, as the benchmark's step
        torch.testing.assert_close(tap.detach(), ref, **TOL)


def test_inflated_resnet_logits_equal_at_224():
    ours, theirs = resnet_pair(frames=1)  # their AvgPool3d((T, 7, 7)) needs layer4 at 7×7: a 224² frame
    ours.eval(), theirs.eval()
    x = randn(1, 3, 1, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x.permute(0, 2, 3, 4, 1))[-1], **TOL)


# -- I3D: the MSAF fork (fixed padding) -------------------------------------------------------------------------------

def test_fork_i3d_features_equal_ours_msaf_variant():
    ours, theirs = fork_pair()
    x = randn(2, 3, 8, 32, 32)
    taps = ours.taps(x)
    with torch.no_grad():
        fm2 = theirs.features[:13](x)        # what MSAF fuses: Mixed_4f, Mixed_5b, Mixed_5c
        fm3 = theirs.features[13:15](fm2)
        final = theirs.features[15](fm3)
    for tap, ref in zip((taps[7], taps[8], taps[9]), (fm2, fm3, final)):
        torch.testing.assert_close(tap.detach(), ref, **TOL)


def test_fork_head_equals_ours_at_two_time_steps_and_weights_ends_by_a_sixth_at_four():
    ours, theirs = fork_pair()
    ours.eval(), theirs.eval()
    head = theirs.features[16:]
    with torch.no_grad():
        two = randn(2, 1024, 2, 7, 7)  # Mixed_5c of a 16×224² clip
        torch.testing.assert_close(head(two).flatten(2).mean(2), ours.head(global_average(two)), **TOL)
        four = randn(2, 1024, 4, 7, 7, seed=1)  # Mixed_5c of the authors' 32×224² clip
        weighted = (four * torch.tensor([1, 2, 2, 1]).view(1, 1, 4, 1, 1) / 6).mean(dim=(3, 4)).sum(2)
        torch.testing.assert_close(head(four).flatten(2).mean(2), ours.head(weighted), **TOL)
        assert (head(four).flatten(2).mean(2) - ours.head(global_average(four))).abs().max() > 1e-4


# -- I3D: piergiaj's run-time "same" padding --------------------------------------------------------------------------

@pytest.mark.parametrize("frames,size", [(8, 32), (7, 30)])
def test_piergiaj_i3d_equals_ours_piergiaj_variant(frames, size):
    ours, theirs = piergiaj_pair()
    x = randn(2, 3, frames, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours.taps(x)[-1], theirs.extract_features(x), **TOL)


def test_piergiaj_head_equals_ours_at_one_pooled_step():
    ours, theirs = piergiaj_pair()
    ours.eval(), theirs.eval()
    mixed_5c = randn(2, 1024, 2, 7, 7)
    with torch.no_grad():
        theirs_logits = theirs.logits(theirs.avg_pool(mixed_5c)).squeeze(3).squeeze(3)
        torch.testing.assert_close(theirs_logits.mean(2), ours.head(global_average(mixed_5c)), **TOL)


def test_where_fixed_and_same_padding_agree():
    assert [same_padding_agrees(t, s) for t, s in [(5, 17), (13, 49), (32, 224), (8, 32), (16, 224), (5, 32)]] == \
        [True, True, False, False, False, False]
    ours, theirs = piergiaj_pair(variant="msaf")  # our fixed-padding I3D against TF "same" padding
    with torch.no_grad():
        agree = randn(2, 3, 5, 17, 17)
        torch.testing.assert_close(ours.taps(agree)[-1], theirs.extract_features(agree), **TOL)
        differ = randn(2, 3, 8, 32, 32)
        a, b = ours.taps(differ)[-1], theirs.extract_features(differ)
        assert a.shape == b.shape and (a - b).abs().max() > 1e-2  # same sizes, grid shifted by one pixel
