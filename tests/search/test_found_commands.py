"""found.yaml's train.py commands repeat the search's data overrides (issue 13 §7), and pre-training states its
expected duration before it starts."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from repro.config import compose_train
from repro.search.run import carried_overrides, compose_search, pretrain_overrides, write_found


def test_found_commands_carry_the_searchs_data_overrides(tmp_path):
    data = tmp_path / "my data" / "avmnist"  # a space: the command must stay one shell word per override
    overrides = ["data=avmnist", f"data.reader.root={data}", "data.reader.val_size=20", "search.samples=3",
                 "trainer.max_epochs=1", "backbone.init_from.image=/x.ckpt", "fold=null"]
    assert carried_overrides(overrides) == [f"data.reader.root={data}", "data.reader.val_size=20", "fold=null"]
    cfg = compose_search([*overrides, f"search.dir={tmp_path / 's'}"])
    record = {"strategy": "mfas", "data": "avmnist", "seed": 0,
              "top": [{"rank": 1, "score": 0.5, "arch": "audio.conv1+image.conv1/relu"}]}
    found = yaml.safe_load(write_found(cfg, tmp_path / "s", record, overrides).read_text())
    words = shlex.split(found["top"][0]["command"])
    assert words[:3] == ["python", "train.py", "data=avmnist"]
    # the copied command, composed as train.py would, reads the search's folder (not ./data/avmnist)
    trained = compose_train(words[2:])
    assert Path(trained.data.reader.root) == data and trained.data.reader.val_size == 20
    assert trained.fusion.name == "mfas_found" and Path(trained.fusion.search_dir) == tmp_path / "s"


def test_pretraining_prints_its_expected_duration(tmp_path):
    cfg = compose_train(pretrain_overrides(["data=avmnist"], "audio", 10))
    estimate = cfg.callbacks.duration_estimate
    assert estimate.samples_per_s == 180  # configs/backbone/avmnist.yaml's measured audio rate
    assert "audio" in estimate.label
