"""MESM's raw-data readers (repro.data.mesm) on their SYNTHETIC fixtures: counts, shapes, labels, the speaker-side
rule, frame sampling (and the MOSEI QUIRK), the face cache, the collate, bad input and `python -m repro.data check`."""

from __future__ import annotations

import json
import math
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch

from repro.data.base import DataError
from repro.data.cli import main as data_cli
from repro.data.datamodule import MultimodalDataModule
from repro.data.fixtures_mesm import SPLIT_SIZES, synthetic_fallback, write_fixture
from repro.data.mesm import IemocapRawReader, MoseiRawReader, collate_mesm
from repro.data.mesm_audio import wav_chunks
from repro.data.mesm_faces import read_frame
from repro.data.mesm_layout import IEMOCAP, MOSEI, count_images, frame_indices, frame_step, use_left, utterance_folder

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """One SYNTHETIC root holding both datasets (written once; tests that damage it work on a copy)."""
    root = tmp_path_factory.mktemp("data") / "mesm"
    write_fixture(root, "iemocap")
    write_fixture(root, "mosei")
    return root


@pytest.fixture
def copy(fixtures, tmp_path):
    shutil.copytree(fixtures, tmp_path / "mesm")
    return tmp_path / "mesm"


def reader(root, cls=IemocapRawReader, **kw):
    return cls(root, text_tiny=True, **kw)


def test_side_rule_on_hand_made_ids():
    assert use_left("Ses01F_impro01_F000") and not use_left("Ses01F_impro01_M000")
    assert use_left("Ses03M_script02_1_M017") and not use_left("Ses03M_script02_1_F017")
    assert utterance_folder("r", IEMOCAP, "Ses03M_script02_1_M017").as_posix() == \
        "r/IEMOCAP_RAW_PROCESSED/Ses03M_script02/Ses03M_script02_1_M017"


def test_frame_sampling_indices():
    assert frame_indices(46, "iemocap") == [0, 15, 30, 45] and frame_indices(45, "iemocap") == [0, 15, 30]
    assert frame_indices(46, "iemocap", img_interval=1000) == [0, 30]
    assert frame_indices(7, "mosei") == list(range(7))  # stored every 500 ms already: all of them
    assert frame_indices(7, "mosei", img_interval=1000) == [0, 2, 4, 6]
    assert frame_indices(7, "mosei", compound_quirk=True) == [0]  # the authors' 30-fps step over 2-fps frames
    assert frame_indices(31, "mosei", compound_quirk=True) == [0, 15, 30]
    assert frame_indices(0, "mosei", compound_quirk=True) == []
    with pytest.raises(DataError, match="img_interval=10 ms is shorter than one frame"):
        frame_step(10)


