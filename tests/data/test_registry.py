"""The dataset registry and `python -m repro.data check|fixture`, for every registered dataset (SYNTHETIC fixtures).

Each dataset: its entry agrees with its data config (reader class, variant arguments, folder); its fixture, written
by `fixture`, reads back through `check` with the sample counts and shapes the writer was asked for and
`synthetic: true`; a missing or corrupted folder gives exit code 1 and one line naming the path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from repro.config import CONFIG_DIR, available
from repro.data import registry
from repro.data.cli import label_histogram, main
from repro.data.fixtures import write_folds
from repro.data.fixtures_paired import GAP_CHOICES, MAX_LEAD
from repro.tables import load_table, smoke_fixtures

NAMES = sorted(registry.DATASETS)
AV = {"image": [1, 28, 28], "audio": [1, 112, 112]}
MULT_DIMS = {"mosi": (5, 20), "mosei": (74, 35), "iemocap": (74, 35)}  # COVAREP, FACET sizes of MulT's files
UNALIGNED_FRAMES = 6 * 9 + 5 * max(GAP_CHOICES) + 2 * MAX_LEAD  # write_paired_mult_pickles: 6 words of <= 9 frames


def _expected() -> dict[str, tuple[tuple[int, int, int], dict[str, list[int]]]]:
    """(train, val, test) samples and per-modality sample shapes each fixture writer is asked for by default."""
    out = {
        "avdigits": ((40, 10, 20), AV),  # write_avdigits sizes
        "avdigits_full": ((40, 10, 20), AV),
        "avmnist": ((60, 20, 40), AV),  # 80 train files, val_size=20; 40 test
        "synthetic_folds": ((48, 24, 24), AV),  # 6 groups x 12, fold 0 tests (and validates) on 2 groups
        "mmimdb": ((24, 8, 8), {"text": [300], "image": [3, 256, 160]}),
        "mosei_msaf": ((12, 4, 4), {"text": [50, 768], "audio": [50, 74], "vision": [50, 35]}),
        "pom": ((8, 4, 4), {"text": [50, 300], "audio": [50, 74], "vision": [50, 35]}),  # one segment per video
        # 24 actors x 2 clips; fold 0 with select_on=val: 16 training, 4 validation, 4 test actors; 8 frames of 32²
        "ravdess": ((32, 8, 8), {"video": [8, 3, 32, 32], "audio": [13, 212]}),
        "ravdess_audio": ((32, 8, 8), {"audio": [13, 212]}),
        # 8 subjects x 4 actions x 2 replications (one extra all-empty sample excluded); mfas protocol: 4 training,
        # 2 dev, 2 test subjects; SYNTHETIC .skeleton files resized to HCN's 32-frame window
        "ntu_skeleton": ((32, 16, 16), {"skeleton": [3, 32, 25, 2]}),
        # the same samples + one SYNTHETIC avi each, paired by stem; 8 frames of 32² (the registry's smoke overrides)
        "ntu": ((32, 16, 16), {"video": [8, 3, 32, 32], "skeleton": [3, 32, 25, 2]}),
        # MESM's raw layout (repro.data.fixtures_mesm): 8/6/6 utterances; the first has 2 (IEMOCAP, 16 frames at step
        # 15) / 3 (MOSEI, 2-fps) face crops and 2 / 4 spectrogram chunks (float32; the token ids are int64)
        "iemocap_raw": ((8, 6, 6), {"video": [2, 3, 48, 48], "audio": [2, 1, 128, 32]}),
        "mosei_raw": ((8, 6, 6), {"video": [3, 3, 48, 48], "audio": [4, 1, 128, 32]}),
    }
    # MESM's hand-crafted features (issue 16): steps = the longest fixture sequence of each modality
    out["iemocap_hcf"] = ((12, 6, 6), {"text": [6, 300], "audio": [14, 144], "vision": [7, 35]})
    out["mosei_hcf"] = ((12, 6, 6), {"text": [8, 300], "audio": [12, 74], "vision": [12, 35]})
    for d, (a, v) in MULT_DIMS.items():
        out[d] = ((12, 4, 4), {"text": [20, 300], "audio": [20, a], "vision": [20, v]})
        out[f"{d}_unaligned"] = ((16, 8, 8), {"text": [6, 300], "audio": [UNALIGNED_FRAMES, a],
                                              "vision": [UNALIGNED_FRAMES, v]})
    return out


EXPECTED = _expected()


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _fixture(capsys, name: str, root: Path) -> tuple[Path, list[str]]:
    """Write `name`'s fixture with the CLI; returns its folder and the `check` arguments the CLI printed."""
    entry = registry.get(name)
    folder = entry.fixture_folder(root)
    code, out, err = _run(capsys, "fixture", f"data={name}", f"out={folder}")
    assert code == 0, err
    assert f"SYNTHETIC {name} fixture" in out and str(folder) in out
    check_line = next(line for line in out.splitlines() if line.startswith("check it:"))
    train_line = next(line for line in out.splitlines() if line.startswith("train on it:"))
    assert f"python train.py data={name}" in train_line and all(o in train_line for o in entry.point_at(folder))
    args = check_line.split("python -m repro.data ", 1)[1].split()
    return folder, [*args, f"paths.cache_dir={root / 'cache'}"]


