"""Every config composes; bad command lines fail at once with one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from repro.config import ConfigError, available, check_cli, supported_fusions
from tests.conftest import REPO_ROOT, compose_train

PAIRS = [(d, f) for d in available("data") for f in supported_fusions(d)]


def test_groups_named_by_the_issue_exist():
    for group in ("data", "backbone", "fusion", "trainer", "logger", "callbacks", "paths", "hydra", "experiment",
                  "debug", "hparams_search", "local", "preset", "table"):
        assert (REPO_ROOT / "configs" / group).is_dir(), group
    assert {"cpu", "gpu", "ddp", "ddp_cpu"} <= set(available("trainer"))
    assert {"csv", "tensorboard", "wandb", "many"} <= set(available("logger"))


@pytest.mark.parametrize("data,fusion", PAIRS)
def test_every_supported_pair_composes(data, fusion, tmp_path):
    cfg = compose_train([f"data={data}", f"fusion={fusion}"], tmp_path)
    assert cfg.fusion.name
    assert cfg.backbone.encoders
    assert cfg.data.name == data


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp", "ddp_cpu"])
@pytest.mark.parametrize("logger", ["csv", "tensorboard", "wandb", "many"])
def test_trainer_and_logger_choices_compose(trainer, logger, tmp_path):
    cfg = compose_train([f"trainer={trainer}", f"logger={logger}"], tmp_path)
    assert cfg.trainer._target_.endswith("Trainer")
    if logger in ("wandb", "many"):
        assert cfg.logger.wandb.offline is True  # W&B is offline unless the user opts in


def test_preset_is_picked_automatically(tmp_path):
    cfg = compose_train(["data=avdigits", "fusion=msaf"], tmp_path)
    assert cfg.fusion.net.points, "the avdigits_msaf preset must set the MSAF fusion points"


def test_a_dataset_with_folds_names_the_fold_a_plain_run_trains(tmp_path):
    """`python train.py data=ravdess fusion=msaf` trains fold 0 (data.default_fold); fold=k wins; fixed-split
    datasets keep fold null."""
    assert compose_train(["data=ravdess", "fusion=msaf"], tmp_path).fold == 0
    assert compose_train(["data=ravdess", "fusion=msaf", "fold=3"], tmp_path).fold == 3
    assert compose_train(["data=avdigits", "fusion=msaf"], tmp_path).fold is None
    assert compose_train(["data=synthetic_folds", "fusion=msaf"], tmp_path).fold is None


def test_experiment_and_debug_compose(tmp_path):
    for extra in (["experiment=avdigits_msaf"], ["debug=default"], ["debug=fdr"], ["hparams_search=avdigits_optuna"]):
        compose_train(extra, tmp_path)


def test_unknown_choice_is_one_line():
    with pytest.raises(ConfigError) as err:
        check_cli(["fusion=nope"])
    assert "\n" not in str(err.value) and "msaf" in str(err.value)


def test_unsupported_pair_lists_supported_choices(tmp_path):
    (tmp_path / "fusion").mkdir()
    (tmp_path / "data").mkdir()
    for name, supports in (("a", "[d]"), ("b", "[other]")):
        (tmp_path / "fusion" / f"{name}.yaml").write_text(f"name: x\nsupports: {supports}\n")
    (tmp_path / "data" / "d.yaml").write_text("name: d\nfamily: null\n")
    check_cli(["data=d", "fusion=a"], config_dir=tmp_path)
    with pytest.raises(ConfigError, match="supported fusions for d: a$"):
        check_cli(["data=d", "fusion=b"], config_dir=tmp_path)
    with pytest.raises(ConfigError):  # multirun lists are checked element by element
        check_cli(["-m", "data=d", "fusion=a,b"], config_dir=tmp_path)


def test_cli_rejects_unknown_choice_with_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "train.py", "fusion=does_not_exist"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown fusion 'does_not_exist'")


def test_cli_missing_dataset_is_one_line_naming_the_path_and_fix(tmp_path):
    proc = subprocess.run([sys.executable, "train.py", "data=avmnist", f"paths.data_dir={tmp_path}",
                           "callbacks=none"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: AV-MNIST folder") and str(tmp_path) in last and "fix:" in last


def test_spconv_is_a_dependency_only_when_a_module_imports_it():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = any(d.replace(" ", "").startswith("spconv") for d in deps)
    imported = any("import spconv" in p.read_text() for p in (REPO_ROOT / "src").rglob("*.py"))
    assert listed == imported
