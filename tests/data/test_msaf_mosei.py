"""MSAF's CMU-MOSEI .npy layout (IMPLEMENTATION-NOTES §1.3) against its SYNTHETIC fixture: shapes, labels,
masks (left-padded visual/audio, the right-padded BERT QUIRK), per-item ±inf replacement and its counts, and
every bad-input error (one line, names the file and the script that makes it)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from repro.data.base import DataError
from repro.data.fixtures_cmu import MSAF_MOSEI_INF, write_msaf_mosei
from repro.data.msaf_mosei import MSAFMoseiReader, count_inf_nan

T = 12
SIZES = (12, 4, 4)


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.fixture()
def root(tmp_path):
    return write_msaf_mosei(tmp_path / "mosei", T=T)


def test_reader_shapes_labels_masks(root):
    reader = MSAFMoseiReader(root)
    splits = reader.load()
    assert list(splits) == ["train", "val", "test"] and [len(d) for d in splits.values()] == list(SIZES)
    assert reader.synthetic
    ds = splits["val"]
    assert isinstance(ds.arrays["text"], np.memmap)  # memory-mapped, not materialised
    raw = {m: np.load(root / "val" / f"{f}.npy") for m, f in (("vision", "visual50"), ("audio", "audio50"),
                                                               ("text", "bert50"), ("label", "label50"))}
    assert raw["label"].shape == (4, 1, 7)
    for i in range(len(ds)):
        sample = ds[i]
        dims = {"vision": 35, "audio": 74, "text": 768}
        for m, d in dims.items():
            assert sample[m].shape == (T, d) and sample[m].dtype == torch.float32
            assert sample[f"{m}_mask"].shape == (T,) and sample[f"{m}_mask"].dtype == torch.bool
        for m in ("vision", "audio"):  # left zero-padding: False...False True...True, from the first non-zero row
            mask = sample[f"{m}_mask"].numpy()
            assert np.array_equal(mask, np.arange(T) >= np.argmax((raw[m][i] != 0).any(-1)))
            assert mask[-1] and (not mask[0] or mask.all())
        assert sample["text_mask"].all()  # no bert50_mask.npy: the right padding is unknown
        assert sample["label"].shape == (1,) and sample["label"].dtype == torch.float32
        assert sample["label"].item() == pytest.approx(float(raw["label"][i, 0, 0]))
        assert -3 <= sample["label"].item() <= 3
        assert sample["id"] == f"val_{i}"
    assert reader.text_mask_source == {"train": "all-true", "val": "all-true", "test": "all-true"}
    batch = next(iter(DataLoader(splits["train"], batch_size=5)))
    assert batch["text"].shape == (5, T, 768) and batch["audio_mask"].shape == (5, T)


def test_inf_zeroed_per_item_counted_and_logged_once(root, caplog):
    reader = MSAFMoseiReader(root)
    with caplog.at_level(logging.WARNING, logger="repro.data.msaf_mosei"):
        splits = reader.load()
    expected = {m: {"inf": n, "nan": 0} for m, n in MSAF_MOSEI_INF.items()}
    assert reader.nonfinite == {s: expected for s in ("train", "val", "test")}
    records = [r for r in caplog.records if r.name == "repro.data.msaf_mosei"]
    assert len(records) == 1 and "12 ±inf and 0 NaN" in records[0].getMessage()
    raw_audio = np.load(root / "train" / "audio50.npy")
    assert np.isinf(raw_audio).sum() == MSAF_MOSEI_INF["audio"]  # the file is untouched
    for ds in splits.values():
        for i in range(len(ds)):
            assert all(torch.isfinite(ds[i][m]).all() for m in ("text", "audio", "vision"))
    i, t, f = np.argwhere(np.isinf(raw_audio))[0]
    sample = splits["train"][int(i)]
    assert sample["audio"][t, f] == 0 and sample["audio_mask"][t]  # an inf step is a real step
    other = np.ones(74, dtype=bool)
    other[f] = False
    assert torch.equal(sample["audio"][t, other], torch.from_numpy(raw_audio[i, t, other]))
    sub = splits["train"].subset(np.array([int(i)]))
    assert sub[0]["audio"][t, f] == 0


def test_interior_zero_frames_are_real_steps(root):
    """The SDK left-pads visual50/audio50: only the leading run of all-zero steps is padding. A FACET frame with no
    face / a silent COVAREP frame after the first real step stays real, so the last step is the segment's end."""
    vision, audio = np.load(root / "val" / "visual50.npy"), np.load(root / "val" / "audio50.npy")
    vision[0, :2] = 0.0
    first = int(np.argmax((vision[0] != 0).any(-1)))
    assert 2 <= first < T - 2
    vision[0, first + 1] = 0.0
    vision[0, -1] = 0.0
    audio[1] = 0.0
    np.save(root / "val" / "visual50.npy", vision)
    np.save(root / "val" / "audio50.npy", audio)
    ds = MSAFMoseiReader(root).load()["val"]
    assert ds[0]["vision_mask"].tolist() == [False] * first + [True] * (T - first)
    assert torch.all(ds[0]["vision"][-1] == 0)
    assert not ds[1]["audio_mask"].any()  # nothing real at all


