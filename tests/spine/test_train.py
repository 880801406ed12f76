"""The training entry point end to end on SYNTHETIC fixtures: records, folds, protocol, failures."""

from __future__ import annotations

import json

import pytest

from repro.config import supported_fusions
from repro.results import read_record
from repro.train import run
from tests.conftest import FAST, compose_train
from tests.learnable import CHANCE, LEARN, MARGIN, write_learnable


def train(tmp_path, data_dir, overrides):
    cfg = compose_train([*overrides, *FAST], tmp_path, data_dir)
    run(cfg)
    return read_record(tmp_path / "results.json")


AVMNIST = ["data=avmnist", "data.reader.val_size=20"]


@pytest.fixture(scope="module")
def learnable_dir(tmp_path_factory):
    return write_learnable(tmp_path_factory)


# mfas_found needs a finished search: trained end to end in tests/search/test_pipeline.py
@pytest.mark.parametrize("fusion", sorted(set(supported_fusions("avmnist")) - {"mfas_found"}))
def test_every_avmnist_fusion_learns_above_chance(fusion, tmp_path, learnable_dir):
    run(compose_train([*LEARN, f"fusion={fusion}"], tmp_path, learnable_dir))
    record = read_record(tmp_path / "results.json")
    assert record["status"] == "completed"
    assert record["fusion"] == fusion
    assert record["metrics"]["test"]["acc"] > CHANCE + MARGIN
    assert record["params"]["total"] >= record["params"]["trainable"] > 0


def test_results_record_has_the_schema(tmp_path, data_dir):
    cfg = compose_train([*AVMNIST, "fusion=concat", *FAST[:-1], "count_flops=true"], tmp_path, data_dir)
    run(cfg)
    record = json.loads((tmp_path / "results.json").read_text())
    for key in ("schema", "run_id", "status", "data", "backbone", "fusion", "fold", "seed", "protocol", "overrides",
                "metrics", "params", "flops", "peak_memory", "wall_time_s", "hardware", "versions", "config"):
        assert key in record, key
    assert set(record["metrics"]) >= {"test", "val", "best_epoch"}
    assert record["params"]["fusion"] > 0
    assert record["flops"]["forward_per_sample"] > 1e5  # two LeNets: well over 100k FLOPs per sample
    assert record["peak_memory"]["bytes"] > 0
    assert record["versions"]["torch"].startswith("2.")


def test_mfas_layout_and_scaling(tmp_path, data_dir):
    record = train(tmp_path, data_dir, ["data=avmnist", "fusion=concat",
                                        f"data.reader.root={data_dir / 'avmnist_mfas'}",
                                        "data.reader.search_train_end=60", "data.reader.search_val_end=80",
                                        "data.reader.scaling=mfas"])
    assert record["status"] == "completed"
    assert record["data_sizes"] == {"train": 60, "val": 20, "test": 40}


@pytest.mark.parametrize("fold", [0, 2])
def test_fold_selects_reader_defined_split_and_is_recorded(fold, tmp_path, data_dir):
    record = train(tmp_path, data_dir, ["data=synthetic_folds", "fusion=concat", f"fold={fold}"])
    assert record["fold"] == fold
    # 6 groups of 12, 2 groups per fold: test fold = 24 samples, train = the other 48 (val = test fold).
    assert record["data_sizes"] == {"train": 48, "val": 24, "test": 24}


def test_fold_out_of_range_is_one_line(tmp_path, data_dir):
    cfg = compose_train(["data=synthetic_folds", "fusion=concat", "fold=7", *FAST], tmp_path, data_dir)
    with pytest.raises(ValueError, match=r"set fold=<0\.\.2>"):
        run(cfg)
    assert read_record(tmp_path / "results.json")["status"] == "failed"


def test_nan_loss_stops_with_one_line_and_failed_record(tmp_path, data_dir):
    cfg = compose_train([*AVMNIST, "fusion=concat", "optimizer.lr=1e30", "+trainer.limit_train_batches=3",
                         "trainer.max_epochs=3", "callbacks=none", "count_flops=false"], tmp_path, data_dir)
    with pytest.raises(FloatingPointError, match="lower optimizer.lr"):
        run(cfg)
    record = read_record(tmp_path / "results.json")
    assert record["status"] == "failed" and "FloatingPointError" in record["error"]


def test_select_on_test_validates_on_the_test_split(tmp_path, data_dir):
    record = train(tmp_path, data_dir, [*AVMNIST, "fusion=concat", "protocol.select_on=test"])
    assert record["protocol"]["select_on"] == "test"
    assert record["metrics"]["val"]["acc"] == pytest.approx(record["metrics"]["test"]["acc"])


class _Interrupt(__import__("lightning").pytorch.Callback):
    def on_train_batch_end(self, *args, **kwargs):
        raise KeyboardInterrupt


def test_interrupted_run_records_interrupted(tmp_path, data_dir, monkeypatch):
    import repro.train as train_module

    real_build = train_module.build_trainer

    def build_with_interrupt(cfg):
        trainer = real_build(cfg)
        trainer.callbacks.append(_Interrupt())
        return trainer

    monkeypatch.setattr(train_module, "build_trainer", build_with_interrupt)
    cfg = compose_train([*AVMNIST, "fusion=concat", *FAST], tmp_path, data_dir)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        run(cfg)
    assert read_record(tmp_path / "results.json")["status"] == "interrupted"


def test_same_seed_same_result_with_deterministic(tmp_path, data_dir):
    def once(sub: str, seed: int) -> dict:
        overrides = [*AVMNIST, "fusion=msaf", f"seed={seed}", "deterministic=true"]
        return train(tmp_path / sub, data_dir, overrides)["metrics"]

    first, second, other = once("a", 7), once("b", 7), once("c", 8)
    assert first["test"] == second["test"] and first["val"] == second["val"]  # losses included: exact floats
    assert other["val"]["loss"] != first["val"]["loss"]  # and the seed matters


def test_encoders_start_from_an_earlier_run(tmp_path, data_dir):
    import torch

    from repro.config import ConfigError
    from repro.train import build_net

    first = train(tmp_path / "image", data_dir, [*AVMNIST, "fusion=unimodal_image"])
    ckpt = first["metrics"]["checkpoint"]
    cfg = compose_train([*AVMNIST, "fusion=msaf", f"backbone.init_from.image={tmp_path / 'image'}"], tmp_path / "f",
                        data_dir)
    net = build_net(cfg)
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(net.encoders["image"].head.weight, saved["net.encoders.image.head.weight"])
    bad = compose_train([*AVMNIST, "fusion=msaf", f"backbone.init_from.audio={ckpt}"], tmp_path / "g", data_dir)
    with pytest.raises(ConfigError, match="has no encoder 'audio'"):
        build_net(bad)
