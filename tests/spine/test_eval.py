"""eval.py and the robustness sweep on runs trained here on SYNTHETIC AV-MNIST fixtures (repro.evaluate)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from repro.analysis import robustness
from repro.config import ConfigError
from repro.data.base import DataError
from repro.evaluate import Perturbation, PerturbedLoader, checkpoint_metrics, evaluate, load_run
from repro.results import read_record
from repro.train import run
from tests.conftest import FAST, REPO_ROOT, compose_train
from tests.learnable import LEARN, write_learnable

AVMNIST = ["data=avmnist", "data.reader.val_size=20"]


def train_like_hydra(overrides: list[str], run_dir, data_dir):
    """Train in-process and leave `.hydra/config.yaml` as a Hydra app does: unresolved, output_dir from Hydra."""
    cfg = compose_train(overrides, run_dir, data_dir)
    saved = cfg.copy()
    OmegaConf.update(saved, "paths.output_dir", "${hydra:runtime.output_dir}")
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(saved, run_dir / ".hydra" / "config.yaml")
    run(cfg)
    return run_dir


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory, data_dir):
    """A concat fusion (uses both modalities) trained 2 batches on the SYNTHETIC fixture."""
    return train_like_hydra([*AVMNIST, "fusion=concat", *FAST], tmp_path_factory.mktemp("fast_run"), data_dir)


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    """Concat trained to 1.0 test accuracy on the learnable SYNTHETIC AV-MNIST (tests/learnable.py; ~10 s)."""
    data = write_learnable(tmp_path_factory)
    return train_like_hydra([*LEARN, "fusion=concat"], tmp_path_factory.mktemp("learned_run"), data)


def test_eval_equals_the_record_test_metrics(fast_run):
    expected = read_record(fast_run / "results.json")["metrics"]
    record = evaluate(fast_run)
    assert record["metrics"] == expected["test"]  # exact floats, loss included
    written = json.loads((fast_run / "eval.json").read_text())
    assert written["metrics"] == expected["test"] and written["perturb"]["drop"] == []
    assert written["synthetic"] is True and written["split"] == "test"
    by_ckpt = evaluate(expected["checkpoint"], out=fast_run / "by_ckpt.json")  # a .ckpt finds its run dir
    assert by_ckpt["metrics"] == expected["test"] and by_ckpt["run_dir"] == str(fast_run)


def test_a_moved_run_dir_without_hydra_config_evaluates_the_same(fast_run, tmp_path):
    # runs composed without a Hydra app have no .hydra/: the record's resolved config is used; the record's
    # checkpoint path no longer exists, so the checkpoint of the same name under the moved checkpoints/ is tested
    moved = tmp_path / "moved"
    shutil.copytree(fast_run, moved, ignore=shutil.ignore_patterns(".hydra", "eval.json"))
    record = json.loads((moved / "results.json").read_text())
    expected, named = record["metrics"]["test"], Path(record["metrics"]["checkpoint"])
    record["metrics"]["checkpoint"] = str(tmp_path / "gone" / "checkpoints" / named.name)
    (moved / "results.json").write_text(json.dumps(record))
    result = evaluate(moved)
    assert result["metrics"] == expected and result["checkpoint"] == str(moved / "checkpoints" / named.name)


def test_val_split_equals_the_record_val_metrics(fast_run, tmp_path):
    record = evaluate(fast_run, split="val", out=tmp_path)
    assert record["metrics"] == read_record(fast_run / "results.json")["metrics"]["val"]
    assert (tmp_path / "eval.json").is_file()


def test_drop_zeros_changes_predictions_and_equals_a_hand_zeroed_forward(fast_run):
    loaded = load_run(fast_run)
    clean = checkpoint_metrics(loaded)  # also loads the checkpoint's weights into loaded.task
    dropped = checkpoint_metrics(loaded, perturbation=Perturbation(drop=("audio",)))
    assert dropped["loss"] != clean["loss"]
    batch = next(iter(loaded.datamodule.test_dataloader()))
    perturbed = next(iter(PerturbedLoader([batch], Perturbation(drop=("audio",)), {})))
    net = loaded.task.net.eval()
    with torch.no_grad():
        by_hand = net({**batch, "audio": torch.zeros_like(batch["audio"])}).logits
        assert torch.equal(net(perturbed).logits, by_hand)
        assert not torch.allclose(net(batch).logits, by_hand)  # the fusion uses the audio
    assert torch.count_nonzero(batch["audio"]) > 0  # the loader's own batch is left untouched


def test_mean_fill_is_the_train_mean_sample(fast_run):
    loaded = load_run(fast_run)
    train = loaded.datamodule.splits["train"]
    mean = np.mean([train[i]["audio"].numpy().astype(np.float64) for i in range(len(train))], axis=0)
    stats = loaded.stats(["audio"])["audio"]
    np.testing.assert_allclose(stats.mean.numpy(), mean, rtol=1e-5, atol=1e-5)
    values = np.stack([train[i]["audio"].numpy().astype(np.float64) for i in range(len(train))])
    assert stats.std == pytest.approx(values.std(), rel=1e-6)
    batch = next(iter(loaded.datamodule.test_dataloader()))
    filled = PerturbedLoader([batch], Perturbation(drop=("audio",), fill="mean"), {"audio": stats})
    out = next(iter(filled))["audio"]
    assert torch.equal(out[0], stats.mean) and torch.equal(out[-1], stats.mean)


def test_noise_level_zero_is_clean_and_noise_is_seeded(fast_run):
    loaded = load_run(fast_run)
    clean = checkpoint_metrics(loaded)
    assert checkpoint_metrics(loaded, perturbation=Perturbation(noise={"audio": 0.0})) == clean
    noisy = [checkpoint_metrics(loaded, perturbation=Perturbation(noise={"audio": 0.5}, seed=s)) for s in (1, 1, 2)]
    assert noisy[0] == noisy[1] and noisy[0]["loss"] != noisy[2]["loss"] and noisy[0]["loss"] != clean["loss"]


def test_noise_at_level_one_lowers_accuracy(learned_run):
    loaded = load_run(learned_run)
    clean = checkpoint_metrics(loaded)["acc"]
    noisy = checkpoint_metrics(loaded, perturbation=Perturbation(noise={"audio": 1.0}))["acc"]
    assert clean >= 0.9  # learnable fixture: the clean model is right
    assert noisy <= clean - 0.3  # measured: 1.0 -> 0.1 (chance) with audio noise at one train std


def test_unknown_modality_and_bad_overrides_are_one_line(fast_run, tmp_path):
    with pytest.raises(ConfigError, match=r"perturb.drop names modality 'depth'; this run's data has: .*audio") as e:
        evaluate(fast_run, perturbation=Perturbation(drop=("depth",)), out=tmp_path)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="perturb.noise names modality 'text'"):
        evaluate(fast_run, perturbation=Perturbation.from_config({"noise": {"text": 0.3}}), out=tmp_path)
    with pytest.raises(ConfigError, match="perturb.fill='median'"):
        Perturbation.from_config({"fill": "median"})
    with pytest.raises(ConfigError, match="no key 'data.reader.rot'"):
        evaluate(fast_run, overrides=["data.reader.rot=/x"], out=tmp_path)
    with pytest.raises(ConfigError, match="config groups cannot change"):
        evaluate(fast_run, overrides=["data=mmimdb"], out=tmp_path)


def test_data_overrides_reach_the_saved_config(fast_run, tmp_path):
    # the saved config is unresolved: paths.data_dir still moves data.reader.root
    with pytest.raises(DataError, match=str(tmp_path / "elsewhere" / "avmnist")):
        evaluate(fast_run, overrides=[f"paths.data_dir={tmp_path / 'elsewhere'}"], out=tmp_path)


def test_robustness_cli_writes_a_row_per_level_and_a_png(learned_run, tmp_path):
    robustness.main([str(learned_run), "--modalities", "audio,image", "--levels", "0,0.5,1", "--out", str(tmp_path)])
    with open(tmp_path / "robustness.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["modality"], float(r["level"])) for r in rows] == [
        (m, lv) for m in ("audio", "image") for lv in (0.0, 0.5, 1.0)]
    test = read_record(learned_run / "results.json")["metrics"]["test"]
    assert float(rows[0]["acc"]) == test["acc"] and float(rows[3]["acc"]) == test["acc"]  # level 0 = clean, exactly
    assert float(rows[2]["acc"]) < float(rows[0]["acc"])  # audio noise at level 1
    assert (tmp_path / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_robustness_cli_bad_run_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        robustness.main([str(tmp_path / "missing")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run=") and "\n" not in err


def test_eval_command_line_needs_no_plus_and_refuses_group_choices():
    from repro.evaluate import plus_unknown_keys

    assert plus_unknown_keys(["run=r", "split=val", "perturb.drop=[audio]", "perturb.noise.audio=0.3",
                              "data.reader.root=/d", "paths.data_dir=/p", "+x=1", "hydra.verbose=true"]) == [
        "run=r", "split=val", "perturb.drop=[audio]", "+perturb.noise.audio=0.3", "+data.reader.root=/d",
        "+paths.data_dir=/p", "+x=1", "hydra.verbose=true"]
    with pytest.raises(ConfigError, match=r"data=mmimdb: eval.py evaluates the run with its own config groups"):
        plus_unknown_keys(["run=r", "data=mmimdb"])
    with pytest.raises(ConfigError, match=r"unknown perturbation 'dorp'; perturb.\* keys are: drop, fill, noise"):
        plus_unknown_keys(["run=r", "perturb.dorp=[audio]"])


def eval_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "eval.py", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "REPRO_ALLOCATOR": "system"})


def test_eval_cli_bad_run_dir_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    from repro import evaluate as evaluate_module

    monkeypatch.setattr(sys, "argv", ["eval.py", f"run={tmp_path}"])  # the Hydra app, in this process
    try:
        with pytest.raises(SystemExit) as exit_info:
            evaluate_module.main()
    finally:  # leave no Hydra app state behind for later tests (train.hydra_choices reads HydraConfig)
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        f"error: run={tmp_path}: no results.json there; give a training run directory "
        "(outputs/runs/<data>-<fusion>/<time>) or a .ckpt inside one")


@pytest.mark.slow  # two subprocesses that import torch and Lightning: ~20 s each on a loaded 2-core machine
def test_eval_py_writes_eval_json_with_the_perturbation_and_fails_in_one_line(fast_run, tmp_path):
    bad = eval_cli(f"run={tmp_path / 'missing'}")
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: run=") and bad.stderr.count("\n") == 1
    result = eval_cli(f"run={fast_run}", "perturb.noise.audio=0.5", "perturb.seed=3", f"out={tmp_path / 'e.json'}",
                      f"paths.data_dir={read_record(fast_run / 'results.json')['config']['paths']['data_dir']}")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "e.json").read_text())
    assert record["perturb"] == {"drop": [], "fill": "zeros", "noise": {"audio": 0.5}, "seed": 3}
    loaded = load_run(fast_run)
    assert record["metrics"] == checkpoint_metrics(loaded, perturbation=Perturbation(noise={"audio": 0.5}, seed=3))
    assert "[repro eval] SYNTHETIC avmnist × concat split=test noise.audio=0.5" in result.stdout