def test_nan_counted_and_error_policy(root):
    audio = np.load(root / "test" / "audio50.npy")
    audio[0, -1, :3] = np.nan
    np.save(root / "test" / "audio50.npy", audio)
    reader = MSAFMoseiReader(root)
    ds = reader.load()["test"]
    assert reader.nonfinite["test"]["audio"] == {"inf": MSAF_MOSEI_INF["audio"], "nan": 3}
    assert torch.all(ds[0]["audio"][-1, :3] == 0)
    with pytest.raises(DataError) as err:
        MSAFMoseiReader(root, nonfinite="error").load()
    msg = one_line(err)
    assert "train" in msg and "audio50.npy: 2 inf, 0 NaN" in msg and "nonfinite=zero" in msg
    assert count_inf_nan(audio) == (MSAF_MOSEI_INF["audio"], 3)


def test_bert_mask_file_is_used(root):
    mask = np.zeros((4, T), dtype=bool)
    mask[:, :5] = True
    mask[1, :9] = True
    np.save(root / "val" / "bert50_mask.npy", mask)
    reader = MSAFMoseiReader(root)
    ds = reader.load()["val"]
    assert reader.text_mask_source["val"] == "bert50_mask.npy" and reader.text_mask_source["train"] == "all-true"
    assert ds[1]["text_mask"].tolist() == [True] * 9 + [False] * (T - 9)
    np.save(root / "val" / "bert50_mask.npy", mask[:, :5])
    with pytest.raises(DataError, match=r"bert50_mask.npy has shape \(4, 5\), expected \(4, 12\).*extract_bert.py"):
        reader.load()


def _remove(root, name):
    (root / "val" / name).unlink()


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda r: __import__("shutil").rmtree(r / "test"), r"missing folder .*test: expected MSAF.*dataset_prep.py"),
        (lambda r: _remove(r, "bert50.npy"), r"missing file .*val/bert50.npy.*scripts/extract_bert.py"),
        (lambda r: _remove(r, "visual50.npy"), r"missing file .*val/visual50.npy.*dataset_prep.py"),
        (lambda r: np.save(r / "val" / "audio50.npy", np.zeros((4, T, 70), np.float32)),
         r"audio50.npy has shape \(4, 12, 70\), expected \(N, N, 74\)"),
        (lambda r: np.save(r / "val" / "label50.npy", np.zeros((4, 7), np.float32)),
         r"label50.npy has shape \(4, 7\), expected \(N, 1, 7\)"),
        (lambda r: np.save(r / "val" / "visual50.npy", np.zeros((3, T, 35), np.float32)),
         r"unequal sample counts .*'visual50.npy': 3.*'label50.npy': 4"),
        (lambda r: np.save(r / "val" / "label50.npy", np.full((4, 1, 7), 3.5, np.float32)),
         r"label50.npy has 4 labels outside \[-3.0, 3.0\]"),
        (lambda r: (r / "val" / "bert50.npy").write_text("not an array"), r"cannot read .*bert50.npy as a .npy"),
    ],
    ids=["no-split", "no-bert", "no-visual", "audio-dim", "label-shape", "counts", "label-range", "corrupt"],
)
def test_bad_input_one_line_errors(root, edit, pattern):
    edit(root)
    with pytest.raises(DataError, match=pattern) as err:
        MSAFMoseiReader(root).load()
    one_line(err)


def test_bad_arguments():
    with pytest.raises(DataError, match="nonfinite policy"):
        MSAFMoseiReader("x", nonfinite="drop")
    with pytest.raises(DataError, match="fixed splits"):
        MSAFMoseiReader("x").load(fold=0)
    with pytest.raises(ValueError, match="T must be"):
        write_msaf_mosei("x", T=60)
