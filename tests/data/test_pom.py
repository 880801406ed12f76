"""POM speaker-trait reader (`repro.data.pom`, RMFN §4.1 / Table 3) on a SYNTHETIC fixture prepared by
`repro.data.csd_word_alignment.prepare`: shapes, trait selection, RMFN's class counts derived from the data, and the
bad inputs (labels out of range, missing traits, mismatched counts), each one line."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from repro.data.base import DataError
from repro.data.csd import read_csd
from repro.data.csd_word_alignment import DATASETS, POM_LABEL_COLUMNS, prepare
from repro.data.fixtures_csd import write_cmu_fixture
from repro.data.pom import TABLE3_TRAITS, TRAITS, POMReader, trait_classes


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.fixture(scope="module")
def pom(tmp_path_factory):
    root = tmp_path_factory.mktemp("pom")
    fx = write_cmu_fixture(root / "fx", "pom")
    prepare("pom", fx.csd_dir, root / "out", fx.folds_path, max_words=20, progress=False)
    return fx, root / "out"


def rewritten(src, dst, edit):
    with open(src / "pom_data.pkl", "rb") as f:
        data = pickle.load(f)
    edit(data)
    dst.mkdir(parents=True, exist_ok=True)
    with open(dst / "pom_data.pkl", "wb") as f:
        pickle.dump(data, f)
    return dst


def test_reader_shapes_and_labels(pom):
    fx, out = pom
    reader = POMReader(out)
    splits = reader.load()
    assert {s: len(d) for s, d in splits.items()} == {"train": 3, "val": 1, "test": 1}
    assert reader.synthetic
    sample = splits["train"][2]
    assert sample["label"].dtype == torch.float32 and sample["label"].shape == (len(TABLE3_TRAITS),)
    assert sample["text"].shape == (20, 300) and sample["audio_mask"].dtype == torch.bool
    vid = fx.folds["train"][2]
    assert sample["id"] == f"{vid}_0"
    with read_csd(fx.csd_dir / f"{DATASETS['pom'].files['labels']}.csd") as labels:
        row = labels.features(vid)[0]
    expected = [row[POM_LABEL_COLUMNS.index(TRAITS[t].column)] for t in TABLE3_TRAITS]
    assert np.allclose(sample["label"].numpy(), expected)
    # one segment per video: the text mask counts the video's words (capped at 20)
    assert int(sample["text_mask"].sum()) == min(20, len(fx.words[vid][0]))


def test_masks_keep_interior_zero_steps(pom, tmp_path):
    """prepare_cmu.py left-pads: only the leading run of all-zero steps is padding; an all-zero step after the
    first real one (a FACET frame with no face) stays real, and an all-zero sequence has no real step."""
    _, out = pom
    original = POMReader(out).load()["train"]
    mask = original[0]["vision_mask"].numpy()
    first = int(np.argmax(mask))
    assert mask[first:].all() and not mask[:first].any() and len(mask) - first >= 3

    def holes(data):
        data["train"]["vision"][0, first + 1] = 0.0
        data["train"]["vision"][0, -1] = 0.0
        data["train"]["audio"][1] = 0.0

    ds = POMReader(rewritten(out, tmp_path, holes)).load()["train"]
    assert torch.all(ds[0]["vision"][first + 1] == 0) and torch.all(ds[0]["vision"][-1] == 0)
    assert torch.equal(ds[0]["vision_mask"], original[0]["vision_mask"])
    assert not ds[1]["audio_mask"].any()


def test_trait_subset_order(pom):
    _, out = pom
    splits = POMReader(out, traits=["persuasive", "sentiment"]).load()
    assert splits["val"][0]["label"].shape == (2,)
    with open(out / "pom_data.pkl", "rb") as f:
        raw = pickle.load(f)["valid"]["labels"][0, 0]
    assert np.allclose(splits["val"][0]["label"].numpy(), [raw[17], raw[0]])


def test_trait_classes_reproduce_table3(pom):
    _, out = pom
    counts = POMReader(out).trait_classes()
    assert counts == {t: TRAITS[t].table3_classes for t in TABLE3_TRAITS}
    assert [counts[t] for t in ("confident", "reserved", "humorous")] == [7, 5, 6]


def test_trait_classes_rule():
    y = np.array([[1.2, 1.0], [6.6, 4.4], [3.0, 2.0]])
    assert trait_classes(y, ["confident", "reserved"]) == {"confident": 7, "reserved": 4}  # 1..7 and 1..4
    assert trait_classes([y[:1], y[1:]], ["confident", "reserved"]) == {"confident": 7, "reserved": 4}
    with pytest.raises(DataError, match=r"expected \(N, 3\)"):
        trait_classes(y, ["a", "b", "c"])


def test_label_outside_range(pom, tmp_path):
    _, out = pom

    def edit(data):
        data["test"]["labels"][0, 0, POM_LABEL_COLUMNS.index("reserved")] = 6.5  # a 1..5 item

    with pytest.raises(DataError) as err:
        POMReader(rewritten(out, tmp_path, edit)).load()
    msg = one_line(err)
    assert "'reserved'" in msg and "[1, 5]" in msg and "['test']" in msg


def test_missing_trait_and_wrong_column_count(pom, tmp_path):
    _, out = pom

    def drop_names(data):
        data["label_names"] = [n if n != "confident" else "other" for n in data["label_names"]]

    with pytest.raises(DataError) as err:
        POMReader(rewritten(out, tmp_path / "a", drop_names)).load()
    assert "no label column(s) ['confident']" in one_line(err)
    assert POMReader(tmp_path / "a", traits=["vivid"]).load()["train"][0]["label"].shape == (1,)

    def cut_column(data):
        for s in ("train", "valid", "test"):
            data[s]["labels"] = data[s]["labels"][..., :17]

    with pytest.raises(DataError) as err:
        POMReader(rewritten(out, tmp_path / "b", cut_column)).load()
    assert "17 label columns but 18 names" in one_line(err)
    with pytest.raises(DataError, match="unknown POM trait"):
        POMReader(out, traits=["charisma"])


def test_mismatched_counts(pom, tmp_path):
    _, out = pom

    def drop_row(data):
        data["train"]["labels"] = data["train"]["labels"][:-1]

    with pytest.raises(DataError) as err:
        POMReader(rewritten(out, tmp_path, drop_row)).load()
    assert "unequal sample counts" in one_line(err)
