"""CMU-MOSI / CMU-MOSEI / IEMOCAP pickle readers (MulT §4.1 and MMSA layouts) against their SYNTHETIC
fixtures: shapes, dtypes, masks (only the run of all-zero steps at the padded end is padding; interior zero
frames stay real, and so the last-step readouts), labels, ids, the audio -inf quirk, and every bad-input error
(one line, names the file)."""

from __future__ import annotations

import logging
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from repro.data import cmu
from repro.data.base import DataError
from repro.data.cmu import (
    MMSAPickleReader,
    MulTPickleReader,
    length_mask,
    mult_filename,
    nonzero_mask,
)
from repro.data.fixtures_cmu import FEATURE_DIMS, MULT_NEGINF_PER_SPLIT, write_mmsa_pickle, write_mult_pickle
from repro.models.sequence.mult import MulT
from repro.models.sequence.recurrent import MaskedLSTM

SIZES = (12, 4, 4)


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def rewrite(path, edit) -> None:
    with open(path, "rb") as f:
        data = pickle.load(f)
    edit(data)
    with open(path, "wb") as f:
        pickle.dump(data, f)


@pytest.fixture()
def mosi(tmp_path):
    return write_mult_pickle(root=tmp_path, dataset="mosi")


@pytest.fixture()
def mmsa(tmp_path):
    return write_mmsa_pickle(tmp_path / "unaligned_50.pkl", aligned=False)


# -- MulT ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["mosi", "mosei", "iemocap"])
@pytest.mark.parametrize("aligned", [True, False])
def test_mult_reader_shapes_labels_masks(tmp_path, dataset, aligned):
    path = write_mult_pickle(root=tmp_path, dataset=dataset, aligned=aligned, T=20)
    assert path.name == mult_filename(dataset, aligned)
    reader = MulTPickleReader(tmp_path, dataset=dataset, aligned=aligned)
    splits = reader.load()
    assert list(splits) == ["train", "val", "test"]
    assert [len(splits[s]) for s in splits] == list(SIZES)
    assert reader.synthetic
    with open(path, "rb") as f:
        raw = pickle.load(f)
    dim_a, dim_v = FEATURE_DIMS[dataset]
    steps = {"text": 20, "audio": 20, "vision": 20} if aligned else {"text": 20, "audio": 40, "vision": 60}
    dims = {"text": 300, "audio": dim_a, "vision": dim_v}
    sample = splits["val"][1]
    for m in ("text", "audio", "vision"):
        assert sample[m].shape == (steps[m], dims[m]) and sample[m].dtype == torch.float32
        mask = sample[f"{m}_mask"]
        assert mask.dtype == torch.bool and mask.shape == (steps[m],)
        # left zero-padding: the mask is False then True, True from the file's first non-zero row on
        expected = np.arange(steps[m]) >= np.flatnonzero((raw["valid"][m][1] != 0).any(-1))[0]
        assert np.array_equal(mask.numpy(), expected)
        assert not mask[0] or mask.all()
        assert mask[-1]
        assert torch.all(sample[m][~mask] == 0)
    assert sample["id"] == "syntheticvalid0001_1"
    if dataset == "iemocap":
        assert sample["label"].dtype == torch.int64 and sample["label"].shape == (4,)
        assert np.array_equal(sample["label"].numpy(), raw["valid"]["labels"][1].argmax(-1))
    else:
        assert sample["label"].dtype == torch.float32 and sample["label"].shape == (1,)
        assert sample["label"].item() == pytest.approx(float(raw["valid"]["labels"][1, 0, 0]))
        assert torch.all(sample["label"].abs() <= 3)
    batch = next(iter(DataLoader(splits["train"], batch_size=5)))
    assert batch["audio"].shape == (5, steps["audio"], dim_a) and batch["audio_mask"].shape == (5, steps["audio"])
    assert len(batch["id"]) == 5


