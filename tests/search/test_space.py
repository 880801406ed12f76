"""The MFAS search space (mfas.txt §3.1): size, enumeration, string and code forms, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from repro.models.backbones.lenet import LeNet
from repro.models.fusion.mfas_space import FusionLayer, SearchSpace, SearchSpaceError


@pytest.fixture()
def space() -> SearchSpace:
    encoders = {"audio": LeNet(1, 4, 5, 10), "image": LeNet(1, 4, 3, 10)}
    return SearchSpace.from_encoders(encoders, ["audio", "image"])  # AV-MNIST: M=5, N=3, P=2


def one_line(err) -> str:
    assert "\n" not in str(err.value)
    return str(err.value)


def test_avmnist_space_size_follows_mnp_to_the_l(space):
    assert space.shape == (5, 3, 2)
    assert [space.size(k) for k in (1, 2, 4)] == [30, 900, 810_000]  # (M·N·P)^L
    assert "M=5" in space.describe() and "810,000" in space.describe()


def test_enumeration_is_complete_and_unique(space):
    one = list(space.enumerate(1))
    two = list(space.enumerate(2))
    assert len(one) == 30 and len(set(one)) == 30
    assert len(two) == 900 and len(set(two)) == 900
    assert all(len(a) == 2 for a in two)


def test_string_and_code_round_trips(space):
    arch = (FusionLayer("conv3", "conv2", "relu"), FusionLayer("conv5", "conv3", "sigmoid"))
    text = space.format(arch)
    assert text == "audio.conv3+image.conv2/relu | audio.conv5+image.conv3/sigmoid"
    assert space.parse(text) == arch
    codes = space.codes(arch)
    assert codes.tolist() == [[2, 1, 0], [4, 2, 1]]  # 0-based indices, as the authors' (L, 3) arrays
    assert space.from_codes(codes) == arch
    for a in space.enumerate(1):
        assert space.parse(space.format(a)) == a and space.from_codes(space.codes(a)) == a


@pytest.mark.parametrize("text,expected", [
    ("audio.conv9+image.conv2/relu", "audio tap 'conv9' is not in the search space"),
    ("audio.conv1+image.conv2/tanh", "non-linearity 'tanh' is not in the search space"),
    ("image.conv1+audio.conv2/relu", "expected 'audio'+'image'"),
    ("audio.conv1 image.conv2 relu", "is not of the form"),
    (" | ".join(["audio.conv1+image.conv1/relu"] * 5), "1..4 fusion layers"),
])
def test_bad_architecture_strings_are_one_line(space, text, expected):
    with pytest.raises(SearchSpaceError) as err:
        space.parse(text)
    assert expected in one_line(err)


def test_bad_codes_and_taps_are_one_line(space):
    with pytest.raises(SearchSpaceError) as err:
        space.from_codes(np.array([[5, 0, 0]]))
    assert "outside the space's ranges" in one_line(err)
    with pytest.raises(SearchSpaceError) as err:
        SearchSpace.from_encoders({"audio": LeNet(1, 4, 5, 10), "image": LeNet(1, 4, 3, 10)}, ["audio", "image"],
                                  taps={"image": ["conv4"]})
    assert "encoder 'image' has no tap(s) ['conv4']" in one_line(err)