def test_every_data_config_has_a_registry_entry():
    assert set(available("data")) == set(registry.DATASETS)  # a new configs/data/*.yaml needs an entry (and back)
    assert set(EXPECTED) == set(registry.DATASETS)


def test_every_table_smoke_fixture_is_registered():
    for path in sorted((CONFIG_DIR / "table").glob("*.yaml")):
        fixtures = smoke_fixtures(load_table(path.stem))
        assert fixtures and set(fixtures) <= set(registry.DATASETS), path.name


@pytest.mark.parametrize("name", NAMES)
def test_entry_matches_its_data_config(name, tmp_path):
    from repro.config import compose_train

    entry = registry.get(name)
    cfg = compose_train([f"data={name}"], data_dir=tmp_path)
    reader = OmegaConf.to_container(cfg.data.reader, resolve=True)
    assert reader["_target_"] == f"{entry.reader.__module__}.{entry.reader.__qualname__}"
    assert {k: reader[k] for k in entry.options} == dict(entry.options)
    folder = reader.get(entry.reader.path_key.rsplit(".", 1)[1])
    assert folder == (str(tmp_path / entry.folder) if entry.folder else None)
    assert entry.data_format and entry.reader.synthetic_mark


@pytest.mark.parametrize("name", NAMES)
def test_fixture_then_check(name, tmp_path, capsys):
    _, check_args = _fixture(capsys, name, tmp_path / "data")
    code, out, err = _run(capsys, *check_args)
    assert code == 0, err
    summary = json.loads(out)
    sizes, shapes = EXPECTED[name]
    assert summary["data"] == name and summary["synthetic"] is True
    assert {s: v["samples"] for s, v in summary["splits"].items()} == dict(zip(("train", "val", "test"), sizes))
    for split in summary["splits"].values():
        first = split["first_sample"]
        assert {m: first[m]["shape"] for m in shapes} == shapes
        assert all(first[m]["dtype"] == "float32" for m in shapes)
        labels = split["labels"]
        if labels["kind"] == "classes":
            assert sum(labels["counts"].values()) == split["samples"]
        elif labels["kind"] == "classes per column":  # IEMOCAP: present/absent per emotion
            assert [sum(c.values()) for c in labels["counts"]] == [split["samples"]] * 4
        elif labels["kind"] == "multi-hot":  # MM-IMDB: every movie has at least one genre (23); MESM: 6 emotions
            assert len(labels["positives"]) == (6 if name.endswith(("_raw", "_hcf")) else 23)
            assert sum(labels["positives"]) >= split["samples"]
        else:
            assert sum(labels["counts"]) == split["samples"] * labels["columns"]
    if name == "synthetic_folds":
        assert summary["folds"]["count"] == 3 and summary["folds"]["sizes"][0] == {"train": 48, "val": 24, "test": 24}
    elif name.startswith("ravdess"):  # MSAF's 6 folds by actor
        assert summary["folds"]["count"] == 6 and summary["folds"]["sizes"][5] == {"train": 32, "val": 8, "test": 8}
    else:
        assert summary["folds"] is None