def test_mult_audio_neginf_set_to_zero_and_counted(mosi, caplog):
    reader = MulTPickleReader(mosi.parent, dataset="mosi")
    with caplog.at_level(logging.WARNING, logger="repro.data.cmu"):
        splits = reader.load()
    assert reader.audio_neginf == {s: MULT_NEGINF_PER_SPLIT for s in ("train", "val", "test")}
    assert "-inf" in caplog.text and mosi.name in caplog.text
    for ds in splits.values():
        audio = np.stack([ds[i]["audio"].numpy() for i in range(len(ds))])
        assert np.isfinite(audio).all()
    # the mask is computed before the replacement: a step whose only non-zero value was -inf stays real
    def only_neginf(data):
        data["train"]["audio"][0, -1, :] = 0.0
        data["train"]["audio"][0, -1, 0] = -np.inf

    rewrite(mosi, only_neginf)
    sample = MulTPickleReader(mosi.parent, dataset="mosi").load()["train"][0]
    assert sample["audio_mask"][-1] and torch.all(sample["audio"][-1] == 0)


def test_mult_subset_keeps_masks(mosi):
    ds = MulTPickleReader(mosi.parent).load()["train"]
    sub = ds.subset(np.array([3, 5]))
    assert len(sub) == 2 and sub[0]["id"] == ds[3]["id"]
    assert torch.equal(sub[1]["vision_mask"], ds[5]["vision_mask"])


def test_mult_ids_bytes_rows_and_missing(mosi):
    def edit(data):
        data["train"]["id"] = np.array([[b"vid", str(i).encode(), b"7"] for i in range(12)])
        del data["valid"]["id"]

    rewrite(mosi, edit)
    splits = MulTPickleReader(mosi.parent).load()
    assert splits["train"][2]["id"] == "vid_2_7"
    assert splits["val"][3]["id"] == "val_3"


@pytest.mark.parametrize("dataset", ["mosi", "iemocap"])
def test_mult_fixture_labels_are_learnable(tmp_path, dataset):
    write_mult_pickle(root=tmp_path, dataset=dataset, n=(40, 4, 4), seed=1)
    ds = MulTPickleReader(tmp_path, dataset=dataset).load()["train"]
    # mean of the real vision steps, linear least squares -> the labels are recovered on the training set
    x = np.stack([ds[i]["vision"][ds[i]["vision_mask"]].mean(0).numpy() for i in range(len(ds))])
    y = np.stack([ds[i]["label"].numpy() for i in range(len(ds))]).astype(np.float64)
    x1 = np.c_[x, np.ones(len(x))]
    pred = x1 @ np.linalg.lstsq(x1, y, rcond=None)[0]
    if dataset == "iemocap":
        assert ((pred > 0.5) == (y > 0.5)).mean() > 0.9
    else:
        assert np.corrcoef(pred[:, 0], y[:, 0])[0, 1] > 0.9


def test_mask_helpers(monkeypatch):
    monkeypatch.setattr(cmu, "SCAN_ROWS", 2)  # the scans run in chunks; the run rule must cross them
    x = np.zeros((3, 6, 3), dtype=np.float32)
    x[0, 2:, 1] = 1.0
    x[0, 3] = 0.0  # an all-zero step inside the sequence: real
    x[0, 5] = 0.0  # an all-zero last step after real ones: real (only the LEADING run is padding)
    x[1, 4, 0] = -np.inf  # a step whose only non-zero value is -inf: real
    # x[2] is all zeros: all False
    F, T = False, True
    left = [[F, F, T, T, T, T], [F, F, F, F, T, T], [F] * 6]
    assert nonzero_mask(x).tolist() == left
    assert nonzero_mask(x, padding="left").tolist() == left
    assert nonzero_mask(x[0]).tolist() == left[0]  # one (T, D) sample, split into 3 chunks of steps
    # the same rows mirrored are right-padded (MMSA): the TRAILING run is the padding
    assert nonzero_mask(x[:, ::-1], padding="right").tolist() == [row[::-1] for row in left]
    assert nonzero_mask(x[0, ::-1], padding="right").tolist() == left[0][::-1]
    with pytest.raises(ValueError, match="unknown padding side 'middle'"):
        nonzero_mask(x, padding="middle")
    assert length_mask(np.array([0, 3]), 4).tolist() == [[False] * 4, [True, True, True, False]]


