"""MESM's hand-crafted-feature readers (`repro.data.mesm_hcf`) against their SYNTHETIC fixtures: sample counts, the
authors' speaker side, frame and column selection, padding and masks, labels from meta.pkl, lookup by id, and the
one-line errors for missing or malformed files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from repro.data.base import DataError
from repro.data.fixtures_mesm_hcf import iemocap_ids, mosei_labels, write_iemocap_hcf, write_mosei_hcf
from repro.data.mesm_hcf import (
    AUDIO_FEATURE_TYPES,
    FAU_DIM,
    IEMOCAP_EMOTIONS,
    IemocapHCFReader,
    MoseiHCFReader,
    audio_columns,
    speaker_side,
)


def _load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


@pytest.fixture(scope="module")
def iemocap_root(tmp_path_factory):
    return write_iemocap_hcf(tmp_path_factory.mktemp("mesm"))


@pytest.fixture(scope="module")
def iemocap(iemocap_root):
    reader = IemocapHCFReader(iemocap_root)
    return reader, reader.load()


@pytest.fixture(scope="module")
def mosei_root(tmp_path_factory):
    return write_mosei_hcf(tmp_path_factory.mktemp("mesm"))


@pytest.fixture(scope="module")
def mosei(mosei_root):
    reader = MoseiHCFReader(mosei_root)
    return reader, reader.load()


# -- IEMOCAP ---------------------------------------------------------------------------------------------------------
def test_speaker_side_is_the_authors_rule():
    # session gender letter (5th character) == first letter of the last token -> left half
    assert speaker_side("Ses03F_impro03_F018") == "L"
    assert speaker_side("Ses03F_impro03_M018") == "R"
    assert speaker_side("Ses05M_script01_1_M012") == "L"
    assert speaker_side("Ses05M_script01_1_F012") == "R"


def test_audio_feature_types_have_the_authors_column_counts():
    counts = {name: len(cols) for name, cols in AUDIO_FEATURE_TYPES.items()}
    # 34 low-level columns + 18 groups of 6 statistics; "all" adds columns 100, 101 (lf_transformer.py's 144)
    assert counts == {"all": 144, "no_bbe": 120, "no_mfcc": 130, "no_phonological": 34, "mean_std_all": 70,
                      "no_min_max_all": 106, "plus": 306, "disvoice_142": 142}
    assert audio_columns(0) == audio_columns("all") and audio_columns(6) == audio_columns("plus")
    assert audio_columns("all")[-3:] == [762, 100, 101]
    assert audio_columns("mean_std_all")[34:38] == [655, 656, 661, 662]
    with pytest.raises(DataError, match=r"unknown audio feature type 7.*audio_features"):
        audio_columns(7)


def test_iemocap_counts_ids_labels(iemocap):
    _, splits = iemocap
    assert {s: len(d) for s, d in splits.items()} == {"train": 12, "val": 6, "test": 6}
    for p, d in enumerate(splits.values()):
        assert list(d.ids) == iemocap_ids(p, len(d))  # the split file's order
        # the fixture cycles through the six emotions: one-hot rows, float32 for the per-emotion BCE
        expected = np.eye(6, dtype=np.float32)[np.arange(len(d)) % 6]
        np.testing.assert_array_equal(d.labels, expected)
        assert d[0]["label"].dtype.is_floating_point


def test_iemocap_audio_is_the_speaker_side_columns(iemocap, iemocap_root):
    _, splits = iemocap
    raw = _load(iemocap_root / "IEMOCAP_HCF_FEATURES" / "train_audio_features.pt")
    train = splits["train"]
    assert [speaker_side(u) for u in train.ids[:2]] == ["L", "R"]
    for i in (0, 1):  # side L and side R utterances
        uid = train.ids[i]
        side = speaker_side(uid)
        expected = raw[uid][side].T[:, audio_columns("all")]
        sample = train[i]
        n = int(sample["audio_mask"].sum())
        assert n == expected.shape[0] and sample["audio"].shape == (14, 144)  # the longest train/val/test sequence
        np.testing.assert_allclose(sample["audio"][:n].numpy(), expected, rtol=0, atol=0)
        assert not sample["audio"][n:].any() and not sample["audio_mask"][n:].any()


def test_iemocap_frames_follow_sample_by_interval(iemocap, iemocap_root):
    _, splits = iemocap
    raw = _load(iemocap_root / "IEMOCAP_HCF_FEATURES" / "train_video_features.pt")
    uid = splits["train"].ids[2]  # 7 frames per side, frame 1 of the speaker's side deleted by the fixture
    side = speaker_side(uid)
    # len(frames) // 2 = 13 // 2 = 6 indices 0..5, the absent 1 skipped: frames 0, 2, 3, 4, 5 (6 is dropped too)
    expected = np.stack([raw[uid][f"image_{side}_{i}"][-FAU_DIM:] for i in (0, 2, 3, 4, 5)])
    sample = splits["train"][2]
    assert int(sample["vision_mask"].sum()) == 5
    np.testing.assert_array_equal(sample["vision"][:5].numpy(), expected)


def test_iemocap_empty_text_is_all_padding(iemocap):
    _, splits = iemocap
    sample = splits["train"][1]  # the fixture's utterance with no words
    assert not sample["text_mask"].any() and not sample["text"].any()
    assert int(splits["train"][0]["text_mask"].sum()) == 3


def test_iemocap_reads_only_the_model_modalities(iemocap_root, tmp_path):
    root = write_iemocap_hcf(tmp_path)
    for phase in ("train", "valid", "test"):
        (root / "IEMOCAP_HCF_FEATURES" / f"{phase}_audio_features.pt").unlink()
    reader = IemocapHCFReader(root)
    reader.modalities = ("text", "vision")
    train = reader.load()["train"]
    assert set(train.arrays) == {"text", "vision"} and reader.synthetic


@pytest.mark.parametrize("case", ["split", "meta_id", "features_id", "label", "audio_rows", "side", "frame_size"])
def test_iemocap_bad_input_is_one_line_naming_the_file(case, tmp_path):
    root = write_iemocap_hcf(tmp_path)
    features = root / "IEMOCAP_HCF_FEATURES"
    meta_path = root / "IEMOCAP_RAW_PROCESSED" / "meta.pkl"
    uid = iemocap_ids(0, 12)[0]
    if case == "split":
        (root / "IEMOCAP_SPLIT" / "valid_split.txt").unlink()
        match = r"missing file .*IEMOCAP_SPLIT/valid_split.txt.*fix: download the authors' processed data"
    elif case == "meta_id":
        meta = _load(meta_path)
        del meta[uid]
        _dump(meta_path, meta)
        match = rf"meta.pkl has no entry for 1 id\(s\) of train_split.txt \(e.g. \['{uid}'\]\)"
    elif case == "features_id":
        text = _load(features / "train_text_features.pt")
        del text[uid]
        _dump(features / "train_text_features.pt", text)
        match = rf"train_text_features.pt has no features for utterance '{uid}'"
    elif case == "label":
        meta = _load(meta_path)
        meta[uid]["label"] = "sur"
        _dump(meta_path, meta)
        match = r"has label 'sur', expected one of \['ang', 'exc', 'fru', 'hap', 'neu', 'sad'\]"
    elif case == "audio_rows":
        audio = _load(features / "train_audio_features.pt")
        audio[uid] = {s: m[:700] for s, m in audio[uid].items()}
        _dump(features / "train_audio_features.pt", audio)
        match = r"\['L'\] has shape \(700, \d+\), expected \(D, T\) with D >= 763"
    elif case == "side":
        audio = _load(features / "train_audio_features.pt")
        del audio[uid]["L"]
        _dump(features / "train_audio_features.pt", audio)
        match = r"has \['R'\], expected a dict with the speaker's side 'L'"
    else:
        video = _load(features / "train_video_features.pt")
        video[uid]["image_L_0"] = np.zeros(20, dtype=np.float32)
        _dump(features / "train_video_features.pt", video)
        match = r"\['image_L_0'\] has 20 values, expected at least 35"
    with pytest.raises(DataError, match=match) as err:
        IemocapHCFReader(root).load()
    assert "\n" not in str(err.value)


# -- MOSEI -----------------------------------------------------------------------------------------------------------
def test_mosei_rows_are_looked_up_by_id(mosei, mosei_root):
    _, splits = mosei
    assert {s: len(d) for s, d in splits.items()} == {"train": 12, "val": 6, "test": 6}
    raw = _load(mosei_root / "MOSEI_HCF_FEATURES" / "mosei_senti_hcf_valid.pkl")
    ids = list(raw["id"])
    assert ids != list(splits["val"].ids)  # the fixture stores its rows in another order
    for i, uid in enumerate(splits["val"].ids):
        sample, row = splits["val"][i], ids.index(uid)
        for m, steps in (("text", 8), ("audio", 12), ("vision", 12)):
            # the whole stored (left-padded) sequence, as the authors' model sees it; the mask marks the real suffix
            np.testing.assert_array_equal(sample[m].numpy(), raw[m][row])
            real = np.abs(raw[m][row]).sum(-1) > 0
            first = int(np.argmax(real))
            np.testing.assert_array_equal(sample[f"{m}_mask"].numpy(), np.arange(steps) >= first)


def test_mosei_labels_come_from_meta(mosei):
    _, splits = mosei
    np.testing.assert_array_equal(splits["train"].labels, mosei_labels(12).astype(np.float32))
    assert splits["train"].labels.sum(axis=0).min() >= 1  # every emotion positive in train


def test_mosei_nonfinite_values_are_zeroed_and_counted(tmp_path):
    root = write_mosei_hcf(tmp_path)
    path = root / "MOSEI_HCF_FEATURES" / "mosei_senti_hcf_train.pkl"
    hcf = _load(path)
    hcf["audio"][0, -1, :3] = [-np.inf, np.nan, np.inf]
    _dump(path, hcf)
    reader = MoseiHCFReader(root)
    train = reader.load()["train"]
    assert reader.nonfinite["train"]["audio"] == 3
    row = list(train.ids).index(str(hcf["id"][0]))
    assert np.isfinite(train[row]["audio"].numpy()).all()
    with pytest.raises(DataError, match=r"has 3 non-finite values .*nonfinite=zero"):
        MoseiHCFReader(root, nonfinite="error").load()


@pytest.mark.parametrize("case", ["id", "key", "vision_dim", "label"])
def test_mosei_bad_input_is_one_line_naming_the_file(case, tmp_path):
    root = write_mosei_hcf(tmp_path)
    path = root / "MOSEI_HCF_FEATURES" / "mosei_senti_hcf_test.pkl"
    hcf = _load(path)
    if case == "id":
        keep = np.array([not str(i).startswith("SYNTH2v003") for i in hcf["id"]])
        hcf = {k: v[keep] for k, v in hcf.items()}
        match = r"mosei_senti_hcf_test.pkl has no row for 1 id\(s\) of the split file \(e.g. \['SYNTH2v003_3'\]\)"
    elif case == "key":
        del hcf["vision"]
        match = r"mosei_senti_hcf_test.pkl has no key 'vision' \(present: \['audio', 'id', 'text'\]\)"
    elif case == "vision_dim":
        hcf["vision"] = hcf["vision"][..., :20]
        match = r"\['vision'\] has shape \(8, 12, 20\), expected \(N, T, 35\)"
    else:
        meta_path = root / "MOSEI_RAW_PROCESSED" / "meta.pkl"
        meta = _load(meta_path)
        meta["SYNTH2v000_0"]["label"] = [1, 0, 2, 0, 0, 0]
        _dump(meta_path, meta)
        match = r"\['SYNTH2v000_0'\] has label \[1, 0, 2, 0, 0, 0\], expected 6 values 0/1"
    _dump(path, hcf)
    with pytest.raises(DataError, match=match) as err:
        MoseiHCFReader(root).load()
    assert "\n" not in str(err.value)


def test_emotion_orders_match_the_data_configs():
    from omegaconf import OmegaConf

    from repro.config import CONFIG_DIR

    assert tuple(OmegaConf.load(CONFIG_DIR / "data" / "iemocap_hcf.yaml").emotions) == IEMOCAP_EMOTIONS
    mosei = OmegaConf.load(CONFIG_DIR / "data" / "mosei_hcf.yaml")
    assert tuple(mosei.emotions) == MoseiHCFReader.emotions
