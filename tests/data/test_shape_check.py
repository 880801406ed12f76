"""Sequence data whose (steps, features) differ from the data config's `data.modalities` stop with one line naming the
file, the split/modality, what was expected and the fix (MICA issue §6). SYNTHETIC MulT pickles."""

from __future__ import annotations

import pytest

from repro.config import compose_train
from repro.data import fixtures_cmu
from repro.data.base import DataError
from repro.train import build_datamodule


def datamodule(tmp_path, *overrides):
    cfg = compose_train(["data=mosi_unaligned", "fusion=mult", *overrides], output_dir=tmp_path / "run",
                        data_dir=tmp_path)
    return build_datamodule(cfg)


@pytest.fixture
def short_unaligned(tmp_path):
    """SYNTHETIC unaligned MOSI with 6 / 12 / 18 steps (the real file: 50 / 375 / 500)."""
    return fixtures_cmu.write_mult_pickle(root=tmp_path / "mosi", dataset="mosi", n=(6, 4, 4), T=6, aligned=False)


def test_steps_that_differ_from_the_config_are_one_clear_line(tmp_path, short_unaligned):
    with pytest.raises(DataError) as err:
        datamodule(tmp_path).setup()
    message = str(err.value)
    assert "\n" not in message
    assert str(short_unaligned) in message and "'text'" in message and "(6, 300)" in message
    assert "(50, 300)" in message and "data.modalities.text" in message and "data.check_steps=false" in message


def test_steps_can_be_declared_or_left_free(tmp_path, short_unaligned):
    declared = datamodule(tmp_path, "data.modalities.text=[6,300]", "data.modalities.audio=[12,5]",
                          "data.modalities.vision=[null,20]")
    declared.setup()
    assert declared.splits["train"].arrays["audio"].shape[1:] == (12, 5)
    datamodule(tmp_path, "data.check_steps=false").setup()


def test_feature_sizes_are_checked_even_without_steps(tmp_path, short_unaligned):
    with pytest.raises(DataError, match=r"modality 'vision' has \(steps, features\) = \(18, 20\).*\(None, 35\)"):
        datamodule(tmp_path, "data.check_steps=false", "data.modalities.vision=[500,35]").setup()