@pytest.mark.parametrize("name", NAMES)
def test_missing_folder_exits_1_naming_it(name, tmp_path, capsys):
    entry = registry.get(name)
    missing = entry.fixture_folder(tmp_path / "nowhere")
    code, out, err = _run(capsys, "check", f"data={name}", *entry.point_at(missing), *entry.train_overrides,
                          f"paths.cache_dir={tmp_path / 'cache'}")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and str(missing) in err, err


@pytest.mark.parametrize("name", NAMES)
def test_corrupted_folder_exits_1_naming_it(name, tmp_path, capsys):
    folder, check_args = _fixture(capsys, name, tmp_path / "data")
    for path in folder.rglob("*"):  # every file cut to half its size, as an interrupted copy leaves them
        if path.is_file() and path.name != "SYNTHETIC.txt":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, out, err = _run(capsys, *check_args)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and str(folder) in err, err


def test_usage_errors_exit_2(tmp_path, capsys):
    code, _, err = _run(capsys, "check", "data=nosuchdata")
    assert code == 2 and "no dataset 'nosuchdata'" in err and "mosi_unaligned" in err and "ravdess_audio" in err
    real = tmp_path / "avmnist"
    real.mkdir()
    (real / "train_labels.npy").write_bytes(b"real data")
    code, _, err = _run(capsys, "fixture", "data=avmnist", f"out={real}")
    assert code == 2 and "no SYNTHETIC.txt" in err
    assert (real / "train_labels.npy").read_bytes() == b"real data" and len(list(real.iterdir())) == 1
    assert _run(capsys, "fixture", "data=avmnist")[0] == 2  # no out=


def test_label_histogram_kinds():
    assert label_histogram(np.array([0, 2, 2, 1, 2])) == {"kind": "classes", "counts": {"0": 1, "1": 1, "2": 3}}
    per = label_histogram(np.array([[0, 1], [1, 1], [0, 1]]))
    assert per == {"kind": "classes per column", "counts": [{"0": 2, "1": 1}, {"1": 3}]}
    hot = label_histogram(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=np.float32))
    assert hot == {"kind": "multi-hot", "positives": [1, 0, 2]}
    values = label_histogram(np.linspace(-3, 3, 20, dtype=np.float32).reshape(20, 1))
    assert values["columns"] == 1 and values["counts"] == [2] * 10 and values["edges"][0] == -3.0


def _python_m(*argv: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(CONFIG_DIR.parent / "src"), "OMP_WAIT_POLICY": "PASSIVE", "PATH": ""}
    return subprocess.run([sys.executable, "-m", "repro.data", *argv], capture_output=True, text=True, env=env,
                          timeout=300)


def test_python_m_check_of_a_bad_folder_is_one_line_and_exit_1(tmp_path):
    """The real `python -m repro.data` entry point: bad data gives one line on stderr (no traceback), exit code 1."""
    folder = write_folds(tmp_path / "synthetic_folds")
    (folder / "label.npy").write_bytes(b"not an array")
    bad = _python_m("check", "data=synthetic_folds", f"paths.data_dir={tmp_path}")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and str(folder / "label.npy") in bad.stderr


@pytest.mark.slow
def test_python_m_fixture_then_check(tmp_path):
    made = _python_m("fixture", "data=synthetic_folds", f"out={tmp_path / 'synthetic_folds'}")
    assert made.returncode == 0, made.stderr
    assert f"paths.data_dir={tmp_path}" in made.stdout and (tmp_path / "synthetic_folds" / "SYNTHETIC.txt").is_file()
    checked = _python_m("check", "data=synthetic_folds", f"paths.data_dir={tmp_path}")
    assert checked.returncode == 0, checked.stderr
    summary = json.loads(checked.stdout)
    assert summary["synthetic"] is True and summary["splits"]["test"]["samples"] == 24
