"""The shared building blocks (repro.models.blocks), the one unimodal network, and repro.runs (earlier runs read for a
new one) on tiny SYNTHETIC tensors and records."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from repro.config import ConfigError
from repro.models.backbones.sequence_features import SequenceFeatures
from repro.models.blocks import hidden_sizes, mlp, per_modality
from repro.models.fusion.unimodal import UnimodalNet
from repro.models.init import init_encoders
from repro.runs import SEARCH_SCHEMA, encoder_weights, found_architecture
from repro.train import encoder_sources


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_mlp_layouts_are_those_of_the_builders_it_replaces():
    """Concat / EF-LSTM / TFN heads: no Dropout module at p = 0; the LSTHM family keeps one (checkpoint keys)."""
    plain = mlp(5, [4, 3], 2, 0.0)
    assert list(plain.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert count(plain) == 5 * 4 + 4 + 4 * 3 + 3 + 3 * 2 + 2
    lsthm = mlp(5, 4, 2, 0.0, dropout_at_zero=True)
    assert [type(m).__name__ for m in lsthm] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert "3.weight" in lsthm.state_dict()
    assert [type(m).__name__ for m in mlp(5, 0, 2, 0.5, dropout_at_zero=True)] == ["Linear"]
    assert [type(m).__name__ for m in mlp(5, [4], 2, 0.3)] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert hidden_sizes(None) == hidden_sizes(0) == hidden_sizes([]) == [] and hidden_sizes(8) == [8]


def test_per_modality_reads_an_int_or_a_mapping():
    assert per_modality(3, ["text", "audio"], "hidden") == {"text": 3, "audio": 3}
    # keys of other modalities are ignored (one mapping serves several presets); defaults fill the rest
    assert per_modality({"text": 5, "vision": 9}, ["text", "audio"], "hidden", {"audio": 2}) == {"text": 5, "audio": 2}
    with pytest.raises(ValueError, match=r"fusion.net.hidden gives no size for modalities \['audio'\]"):
        per_modality({"text": 5}, ["text", "audio"], "hidden")
    with pytest.raises(ValueError, match="positive int per modality"):
        per_modality({"text": 0, "audio": 4}, ["text", "audio"], "reduce_dim")
    with pytest.raises(ValueError, match="must be an int or a"):
        per_modality("big", ["text"], "kernel_size")


def test_one_unimodal_net_for_encoders_and_feature_sequences():
    torch.manual_seed(0)
    image = nn.Linear(6, 3)
    net = UnimodalNet({"image": image, "audio": nn.Linear(2, 3)}, 3, "image")
    x = torch.randn(4, 6)
    assert torch.equal(net({"image": x}).logits, image(x)) and net.modalities == ["image"]
    seq = UnimodalNet({"text": SequenceFeatures(7), "audio": SequenceFeatures(5)}, 2, "text",
                      hidden={"text": 4, "audio": 3}, layers=1)
    lstm = 4 * (7 * 4 + 4 * 4 + 2 * 4)
    assert count(seq) == lstm + 4 * 2 + 2  # the text LSTM and its Linear; the audio encoder is dropped
    out = seq({"text": torch.randn(3, 6, 7), "text_mask": torch.ones(3, 6, dtype=torch.bool)})
    assert out.logits.shape == (3, 2) and out.extras["modality_logits"].shape == (3, 1, 2)
    with pytest.raises(TypeError, match="pre-extracted features"):
        UnimodalNet({"image": nn.Flatten()}, 3, "image", hidden=4)  # no `in_features`: not a feature sequence


def write_checkpoint(path, modality: str, encoder: nn.Module) -> str:
    state = {f"net.encoders.{modality}.{k}": v for k, v in encoder.state_dict().items()}
    torch.save({"state_dict": state}, path)
    return str(path)


def test_encoder_weights_are_loaded_above_the_models(tmp_path):
    torch.manual_seed(1)
    trained, fresh = nn.Linear(3, 2), nn.Linear(3, 2)
    ckpt = write_checkpoint(tmp_path / "a.ckpt", "audio", trained)
    weights = encoder_weights({"audio": ckpt, "image": None}, ["audio", "image"])
    assert list(weights) == ["audio"] and weights["audio"][0] == ckpt
    assert init_encoders({"audio": fresh}, weights) == {"audio": ckpt}
    assert torch.equal(fresh.weight, trained.weight)
    with pytest.raises(ConfigError, match="names modality 'video'"):
        encoder_weights({"video": ckpt}, ["audio"])
    with pytest.raises(ConfigError, match="has no encoder 'image'"):
        encoder_weights({"image": ckpt}, ["image"])
    with pytest.raises(ConfigError, match="does not match this backbone"):
        init_encoders({"audio": nn.Linear(4, 2)}, weights)


def test_found_architecture_and_init_from_precedence(tmp_path):
    """train.py reads the search record (SYNTHETIC here): the rank-th architecture goes to the net as a string, and
    the search's encoder checkpoints apply where backbone.init_from names none."""
    record = {"schema": SEARCH_SCHEMA, "top": [{"arch": "a.c1+b.c1/relu"}, {"arch": "a.c2+b.c1/sigmoid"}],
              "encoders": {"a": "search/a", "b": "search/b"}}
    (tmp_path / "search.json").write_text(json.dumps(record))
    assert found_architecture(tmp_path, 2) == ("a.c2+b.c1/sigmoid", record["encoders"])
    with pytest.raises(ValueError, match="fusion.rank must be 1..2"):
        found_architecture(tmp_path, 3)
    cfg = OmegaConf.create({"backbone": {"encoders": {"a": {}, "b": {}}, "init_from": {"a": "mine/a", "b": None}},
                            "fusion": {"search_dir": str(tmp_path), "rank": 1, "arch": None}})
    assert encoder_sources(cfg) == ({"a": "mine/a", "b": "search/b"}, {"arch": "a.c1+b.c1/relu"})
    cfg.fusion.arch = "a.c1+b.c1/relu"
    with pytest.raises(ConfigError, match="not both"):
        encoder_sources(cfg)


def test_runs_saved_before_the_layout_change_still_build(tmp_path):
    """Saved configs name `repro.models.sequence.unimodal.SequenceUnimodalNet` and give MFASNet `search_dir` / `rank`;
    eval.py and resume rebuild them from those configs, so both still build the same networks."""
    from repro.train import build_net
    from tests.conftest import compose_train

    arch = "audio.conv5+image.conv3/relu"
    cfg = compose_train(["data=avmnist", "fusion=mfas_found", f"fusion.arch='{arch}'"], tmp_path)
    OmegaConf.update(cfg, "fusion.net.search_dir", None, force_add=True)
    OmegaConf.update(cfg, "fusion.net.rank", 1, force_add=True)
    assert build_net(cfg).arch == arch
    cfg = compose_train(["data=mosi", "fusion=unimodal_text"], tmp_path / "u")
    new = count(build_net(cfg))
    OmegaConf.update(cfg, "fusion.net._target_", "repro.models.sequence.unimodal.SequenceUnimodalNet")
    old = build_net(cfg)
    assert type(old) is UnimodalNet and count(old) == new and old.lstm is not None
