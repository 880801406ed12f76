"""CMU SDK computational sequences (`repro.data.csd`) and word-level alignment into MulT pickles
(`repro.data.csd_word_alignment`, RMFN §4.2) on SYNTHETIC fixtures: the reader, every bad input (one line), the
overlap averaging against hand-computed values, left padding / truncation, and scripts/prepare_cmu.py end to
end (its pickle read by `MulTPickleReader`)."""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from repro.data.base import DataError
from repro.data.cmu import MulTPickleReader
from repro.data.csd import read_csd, read_std_folds
from repro.data.csd_word_alignment import DATASETS, left_pad, overlap_mean, prepare, segment_members
from repro.data.fixtures_csd import COVAREP_DIM, FACET_DIM, GLOVE_DIM, write_cmu_fixture, write_csd, write_std_folds

ROOT = Path(__file__).resolve().parents[2]
MOSI = DATASETS["mosi"].files


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.fixture(scope="module")
def mosi_fx(tmp_path_factory):
    return write_cmu_fixture(tmp_path_factory.mktemp("mosi"), "mosi")


@pytest.fixture(scope="module")
def mosi_out(mosi_fx, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    summary = prepare("mosi", mosi_fx.csd_dir, out, mosi_fx.folds_path, max_words=50, progress=False)
    with open(out / "mosi_data.pkl", "rb") as f:
        return out, summary, pickle.load(f)


def csd_path(fx, role: str) -> Path:
    return fx.csd_dir / f"{MOSI[role]}.csd"


# -- reader ------------------------------------------------------------------------------------------------
def test_read_csd_layout_and_metadata(mosi_fx):
    with read_csd(csd_path(mosi_fx, "covarep"), expected_name="CMU_MOSI_COVAREP") as seq:
        assert seq.name == "CMU_MOSI_COVAREP"
        assert seq.metadata["root name"] == "CMU_MOSI_COVAREP" and seq.metadata["dataset name"] == "SYNTHETIC"
        assert len(seq) == 6 and "synthmosi00" in seq and "nope" not in seq
        feats, ivs = seq.entry("synthmosi00")
        assert feats.shape[1] == COVAREP_DIM and ivs.shape == (len(feats), 2) and ivs.dtype == np.float64
        assert np.allclose(ivs[1], [0.01, 0.02])  # 100 Hz frames
    with read_csd(csd_path(mosi_fx, "labels")) as seq:
        assert seq.metadata["dimension names"] == ["sentiment"]
    with read_csd(csd_path(mosi_fx, "words")) as seq:
        tokens, _ = seq.entry("synthmosi00")
        assert tokens.dtype.kind == "S" and tokens[0, 0] == b"sp"


def test_read_csd_rejects_a_different_feature_name(mosi_fx):
    with pytest.raises(DataError) as err:
        read_csd(csd_path(mosi_fx, "facet"), expected_name="CMU_MOSI_COVAREP")
    msg = one_line(err)
    assert "'CMU_MOSI_Visual_Facet_42'" in msg and "'CMU_MOSI_COVAREP'" in msg and "--root-name" in msg


def test_read_csd_bad_files(tmp_path):
    with pytest.raises(DataError, match="missing file"):
        read_csd(tmp_path / "absent.csd")
    (tmp_path / "text.csd").write_text("not hdf5")
    with pytest.raises(DataError) as err:
        read_csd(tmp_path / "text.csd")
    assert "cannot open" in one_line(err) and "HDF5" in str(err.value)
    with h5py.File(tmp_path / "nodata.csd", "w") as f:
        f.create_group("X").create_group("metadata")
    with pytest.raises(DataError) as err:
        read_csd(tmp_path / "nodata.csd")
    assert "X/data" in one_line(err)
    with h5py.File(tmp_path / "empty.csd", "w"):
        pass
    with pytest.raises(DataError, match="no top-level group"):
        read_csd(tmp_path / "empty.csd")


def test_entry_bad_shapes_and_missing_dataset(tmp_path):
    path = write_csd(tmp_path / "x.csd", "X", {"a": (np.zeros((5, 3)), np.zeros((4, 2))),
                                                 "b": (np.zeros((4, 3)), np.zeros((4, 3)))})
    with h5py.File(path, "a") as f:
        f.create_group("X/data/c").create_dataset("features", data=np.zeros((2, 3)))
    with read_csd(path) as seq:
        with pytest.raises(DataError) as err:
            seq.entry("a")
        assert "5 feature rows but 4 intervals" in one_line(err)
        with pytest.raises(DataError, match=r"expected numeric \(n, 2\)"):
            seq.entry("b")
        with pytest.raises(DataError, match="no dataset 'intervals'"):
            seq.entry("c")
        with pytest.raises(DataError, match="no video 'zz'"):
            seq.entry("zz")


# -- folds ---------------------------------------------------------------------------------------------------
def test_std_folds_parsed_without_executing(tmp_path):
    path = write_std_folds(tmp_path / "f.py", {"train": ["a", "b"], "valid": ["c"], "test": ["d"]})
    path.write_text("raise SystemExit('executed!')\nimport os\n" + path.read_text())
    assert read_std_folds(path) == {"train": ["a", "b"], "valid": ["c"], "test": ["d"]}
    path.write_text("standard_train_fold=['a']\nstandard_test_fold=['b']\n")
    with pytest.raises(DataError) as err:
        read_std_folds(path)
    assert "standard_valid_fold" in one_line(err)
    write_std_folds(path, {"train": ["a"], "valid": ["a"], "test": ["b"]})
    with pytest.raises(DataError, match="both train and valid"):
        read_std_folds(path)


@pytest.mark.skipif(importlib.util.find_spec("mmsdk") is not None, reason="mmsdk installed: folds come from it")
def test_missing_folds_says_how_to_get_them(mosi_fx, tmp_path):
    with pytest.raises(DataError) as err:
        prepare("mosi", mosi_fx.csd_dir, tmp_path, None, progress=False)
    msg = one_line(err)
    assert "pip download --no-deps --no-binary :all: cmu-multimodal-sdk==0.0.6" in msg
    assert "mmsdk/mmdatasdk/dataset/standard_datasets/CMU_MOSI/cmu_mosi_std_folds.py" in msg
    assert not (tmp_path / "mosi_data.pkl").exists()


# -- alignment primitives ------------------------------------------------------------------------------------
def test_overlap_mean_hand_computed():
    frames = np.array([[0.0, 0.1], [0.1, 0.2], [0.2, 0.3], [0.3, 0.4]])
    feats = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    spans = np.array([[0.15, 0.32], [0.2, 0.3], [0.45, 0.5], [0.25, 0.25], [0.1, 0.1]])
    got = overlap_mean(feats, frames, spans)
    expected = [[3.0, 30.0],  # frames 1, 2, 3 overlap [0.15, 0.32]
                [3.0, 30.0],  # touching neighbours do not count
                [0.0, 0.0],  # no frame: zeros
                [3.0, 30.0],  # a zero-length word takes the frame containing it
                [2.0, 20.0]]
    assert np.allclose(got, expected)
    # unsorted rows give the same; overlapping windows (non-monotone ends) take the matrix path
    perm = [2, 0, 3, 1]
    assert np.allclose(overlap_mean(feats[perm], frames[perm], spans), expected)
    windows = np.array([[0.0, 0.2], [0.05, 0.4], [0.1, 0.3]])
    got = overlap_mean(feats[:3], windows, np.array([[0.25, 0.35], [0.0, 0.04]]))
    assert np.allclose(got, [[2.5, 25.0], [1.0, 10.0]])


def test_overlap_mean_matches_brute_force():
    rng = np.random.default_rng(1)
    start = np.sort(rng.uniform(0, 10, 200))
    frames = np.stack([start, start + 0.05], 1)
    feats = rng.normal(size=(200, 3))
    a = np.sort(rng.uniform(0, 10, 40))
    spans = np.stack([a, a + rng.uniform(0, 0.5, 40)], 1)
    got = overlap_mean(feats, frames, spans)
    for (lo, hi), row in zip(spans, got):
        member = (frames[:, 0] < hi) & (frames[:, 1] > lo)
        assert np.allclose(row, feats[member].mean(0) if member.any() else 0.0)


def test_segment_members_by_midpoint_and_left_pad():
    words = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.2], [5.0, 6.0]])
    members = segment_members(words, np.array([[0.0, 2.5], [2.5, 7.0]]))
    assert [m.tolist() for m in members] == [[0, 1], [2, 3]]  # word 2's midpoint 2.6 is in the second
    x = np.arange(1, 13, dtype=np.float32).reshape(6, 2)
    padded, cut = left_pad(x, 4)
    assert cut == 2 and np.array_equal(padded, x[2:])  # keeps the LAST rows
    padded, cut = left_pad(x[:2], 4)
    assert cut == 0 and np.array_equal(padded[:2], np.zeros((2, 2))) and np.array_equal(padded[2:], x[:2])


