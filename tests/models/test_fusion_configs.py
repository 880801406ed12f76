"""configs/fusion/*.yaml and configs/preset/{avmnist,avdigits}_*.yaml: every supported pair composes with Hydra,
instantiates on the AV-MNIST LeNets and runs one forward/backward step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

hydra = pytest.importorskip("hydra")
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from repro.config import supported_fusions  # noqa: E402
from repro.models.backbones.lenet import LeNet  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# The image+audio methods (those supported on AV-MNIST). `mfas_found` needs an architecture: tests/search.
FUSIONS = sorted(set(supported_fusions("avmnist")) - {"mfas_found"})
EXPECTED = {
    "unimodal_image", "unimodal_audio", "late_avg", "late_product", "multiplicative", "concat",
    "two_stream", "gmu", "centralnet", "mcbp", "mmtm", "msaf",
}  # fmt: skip


def preset_overrides(data: str, name: str) -> list[str]:
    """The pair's preset, where it has one (presets exist only where a pair carries settings)."""
    return [f"+preset={data}_{name}"] if (CONFIGS / "preset" / f"{data}_{name}.yaml").exists() else []


def test_every_method_has_a_config_and_both_datasets():
    assert EXPECTED <= set(FUSIONS)
    assert set(supported_fusions("avdigits")) == set(supported_fusions("avmnist"))
    for name in FUSIONS:
        assert (CONFIGS / "fusion" / f"{name}.yaml").exists()
        for data in ("avmnist", "avdigits"):
            preset = CONFIGS / "preset" / f"{data}_{name}.yaml"
            assert not preset.exists() or preset.read_text().startswith("# @package _global_")


@pytest.mark.parametrize("data", ["avmnist", "avdigits"])
@pytest.mark.parametrize("name", FUSIONS)
def test_config_instantiates_and_runs(name, data):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(overrides=[f"+fusion={name}", *preset_overrides(data, name)])
    assert cfg.fusion.name == name
    torch.manual_seed(0)
    encoders = {"image": LeNet(1, 8, 3, 10), "audio": LeNet(1, 8, 5, 10)}
    net = instantiate(cfg.fusion.net)(encoders=encoders, num_classes=10)
    batch = {"image": torch.randn(2, 1, 28, 28), "audio": torch.randn(2, 1, 112, 112), "label": torch.tensor([1, 7])}
    out = net(batch)
    assert out.logits.shape == (2, 10)
    loss, _ = net.compute_loss(out, batch["label"], F.cross_entropy)
    loss.backward()
    assert torch.isfinite(loss)