def test_mult_interior_zero_frames_are_real_and_the_last_step_readout_stays(mosi):
    """A FACET frame with no face / a silent COVAREP frame inside a segment is all zeros but real: MulT's code
    attends over it. Only the leading run is padding, so the "last real step" is the segment's last step."""
    def edit(data):
        v = data["train"]["vision"]
        v[0, :3] = 0.0  # at least 3 padding steps
        first = int(np.flatnonzero((v[0] != 0).any(-1))[0])
        assert 3 <= first < v.shape[1] - 3
        v[0, first + 1] = 0.0  # interior
        v[0, -1] = 0.0  # the last step
        data["train"]["audio"][2, -2] = 0.0
        data["train"]["vision"][1] = 0.0  # nothing at all: all False, as before

    rewrite(mosi, edit)
    with open(mosi, "rb") as f:
        raw = pickle.load(f)["train"]
    ds = MulTPickleReader(mosi.parent, dataset="mosi").load()["train"]
    v = raw["vision"][0]
    first = int(np.flatnonzero((v != 0).any(-1))[0])
    mask = ds[0]["vision_mask"]
    steps = len(mask)
    assert mask.tolist() == [False] * first + [True] * (steps - first)
    assert not (v[first + 1] != 0).any() and not (v[-1] != 0).any()  # those real steps are all zeros
    assert ds[2]["audio_mask"][-2] and ds[2]["audio_mask"][-1]
    assert not ds[1]["vision_mask"].any()
    # the readouts that use the mask end at the last step. MulT: the last True step of the mask.
    h = torch.arange(steps, dtype=torch.float32).reshape(1, steps, 1)
    assert MulT.read(SimpleNamespace(readout="last"), h, mask[None]).item() == steps - 1
    # MaskedLSTM (EF/LF-LSTM, TFN, LMF, MSAF): over the real steps = a plain LSTM over the steps from `first` on,
    # the all-zero frames included.
    torch.manual_seed(0)
    lstm = MaskedLSTM(v.shape[1], 4)
    x = ds[0]["vision"][None]
    outputs, last = lstm(x, mask[None])
    _, plain = lstm(x[:, first:], None)
    assert torch.allclose(last, plain, atol=1e-6) and torch.allclose(outputs[0, -1], last[0], atol=1e-6)
    _, dropped = lstm(x[:, first:][:, [t for t in range(steps - first) if t not in (1, steps - first - 1)]], None)
    assert not torch.allclose(last, dropped, atol=1e-4)  # the old rule (zero frames = padding) read something else


# -- MMSA ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("text", ["text", "text_bert"])
def test_mmsa_reader(tmp_path, aligned, text, caplog):
    name = "aligned_50.pkl" if aligned else "unaligned_50.pkl"
    path = write_mmsa_pickle(tmp_path / name, dataset="mosei", aligned=aligned)
    reader = MMSAPickleReader(tmp_path, name, text=text)
    with caplog.at_level(logging.WARNING, logger="repro.data.cmu"):
        splits = reader.load()
    assert [len(splits[s]) for s in ("train", "val", "test")] == list(SIZES)
    assert reader.audio_neginf == {"train": 1, "val": 1, "test": 1} and "-inf" in caplog.text
    assert reader.synthetic and len(reader.raw_text["test"]) == 4
    with open(path, "rb") as f:
        raw = pickle.load(f)["test"]
    sample = splits["test"][2]
    assert sample["text"].shape == ((50, 768) if text == "text" else (3, 50))
    steps = {"audio": 50, "vision": 50} if aligned else {"audio": 100, "vision": 150}
    assert sample["audio"].shape == (steps["audio"], 74) and sample["vision"].shape == (steps["vision"], 35)
    assert all(sample[m].dtype == torch.float32 for m in ("text", "audio", "vision"))
    assert np.array_equal(sample["text_mask"].numpy(), raw["text_bert"][2, 1] > 0)
    for m in ("audio", "vision"):
        mask = sample[f"{m}_mask"]
        n_real = raw[f"{m}_lengths"][2] if not aligned else int(raw["text_bert"][2, 1].sum())
        assert mask.dtype == torch.bool and int(mask.sum()) == n_real and mask[:n_real].all()
    assert sample["label"].dtype == torch.float32 and sample["label"].shape == (1,)
    assert sample["label"].item() == pytest.approx(float(raw["regression_labels"][2]))
    assert sample["id"] == "synthetictest0002$_$2"
    assert torch.isfinite(splits["train"][0]["audio"]).all()