# -- prepare_cmu end to end ----------------------------------------------------------------------------------
def test_prepare_word_average_matches_hand_computation(mosi_fx, mosi_out):
    _, _, data = mosi_out
    vid = mosi_fx.folds["train"][0]
    with read_csd(csd_path(mosi_fx, "words")) as w, read_csd(csd_path(mosi_fx, "covarep")) as a, \
            read_csd(csd_path(mosi_fx, "facet")) as v, read_csd(csd_path(mosi_fx, "word_vectors")) as t:
        tokens, spans = w.entry(vid)
        k = next(i for i, tok in enumerate(tokens[:, 0]) if tok != b"sp")  # the first real word
        lo, hi = spans[k]
        audio, audio_iv = a.entry(vid)
        frames = (audio_iv[:, 0] < hi) & (audio_iv[:, 1] > lo)
        clean = np.where(np.isfinite(audio), audio, 0.0).astype(np.float64)
        expected_audio = clean[frames].mean(0)
        vision, vision_iv = v.entry(vid)
        expected_vision = vision[(vision_iv[:, 0] < hi) & (vision_iv[:, 1] > lo)].astype(np.float64).mean(0)
        expected_text = t.features(vid)[k]
    assert frames.sum() == round((hi - lo) * 100)  # a word of d seconds covers d*100 COVAREP frames
    n_words = len(mosi_fx.words[vid][0])  # 12: the first segment's words, left padded to 50
    assert data["train"]["id"][0].tolist() == [vid, "0"]
    row = 50 - n_words  # the first word of the first segment
    assert np.allclose(data["train"]["audio"][0, row], expected_audio, atol=1e-5)
    assert np.allclose(data["train"]["vision"][0, row], expected_vision, atol=1e-5)
    assert np.allclose(data["train"]["text"][0, row], expected_text)
    assert not np.any(data["train"]["text"][0, :row])  # left zero padding