def test_iemocap_fixture_counts_shapes_labels(fixtures):
    splits = reader(fixtures).load()
    assert {s: len(d) for s, d in splits.items()} == SPLIT_SIZES
    meta = pickle.loads((fixtures / IEMOCAP.processed / "meta.pkl").read_bytes())
    for split in splits.values():
        labels = split.labels
        assert labels.dtype == np.float32 and (labels.sum(axis=1) == 1).all() and (labels.sum(axis=0) >= 1).all()
        for i in (0, len(split) - 1):
            uttr_id, sample = str(split.ids[i]), split[i]
            assert sample["label"].argmax().item() == IEMOCAP.emotions.index(meta[uttr_id]["label"])
            folder = utterance_folder(fixtures, IEMOCAP, uttr_id)
            n_images = count_images(folder, f"image_{'L' if use_left(uttr_id) else 'R'}_")
            assert sample["video"].shape == (len(range(0, n_images, 15)), 3, 48, 48)
            assert sample["video"].dtype == torch.float32 and 0 <= sample["video"].min() <= sample["video"].max() <= 255
            frames = round((meta[uttr_id]["end_time"] - meta[uttr_id]["start_time"]) * 16000)
            assert sample["audio"].shape == (math.ceil((1 + frames // 200) / 32), 1, 128, 32)
            assert sample["text"].dtype == torch.int64 and sample["text"].shape == (50,)
            assert sample["text_mask"].sum().item() == len(meta[uttr_id]["text"]) + 2  # [CLS] bytes [SEP]


def test_speaker_side_picks_audio_and_frames(fixtures):
    split = reader(fixtures).load()["train"]
    sides = {str(u): use_left(str(u)) for u in split.ids}
    assert set(sides.values()) == {True, False}  # the fixture has both
    for i, uttr_id in enumerate(split.ids):
        folder = utterance_folder(fixtures, IEMOCAP, str(uttr_id))
        own, other = ("L", "R") if sides[str(uttr_id)] else ("R", "L")
        audio = split[i]["audio"]
        assert torch.equal(audio, wav_chunks(folder / f"audio_{own}.wav", "iemocap"))
        assert not torch.allclose(audio, wav_chunks(folder / f"audio_{other}.wav", "iemocap"))
        # the speaker's half shows the emotion's colour: the cached crop of frame 0 is that colour
        colour = split[i]["video"][0, :, 24, 24]
        own_frame = read_frame(folder / f"image_{own}_0.jpg", IEMOCAP)
        assert torch.allclose(colour, torch.tensor(own_frame[112, 112], dtype=torch.float32), atol=12)


def test_face_cache_records_fallbacks(fixtures):
    split = reader(fixtures).load()["train"]
    uttr_id = str(split.ids[0])
    record = json.loads((fixtures / IEMOCAP.faces_dir / f"{uttr_id}.json").read_text())
    assert record["frames"] == [0, 15] and record["fallback"] == [False, True]  # frame 15 is dark in the fixture
    folder = utterance_folder(fixtures, IEMOCAP, uttr_id)
    image = read_frame(folder / f"image_{'L' if use_left(uttr_id) else 'R'}_15.jpg", IEMOCAP)
    expected = torch.from_numpy(synthetic_fallback(image).transpose(2, 0, 1).astype(np.float32))
    assert torch.equal(split[0]["video"][1], expected)
    index = json.loads((fixtures / IEMOCAP.faces_dir / "index.json").read_text())
    assert index["cropper"] == "synthetic" and index["synthetic"] is True and len(index["utterances"]) == 20


def test_mosei_fixture_and_compound_quirk(fixtures):
    default = reader(fixtures, MoseiRawReader, text_max_length=100).load()
    quirk = reader(fixtures, MoseiRawReader, text_max_length=100, quirk_mosei_compound_subsampling=True).load()
    assert {s: len(d) for s, d in default.items()} == SPLIT_SIZES
    for split in ("train", "val", "test"):
        labels = default[split].labels
        assert (labels.sum(axis=0) >= 1).all() and labels.sum() > len(labels)  # multi-hot: some have two
    sample = default["train"][0]
    n_images = count_images(utterance_folder(fixtures, MOSEI, str(default["train"].ids[0])), "image_")
    assert sample["video"].shape == (n_images, 3, 48, 48) and sample["text"].shape == (100,)
    assert quirk["train"][0]["video"].shape == (1, 3, 48, 48)  # fixture clips have < 16 frames: only frame 0
    assert torch.equal(quirk["train"][0]["video"][0], sample["video"][0])
    with pytest.raises(DataError, match="MOSEI only"):
        IemocapRawReader(fixtures, quirk_mosei_compound_subsampling=True)


def test_collate_concatenates_frames_and_chunks(fixtures):
    split = reader(fixtures).load()["train"]
    samples = [split[i] for i in range(3)]
    batch = collate_mesm(samples)
    assert batch["video_counts"].tolist() == [s["video"].shape[0] for s in samples]
    assert batch["audio_counts"].tolist() == [s["audio"].shape[0] for s in samples]
    assert batch["video"].shape == (sum(batch["video_counts"]), 3, 48, 48)
    assert batch["video_counts"].dtype == torch.int64
    assert torch.equal(batch["video"][samples[0]["video"].shape[0]], samples[1]["video"][0])
    assert batch["audio"].shape == (sum(batch["audio_counts"]), 1, 128, 32)
    assert batch["text"].shape == (3, 50) and batch["text"].dtype == torch.int64
    assert batch["text_mask"].dtype == torch.bool
    assert batch["label"].shape == (3, 6) and batch["label"].dtype == torch.float32
    assert batch["id"] == [s["id"] for s in samples]
    empty = dict(samples[0], video=samples[0]["video"][:0])
    with pytest.raises(ValueError, match=f"utterance {samples[0]['id']} has no video"):
        collate_mesm([empty, samples[1]])


def test_datamodule_uses_the_reader_collate_and_the_config_normalisation(fixtures, tmp_path):
    from repro.config import compose_train

    cfg = compose_train(["data=iemocap_raw", "data.text.tiny=true", "data.num_workers=0", "data.batch_size=4"],
                        data_dir=fixtures.parent, cache_dir=tmp_path)
    assert cfg.protocol.early_stopping_patience == 6 and cfg.data.text.model_dir.endswith("albert-base-v2")
    dm = MultimodalDataModule.from_config(cfg)
    dm.read_only(("video", "text"))
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"video", "video_counts", "text", "text_mask", "label", "id"}  # no audio read
    raw = dm.splits["val"][0]["video"]
    mean, std = torch.tensor([159.0, 111, 102]).view(3, 1, 1), torch.tensor([37.0, 33, 32]).view(3, 1, 1)
    assert torch.allclose(batch["video"][: len(raw)], (raw - mean) / std)
    assert batch["video_counts"].sum() == batch["video"].shape[0] and len(batch["id"]) == 4


# ---------------------------------------------------------------------------------------------------------------
# bad input: one line naming what is missing and the fix


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_split_id_without_folder(copy):
    shutil.rmtree(utterance_folder(copy, IEMOCAP, "Ses01F_impro01_F000"))
    with pytest.raises(DataError) as err:
        reader(copy).load()
    text = one_line(err)
    assert "train_split.txt lists Ses01F_impro01_F000, which has no folder" in text and "prepare_mesm.py" in text


def test_missing_face_cache_names_folder_and_command(copy):
    shutil.rmtree(copy / IEMOCAP.faces_dir)
    with pytest.raises(DataError) as err:
        reader(copy).load()
    assert f"missing face cache {copy / IEMOCAP.faces_dir}/" in one_line(err)
    assert f"python scripts/prepare_mesm.py faces --dataset iemocap --root {copy}" in str(err.value)
    with pytest.raises(DataError) as err:  # the fixed-crop QUIRK reads its own cache
        reader(copy, quirk_fixed_crop=True).load()
    assert f"missing face cache {copy / 'IEMOCAP_FACES48_QUIRKCROP'}/" in one_line(err)
    assert "faces --dataset iemocap" in str(err.value) and "--quirk-fixed-crop" in str(err.value)
    no_video = reader(copy)
    no_video.modalities = ("audio", "text")  # no video read: no cache needed
    assert len(no_video.load()["train"]) == SPLIT_SIZES["train"]
    with pytest.raises(DataError, match="built for another img_interval"):
        write_fixture_faces_then_read(copy, img_interval=250)


def write_fixture_faces_then_read(root, img_interval):
    from repro.data.fixtures_mesm import synthetic_cropper
    from repro.data.mesm_faces import build_face_cache

    build_face_cache(root, "iemocap", cropper=synthetic_cropper, fallback=synthetic_fallback, progress=False)
    return reader(root, img_interval=img_interval).load()


def test_utterance_missing_from_face_cache(copy):
    index_path = copy / IEMOCAP.faces_dir / "index.json"
    index = json.loads(index_path.read_text())
    del index["utterances"]["Ses01F_impro01_F000"]
    index_path.write_text(json.dumps(index))
    with pytest.raises(DataError) as err:
        reader(copy).load()
    assert "has no crops of Ses01F_impro01_F000" in one_line(err) and "it resumes" in str(err.value)


@pytest.mark.parametrize("bad", ["stereo", "8k"])
def test_wav_of_wrong_channels_or_rate(copy, bad):
    from scipy.io import wavfile

    uttr_id = "Ses01F_impro01_F000"  # speaker side L
    path = utterance_folder(copy, IEMOCAP, uttr_id) / "audio_L.wav"
    rate, data = wavfile.read(path)
    if bad == "stereo":
        wavfile.write(path, rate, np.stack([data, data], axis=1))
    else:
        wavfile.write(path, 8000, data)
    split = reader(copy).load()["train"]
    with pytest.raises(DataError) as err:
        split[list(split.ids).index(uttr_id)]
    text = one_line(err)
    assert str(path) in text
    expected = "has 2 channels, expected mono" if bad == "stereo" else "sampled at 8000 Hz, expected 16000"
    assert expected in text


def test_gap_in_frames_names_the_missing_one(copy):
    folder = utterance_folder(copy, IEMOCAP, "Ses01F_impro01_F000")
    (folder / "image_L_3.jpg").unlink()
    with pytest.raises(DataError) as err:
        count_images(folder, "image_L_")
    assert f"missing frame {folder / 'image_L_3.jpg'}" in one_line(err)


def test_utterance_without_frames_is_dropped_and_counted(copy):
    from repro.data.fixtures_mesm import synthetic_cropper
    from repro.data.mesm_faces import build_face_cache

    uttr_id = "Ses01F_impro01_F000"
    folder = utterance_folder(copy, IEMOCAP, uttr_id)
    for jpg in folder.glob("image_*.jpg"):
        jpg.unlink()
    (copy / IEMOCAP.faces_dir / f"{uttr_id}.json").unlink()  # the face step redoes this one only
    report = build_face_cache(copy, "iemocap", cropper=synthetic_cropper, fallback=synthetic_fallback,
                              cropper_name="synthetic", progress=False)
    assert report.prepared == [uttr_id] and len(report.skipped) == 19 and report.no_frames == [uttr_id]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = reader(copy)
        splits = r.load()
    assert len(splits["train"]) == SPLIT_SIZES["train"] - 1 and uttr_id not in splits["train"].ids
    assert r.dropped == {"train": [uttr_id]}
    assert [str(w.message) for w in caught if "dropped 1 train utterance(s) without any frame" in str(w.message)]


def test_all_fallback_utterances_are_counted(copy):
    from repro.data.mesm_faces import build_face_cache

    for record in (copy / IEMOCAP.faces_dir).glob("*.json"):
        record.unlink()
    report = build_face_cache(copy, "iemocap", cropper=lambda image: None, fallback=synthetic_fallback,
                              cropper_name="none", progress=False)
    assert len(report.prepared) == 20 and sorted(report.all_fallback) == sorted(report.prepared)


def test_bad_label_and_missing_split_file(copy):
    meta_path = copy / IEMOCAP.processed / "meta.pkl"
    meta = pickle.loads(meta_path.read_bytes())
    meta["Ses01F_impro01_F000"]["label"] = "xxx"
    meta_path.write_bytes(pickle.dumps(meta))
    with pytest.raises(DataError) as err:
        reader(copy).load()
    assert "Ses01F_impro01_F000 has label 'xxx', expected one of ang, exc, fru, hap, neu, sad" in one_line(err)
    meta["Ses01F_impro01_F000"]["label"] = "ang"
    meta_path.write_bytes(pickle.dumps(meta))
    (copy / IEMOCAP.split_dir / "valid_split.txt").unlink()
    with pytest.raises(DataError) as err:
        reader(copy).load()
    assert f"missing split file {copy / IEMOCAP.split_dir / 'valid_split.txt'}" in one_line(err)
    assert "wenliangdai/Multimodal-End2end-Sparse" in str(err.value)


def test_missing_albert_folder(fixtures, tmp_path):
    with pytest.raises(DataError) as err:
        IemocapRawReader(fixtures, text_model_dir=tmp_path / "albert-base-v2").load()
    text = one_line(err)
    assert f"missing ALBERT folder {tmp_path / 'albert-base-v2'}" in text and "save_pretrained" in text


# ---------------------------------------------------------------------------------------------------------------
# the CLI


def test_check_cli_on_the_mosei_fixture(fixtures, capsys):
    code = data_cli(["check", "data=mosei_raw", f"paths.data_dir={fixtures.parent}", "data.text.tiny=true",
                     "data.num_workers=0"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["synthetic"] is True and summary["reader"] == "repro.data.mesm.MoseiRawReader"
    assert {s: v["samples"] for s, v in summary["splits"].items()} == SPLIT_SIZES
    first = summary["splits"]["train"]["first_sample"]
    assert first["video"]["stored_dtype"] == "uint8" and first["text"]["dtype"] == "int64"
    assert first["audio"]["shape"][1:] == [1, 128, 32]
    assert summary["splits"]["val"]["labels"]["kind"] == "multi-hot"