def test_mmsa_aligned_masks_keep_interior_zero_steps(tmp_path):
    """MMSA's aligned files have no lengths and put the real steps first: only the TRAILING run of all-zero steps
    is padding; an all-zero step before the last non-zero one is real."""
    path = write_mmsa_pickle(tmp_path / "aligned_50.pkl", dataset="mosei", aligned=True)
    with open(path, "rb") as f:
        n_real = int(pickle.load(f)["train"]["text_bert"][3, 1].sum())
    assert n_real >= 4
    rewrite(path, lambda d: d["train"]["vision"].__setitem__((3, 1), 0.0))
    sample = MMSAPickleReader(tmp_path, "aligned_50.pkl").load()["train"][3]
    assert torch.all(sample["vision"][1] == 0)
    assert sample["vision_mask"].tolist() == [True] * n_real + [False] * (50 - n_real)


def test_mmsa_text_mask_without_text_bert(mmsa):
    def edit(data):
        for s in ("train", "valid", "test"):
            del data[s]["text_bert"]

    rewrite(mmsa, edit)
    sample = MMSAPickleReader(mmsa.parent, mmsa.name).load()["train"][0]
    real = sample["text_mask"]
    assert real.any() and torch.all(sample["text"][~real] == 0) and torch.all(sample["text"][real].abs().sum(-1) > 0)


# -- errors --------------------------------------------------------------------------------------------------
def test_error_missing_file(tmp_path):
    with pytest.raises(DataError, match="missing file") as err:
        MulTPickleReader(tmp_path, dataset="mosei", aligned=False).load()
    assert "mosei_senti_data_noalign.pkl" in one_line(err) and "Multimodal-Transformer" in one_line(err)
    with pytest.raises(DataError, match="aligned_50.pkl") as err:
        MMSAPickleReader(tmp_path).load()
    assert "MMSA" in one_line(err)


def test_error_not_a_pickle_and_wrong_top_level(tmp_path):
    path = tmp_path / mult_filename("mosi")
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="cannot read .* as a pickle") as err:
        MulTPickleReader(tmp_path).load()
    assert str(path) in one_line(err)
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="holds a list, expected MulT") as err:
        MulTPickleReader(tmp_path).load()
    assert str(path) in one_line(err)


def test_error_missing_split(mosi):
    rewrite(mosi, lambda d: d.pop("valid"))
    with pytest.raises(DataError, match=r"no split 'valid' \(present: \['SYNTHETIC', 'test', 'train'\]\)") as err:
        MulTPickleReader(mosi.parent).load()
    assert str(mosi) in one_line(err)


def test_error_split_not_a_dict(mosi):
    rewrite(mosi, lambda d: d.update(test=[1, 2]))
    with pytest.raises(DataError, match=r"\['test'\] is a list, expected a dict"):
        MulTPickleReader(mosi.parent).load()


@pytest.mark.parametrize("key", ["vision", "labels"])
def test_error_missing_key_mult(mosi, key):
    rewrite(mosi, lambda d: d["train"].pop(key))
    with pytest.raises(DataError, match=rf"\['train'\] has no key '{key}' \(present: \[") as err:
        MulTPickleReader(mosi.parent).load()
    assert "'audio'" in one_line(err) and str(mosi) in one_line(err)


@pytest.mark.parametrize("key", ["regression_labels", "audio", "id"])
def test_error_missing_key_mmsa(mmsa, key):
    rewrite(mmsa, lambda d: d["valid"].pop(key))
    with pytest.raises(DataError, match=rf"\['valid'\] has no key '{key}'") as err:
        MMSAPickleReader(mmsa.parent, mmsa.name).load()
    assert "'vision'" in one_line(err)


def test_error_missing_text_bert(mmsa):
    rewrite(mmsa, lambda d: d["train"].pop("text_bert"))
    with pytest.raises(DataError, match="no key 'text_bert'"):
        MMSAPickleReader(mmsa.parent, mmsa.name, text="text_bert").load()


def test_error_sample_count_mismatch(mosi, mmsa):
    rewrite(mosi, lambda d: d["test"].update(vision=d["test"]["vision"][:3]))
    with pytest.raises(DataError, match=r"unequal sample counts \{.*'vision': 3.*'labels': 4") as err:
        MulTPickleReader(mosi.parent).load()
    assert str(mosi) in one_line(err)
    rewrite(mmsa, lambda d: d["train"].update(regression_labels=d["train"]["regression_labels"][:-1]))
    with pytest.raises(DataError, match="unequal sample counts"):
        MMSAPickleReader(mmsa.parent, mmsa.name).load()