def test_prepare_pickle_read_by_mult_reader(mosi_fx, mosi_out):
    out, summary, data = mosi_out
    assert summary["segments"] == mosi_fx.segments and summary["synthetic"]
    assert summary["dims"] == {"text": GLOVE_DIM, "audio": COVAREP_DIM, "vision": FACET_DIM}
    assert summary["nonfinite_replaced"]["audio"] == 3 * 5  # 3 per video, 5 videos in folds
    assert summary["words_truncated"] == 0 and summary["videos_missing"] == {}
    assert list(out.glob("*.tmp")) == []  # atomic write leaves no temp file
    reader = MulTPickleReader(out, dataset="mosi")
    splits = reader.load()
    assert {s: len(d) for s, d in splits.items()} == {"train": 6, "val": 2, "test": 2}
    assert reader.synthetic and reader.audio_neginf == {"train": 0, "val": 0, "test": 0}
    sample = splits["test"][1]
    vid = mosi_fx.folds["test"][0]
    assert sample["id"] == f"{vid}_1" and sample["text"].shape == (50, GLOVE_DIM)
    assert int(sample["text_mask"].sum()) == len(mosi_fx.words[vid][1])
    with read_csd(csd_path(mosi_fx, "labels")) as lab:
        assert np.isclose(float(sample["label"]), lab.features(vid)[1, 0])


def test_prepare_truncates_to_the_last_words(mosi_fx, tmp_path):
    summary = prepare("mosi", mosi_fx.csd_dir, tmp_path, mosi_fx.folds_path, max_words=8, progress=False)
    vid = mosi_fx.folds["train"][0]
    assert summary["words_truncated"] >= 4 and summary["segments_truncated"] >= 1
    with open(tmp_path / "mosi_data.pkl", "rb") as f:
        text = pickle.load(f)["train"]["text"]
    with read_csd(csd_path(mosi_fx, "word_vectors")) as t, read_csd(csd_path(mosi_fx, "words")) as w:
        tokens = w.features(vid)[:, 0]
        real = t.features(vid)[tokens != b"sp"]
    assert text.shape[1] == 8 and np.allclose(text[0], real[12 - 8:12])  # words 5..12 of 12


def test_mosei_texts_and_vectors_without_pause_rows(tmp_path):
    fx = write_cmu_fixture(tmp_path / "fx", "mosei")
    texts = tmp_path / "texts.jsonl"
    prepare("mosei", fx.csd_dir, tmp_path / "out", fx.folds_path, texts_out=texts, progress=False)
    reader = MulTPickleReader(tmp_path / "out", dataset="mosei")
    splits = reader.load()
    lines = [json.loads(x) for x in texts.read_text().splitlines()]
    assert len(lines) == sum(fx.segments.values()) == sum(len(d) for d in splits.values())
    vid = fx.folds["valid"][0]
    assert lines[6] == {"split": "valid", "id": f"{vid}_0", "text": " ".join(fx.words[vid][0])}
    sample = splits["val"][0]
    assert sample["id"] == lines[6]["id"]
    # every real word found its vector by time although the vectors file has no pause rows
    assert int(sample["text_mask"].sum()) == len(fx.words[vid][0])


def test_root_name_override_and_cli(mosi_fx, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import prepare_cmu
    finally:
        sys.path.pop(0)
    renamed = tmp_path / "csd"
    renamed.mkdir()
    for stem in MOSI.values():
        (renamed / f"{stem}.csd").write_bytes((mosi_fx.csd_dir / f"{stem}.csd").read_bytes())
    (renamed / "other.csd").write_bytes((mosi_fx.csd_dir / f"{MOSI['facet']}.csd").read_bytes())
    base = ["--dataset", "mosi", "--csd-dir", str(renamed), "--folds", str(mosi_fx.folds_path),
            "--out", str(tmp_path / "out"), "--quiet", "--file", "facet=other"]
    with pytest.raises(SystemExit) as exit_:
        prepare_cmu.main(base)  # other.csd's root is CMU_MOSI_Visual_Facet_42, not "other"
    assert exit_.value.code == 2 and "expected 'other'" in capsys.readouterr().err
    summary = prepare_cmu.main(base + ["--root-name", "facet=CMU_MOSI_Visual_Facet_42"])
    assert summary["segments"] == mosi_fx.segments
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        prepare_cmu.main(base[:-2] + ["--file", "nonsense=x"])
    assert "ROLE=VALUE" in capsys.readouterr().err
