"""MSAF Fig. 6/7 (`python -m repro.analysis.msaf_attention`) on a tiny trained AV-Digits MSAF run with two fusion
points: the raw arrays' shapes, the softmax over blocks, the per-class modality shares, and the figures' numbers
against a hand computation from the network's own output."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from repro.analysis import msaf_attention, runs
from repro.results import read_record, write_record
from repro.train import run
from tests.conftest import compose_train

TWO_POINTS = ["fusion.net.points=[{image:conv2,audio:conv4},{image:conv3,audio:conv5}]",
              "fusion.net.block_channels=[8,16]"]  # configs/preset/avdigits_msaf.yaml's comment


@pytest.fixture(scope="module")
def msaf_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("msaf_run")
    overrides = ["data=avdigits", "fusion=msaf", *TWO_POINTS, "trainer.max_epochs=1",
                 "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1", "callbacks=none",
                 "count_flops=false"]
    run(compose_train(overrides, root / "run", root / "data"))
    assert read_record(root / "run" / "results.json")["status"] == "completed"
    return root / "run"


@pytest.fixture(scope="module")
def analysed(msaf_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures") / "msaf_attention"
    paths = msaf_attention.main([str(msaf_run), "--out", str(out)])
    return paths, dict(np.load(paths["npz"])), json.loads(paths["json"].read_text())


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_arrays_have_the_networks_layout(msaf_run, analysed):
    paths, raw, summary = analysed
    for key in ("fig6", "fig7"):
        assert paths[key].is_file() and paths[key].stat().st_size > 10_000
    n = len(runs.load_run(msaf_run)[2].splits["test"])
    # module 1: image conv2 (16 ch) / audio conv4 (64 ch) in blocks of 8 -> 2 + 8; module 2: 32 / 128 by 16 -> 2 + 8
    assert raw["module1_attention"].shape == (n, 10, 8) and raw["module2_attention"].shape == (n, 10, 16)
    assert raw["module1_block_modality"].tolist() == [0, 0] + [1] * 8 == raw["module2_block_modality"].tolist()
    assert raw["labels"].shape == raw["ids"].shape == (n,)
    assert raw["fig6_share"].shape == (10, 2) and raw["fig6_share_channels"].shape == (10, 2, 16)
    assert raw["fig7_module1_block_mean"].shape == raw["fig7_module2_block_mean"].shape == (10,)
    assert summary["modalities"] == ["image", "audio"] and summary["classes"] == [str(i) for i in range(10)]
    assert summary["samples"] == n and summary["synthetic"] is False and summary["fig6_module"] == 2
    assert summary["blocks"] == {"module1": {"image": 2, "audio": 8}, "module2": {"image": 2, "audio": 8}}


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_attention_is_a_softmax_over_blocks_and_shares_sum_to_one(analysed):
    _, raw, summary = analysed
    for k in (1, 2):
        att = raw[f"module{k}_attention"]
        assert np.allclose(att.sum(axis=1), 1.0, atol=1e-5) and (att > 0).all()  # every sample, every channel
        assert raw[f"fig7_module{k}_block_mean"].sum() == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(raw["fig6_share"].sum(axis=1), 1.0, atol=1e-6)
    assert np.allclose(raw["fig6_share_channels"].sum(axis=1), 1.0, atol=1e-5)
    assert raw["fig6_class_counts"].sum() == len(raw["labels"])
    assert raw["fig6_uniform_share"].tolist() == [0.2, 0.8] and summary["fig6_uniform_share"] == {"image": 0.2,
                                                                                                   "audio": 0.8}
    assert all(sum(s.values()) == pytest.approx(1.0) for s in summary["fig6_share"].values())


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_figures_match_a_hand_computation_on_the_first_samples(msaf_run, analysed):
    _, raw, _ = analysed
    _, net, datamodule = runs.load_run(msaf_run)
    batch = next(iter(datamodule.test_dataloader()))
    with torch.no_grad():
        out = net(batch)
    for k in (0, 1):  # the analysis stores the network's own attention, sample by sample, in the split's order
        first = out.extras[f"msaf{k}_attention"][:5].numpy()
        assert np.allclose(raw[f"module{k + 1}_attention"][:5], first, atol=1e-6)
    assert raw["labels"][:5].tolist() == batch["label"][:5].tolist()
    # Fig. 6 by hand: per class, the image blocks' (0, 1) attention summed, averaged over channels and samples
    att, labels = raw["module2_attention"], raw["labels"]
    for c in sorted(set(labels[:5].tolist())):
        rows = [att[i, :2].sum(axis=0).mean() for i in range(len(labels)) if labels[i] == c]
        assert raw["fig6_share"][c, 0] == pytest.approx(sum(rows) / len(rows), abs=1e-6)
        assert raw["fig6_share"][c, 1] == pytest.approx(1 - sum(rows) / len(rows), abs=1e-6)
    # Fig. 7 by hand: block 3 of module 1, averaged over every sample and channel
    assert raw["fig7_module1_block_mean"][3] == pytest.approx(float(raw["module1_attention"][:, 3].mean()), abs=1e-6)


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_synthetic_runs_are_labelled(msaf_run, tmp_path, capsys):
    copy = tmp_path / "synthetic_run"
    shutil.copytree(msaf_run, copy)
    write_record(copy, {**read_record(copy / "results.json"), "synthetic": True})
    paths = msaf_attention.main([str(copy), "--out", str(tmp_path / "att"), "--module", "1"])
    assert json.loads(paths["json"].read_text())["synthetic"] is True
    assert bool(np.load(paths["npz"])["synthetic"]) is True
    assert capsys.readouterr().out.startswith("SYNTHETIC fixture data — wrote ")


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_bad_input_is_one_line(msaf_run, tmp_path):
    with pytest.raises(SystemExit) as err:
        msaf_attention.main([str(msaf_run), "--module", "3", "--out", str(tmp_path / "x")])
    assert str(err.value) == ("error: --module 3: the run has 2 MSAF module(s) (fusion.net.points); choose 1..2")
    with pytest.raises(SystemExit) as err:
        msaf_attention.main([str(tmp_path), "--out", str(tmp_path / "x")])
    assert str(err.value).startswith(f"error: {tmp_path} has no results.json") and "\n" not in str(err.value)
    assert not list(tmp_path.glob("x*"))  # nothing half-written


def test_class_names_are_emotions_on_ravdess():
    ravdess = OmegaConf.create({"data": {"name": "ravdess", "num_classes": 8}})
    assert msaf_attention.class_names(ravdess)[:3] == ["neutral", "calm", "happy"]
    assert msaf_attention.class_names(OmegaConf.create({"data": {"name": "avdigits", "num_classes": 3}})) == [
        "0", "1", "2"]