def test_error_bad_lengths(mmsa):
    rewrite(mmsa, lambda d: d["train"].update(audio_lengths=[500] * 12))
    want = r"audio_lengths'\] has lengths in \[500, 500\], expected integers in \[0, 100\]"
    with pytest.raises(DataError, match=want):
        MMSAPickleReader(mmsa.parent, mmsa.name).load()


def test_error_wrong_rank_and_aligned_mismatch(tmp_path, mosi):
    rewrite(mosi, lambda d: d["train"].update(text=d["train"]["text"][:, 0, :]))
    with pytest.raises(DataError, match=r"\['text'\] has shape \(12, 300\), expected \(N, T, D\)"):
        MulTPickleReader(mosi.parent).load()
    write_mult_pickle(tmp_path / mult_filename("mosi"), aligned=False)  # unaligned data under the aligned name
    with pytest.raises(DataError, match="aligned=True expects one length"):
        MulTPickleReader(tmp_path).load()


def test_error_nan_features_or_zero_policy(mosi, caplog):
    def edit(data):
        data["valid"]["vision"][0, -1, :2] = np.nan
        data["valid"]["audio"][1, -1, 0] = np.inf  # +inf in audio is not the -inf quirk

    rewrite(mosi, edit)
    with pytest.raises(DataError, match=r"\['audio'\] has 1 non-finite values") as err:
        MulTPickleReader(mosi.parent).load()
    assert "nonfinite=zero" in one_line(err) and str(mosi) in one_line(err)
    reader = MulTPickleReader(mosi.parent, nonfinite="zero")
    with caplog.at_level(logging.WARNING, logger="repro.data.cmu"):
        val = reader.load()["val"]
    assert reader.nonfinite["val"] == {"text": 0, "audio": 1, "vision": 2}
    assert "non-finite" in caplog.text
    assert torch.isfinite(val[0]["vision"]).all() and torch.isfinite(val[1]["audio"]).all()
    with pytest.raises(DataError, match="unknown nonfinite policy"):
        MulTPickleReader(mosi.parent, nonfinite="ignore")


def test_error_labels_out_of_range(mosi, mmsa):
    rewrite(mosi, lambda d: d["train"]["labels"].__setitem__((0, 0, 0), 4.5))
    with pytest.raises(DataError, match=r"\['labels'\] has 1 labels outside \[-3.0, 3.0\]") as err:
        MulTPickleReader(mosi.parent).load()
    assert str(mosi) in one_line(err)
    assert len(MulTPickleReader(mosi.parent, label_range=(-5, 5)).load()["train"]) == 12
    rewrite(mmsa, lambda d: d["test"]["regression_labels"].__setitem__(1, np.nan))
    with pytest.raises(DataError, match=r"regression_labels'\] has 1 labels outside"):
        MMSAPickleReader(mmsa.parent, mmsa.name).load()


def test_error_iemocap_labels(tmp_path):
    path = write_mult_pickle(root=tmp_path, dataset="iemocap")
    rewrite(path, lambda d: d["train"]["labels"].__setitem__((0, 2), [1.0, 1.0]))
    with pytest.raises(DataError, match="1 emotion pairs that are not one-hot") as err:
        MulTPickleReader(tmp_path, dataset="iemocap").load()
    assert str(path) in one_line(err)
    def edit(data):
        data["train"]["labels"][0, 2] = [1.0, 0.0]
        data["valid"]["labels"] = data["valid"]["labels"][:, :, :1]

    rewrite(path, edit)
    with pytest.raises(DataError, match=r"expected numeric \(N, 4, 2\)"):
        MulTPickleReader(tmp_path, dataset="iemocap").load()
    # sentiment labels read as IEMOCAP and vice versa are rejected too
    with pytest.raises(DataError, match="expected one sentiment score per segment"):
        MulTPickleReader(tmp_path, filename=path.name, dataset="mosi").load()


def test_error_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="unknown MulT dataset 'sims'"):
        MulTPickleReader(tmp_path, dataset="sims")
    with pytest.raises(DataError, match="unknown MMSA text key"):
        MMSAPickleReader(tmp_path, text="glove")
    with pytest.raises(DataError, match="fixed splits"):
        MulTPickleReader(tmp_path).load(fold=0)
