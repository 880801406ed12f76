"""scripts/prepare_mesm.py end to end on a tiny SYNTHETIC raw IEMOCAP release written here (a DivX-style mpeg4 avi
with PyAV, a stereo wav, EmoEvaluation and transcription files in the release's text formats): the layout it writes
is what the reader reads (counts, labels, speaker side), reruns resume, a bad dialog is reported without stopping;
the MOSEI label rule (sum over annotators > 0) and transcript parsing."""

from __future__ import annotations

import math
import pickle
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from repro.data.base import DataError
from repro.data.fixtures_mesm import synthetic_fallback
from repro.data.mesm import IemocapRawReader
from repro.data.mesm_audio import wav_chunks
from repro.data.mesm_faces import build_face_cache
from repro.data.mesm_layout import IEMOCAP, use_left
from repro.data.mesm_prepare import mosei_labels, mosei_transcript, parse_emo_evaluation, parse_transcription
from tests.conftest import load_script

torch.set_num_threads(1)
FPS = Fraction(30000, 1001)
SECONDS = 3.0
LEFT_RGB, RIGHT_RGB = (200, 40, 40), (40, 40, 200)
EVALUATION = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[0.1000 - 1.2000]\tSes01F_impro01_F000\tang\t[2.0000, 3.5000, 3.5000]
C-E2:\tAnger;\t()
A-E1:\tval 2; act 4; dom  4;\t()

[1.0000 - 2.1000]\tSes01F_impro01_M000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()

[2.2000 - 2.9000]\tSes01F_impro01_F001\txxx\t[3.0000, 3.0000, 3.0000]
"""
TRANSCRIPTION = """Ses01F_impro01_F000 [000.1000-001.2000]: Excuse me: is this the line?
Ses01F_impro01_M000 [001.0000-002.1000]: Yeah.
Ses01F_impro01_F001 [002.2000-002.9000]: Okay.
M: [BREATHING]
"""


def write_avi(path, frames: int) -> None:
    import av

    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 720, 480, "yuv420p"
        image = np.zeros((480, 720, 3), np.uint8)
        image[:, :360], image[:, 360:] = LEFT_RGB, RIGHT_RGB
        for k in range(frames):
            image[:8, :8] = k  # frames differ a little
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_release(raw) -> None:
    """SYNTHETIC IEMOCAP_full_release with one good dialog and one whose avi is missing."""
    (raw / "SYNTHETIC.txt").parent.mkdir(parents=True)
    (raw / "SYNTHETIC.txt").write_text("SYNTHETIC IEMOCAP raw release written by tests/data/test_mesm_prepare.py\n")
    dialog = raw / "Session1" / "dialog"
    for sub in ("avi/DivX", "wav", "EmoEvaluation", "transcriptions"):
        (dialog / sub).mkdir(parents=True)
    t = np.arange(int(SECONDS * 16000)) / 16000
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 600 * t)], axis=1)
    for name in ("Ses01F_impro01", "Ses01F_impro02"):
        wavfile.write(dialog / "wav" / f"{name}.wav", 16000, (0.3 * stereo * 32767).astype(np.int16))
        (dialog / "EmoEvaluation" / f"{name}.txt").write_text(EVALUATION.replace("impro01", name[7:]))
        (dialog / "transcriptions" / f"{name}.txt").write_text(TRANSCRIPTION.replace("impro01", name[7:]))
    write_avi(dialog / "avi" / "DivX" / "Ses01F_impro01.avi", int(SECONDS * FPS))


def test_parsers_read_the_release_formats():
    turns = parse_emo_evaluation(EVALUATION.splitlines())
    assert turns["Ses01F_impro01_F000"] == {"start_time": 0.1, "end_time": 1.2, "label": "ang"}
    assert len(turns) == 3
    texts = parse_transcription(TRANSCRIPTION.splitlines())
    assert texts == {"Ses01F_impro01_F000": "Excuse me: is this the line?", "Ses01F_impro01_M000": "Yeah.",
                     "Ses01F_impro01_F001": "Okay."}


def test_prepare_iemocap_end_to_end(tmp_path, capsys):
    raw, root = tmp_path / "IEMOCAP_full_release", tmp_path / "mesm"
    write_release(raw)
    script = load_script("prepare_mesm")
    assert script.main(["iemocap", "--raw", str(raw), "--root", str(root)]) == 1  # with the progress bar
    out, err = capsys.readouterr()
    assert "2 utterances prepared now, 0 already done, 1 bad" in out
    assert f"Session1/Ses01F_impro02: missing {raw / 'Session1/dialog/avi/DivX/Ses01F_impro02.avi'}" in err
    processed = root / IEMOCAP.processed / "Ses01F_impro01"
    assert sorted(p.name for p in processed.iterdir()) == ["Ses01F_impro01_F000", "Ses01F_impro01_M000"]  # no xxx
    meta = pickle.loads((root / IEMOCAP.processed / "meta.pkl").read_bytes())
    assert set(meta) == {"Ses01F_impro01_F000", "Ses01F_impro01_M000"}
    assert meta["Ses01F_impro01_F000"]["text"] == "Excuse me: is this the line?"
    assert meta["Ses01F_impro01_F000"]["sr"] == 16000 and abs(meta["Ses01F_impro01_F000"]["fps"] - 29.97) < 0.01
    assert (root / "SYNTHETIC.txt").is_file()
    rate, signal = wavfile.read(raw / "Session1/dialog/wav/Ses01F_impro01.wav")
    for uttr_id, (start, end) in {"Ses01F_impro01_F000": (0.1, 1.2), "Ses01F_impro01_M000": (1.0, 2.1)}.items():
        folder = processed / uttr_id
        n = int(float(FPS) * end) - int(float(FPS) * start)
        assert len(list(folder.glob("image_L_*.jpg"))) == len(list(folder.glob("image_R_*.jpg"))) == n
        assert np.array_equal(wavfile.read(folder / "audio_R.wav")[1], signal[int(rate * start):int(rate * end), 1])
        assert wavfile.read(folder / "audio.wav")[1].shape == (int(rate * end) - int(rate * start), 2)
    from PIL import Image

    left = np.asarray(Image.open(processed / "Ses01F_impro01_F000" / "image_L_0.jpg"))
    assert left.shape == (224, 224, 3) and np.abs(left[100:120, 100:120].mean((0, 1)) - LEFT_RGB).max() < 12

    # rerun: everything done is skipped, the bad dialog reported again
    assert script.main(["iemocap", "--raw", str(raw), "--root", str(root), "--no-progress"]) == 1
    assert "0 utterances prepared now, 2 already done, 1 bad" in capsys.readouterr().out

    # the faces step (a stub detector that finds the middle of the frame), split lists, then the reader
    split_dir = root / IEMOCAP.split_dir
    split_dir.mkdir()
    for name in ("train_split.txt", "valid_split.txt", "test_split.txt"):
        split_dir.joinpath(name).write_text("Ses01F_impro01_F000\nSes01F_impro01_M000\n")
    report = build_face_cache(root, "iemocap", cropper=lambda image: image[88:136, 88:136],
                              fallback=synthetic_fallback, cropper_name="stub", progress=False)
    assert len(report.prepared) == 2 and not report.bad and not report.all_fallback
    reader = IemocapRawReader(root, text_tiny=True)
    train = reader.load()["train"]
    assert reader.synthetic  # the raw release's SYNTHETIC.txt was carried over
    assert [IEMOCAP.emotions[int(row.argmax())] for row in train.labels] == ["ang", "neu"]
    for i, uttr_id in enumerate(train.ids):
        sample = train[i]
        n = len(list((processed / uttr_id).glob("image_L_*.jpg")))
        assert sample["video"].shape == (len(range(0, n, 15)), 3, 48, 48)
        own = "L" if use_left(str(uttr_id)) else "R"
        assert torch.equal(sample["audio"], wav_chunks(processed / uttr_id / f"audio_{own}.wav", "iemocap"))
        colour = LEFT_RGB if own == "L" else RIGHT_RGB  # the speaker's half of the frame
        assert (sample["video"][0].mean((1, 2)) - torch.tensor(colour, dtype=torch.float32)).abs().max() < 12


def test_mosei_label_rule_and_transcript(tmp_path):
    header = "Input.VIDEO_ID,Input.CLIP,Answer.anger,Answer.disgust,Answer.fear,Answer.happiness,Answer.sadness," \
             "Answer.surprise\n"
    (tmp_path / "a.csv").write_text(header + "videos/abc,3,0,0,0,1,0,0\nvideos/abc,3,0,0,0,0,0,0\n"
                                             "xyz,0,0,0,0,0,0,0\n")
    (tmp_path / "b.csv").write_text(header + "abc,3,0,0,2,0,0,0\n")
    assert mosei_labels([tmp_path / "a.csv", tmp_path / "b.csv"]) == {"abc_3": [0, 0, 1, 1, 0, 0],
                                                                      "xyz_0": [0] * 6}
    (tmp_path / "t.txt").write_text("abc___3___1.5___4.25___Hello there\nabc___4___4.3___6___Bye.\n")
    assert mosei_transcript(tmp_path / "t.txt") == [("abc", "3", 1.5, 4.25, "Hello there"),
                                                    ("abc", "4", 4.3, 6.0, "Bye.")]
    (tmp_path / "bad.csv").write_text("VIDEO,CLIP\nabc,1\n")
    with pytest.raises(DataError, match="has no column 'Input.VIDEO_ID'"):
        mosei_labels([tmp_path / "bad.csv"])


def write_mosei_release(raw) -> None:
    """SYNTHETIC raw CMU-MOSEI: one 4 s 30-fps 960×720 video with two labelled clips (+ one unlabelled)."""
    import av

    for sub in ("Audio/WAV_16000", "Videos/Full/Combined", "Transcript/Combined", "Labels"):
        (raw / sub).mkdir(parents=True)
    (raw / "SYNTHETIC.txt").write_text("SYNTHETIC CMU-MOSEI raw release written by tests/data/test_mesm_prepare.py\n")
    t = np.arange(4 * 16000) / 16000
    wavfile.write(raw / "Audio/WAV_16000/vid1.wav", 16000, (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16))
    with av.open(str(raw / "Videos/Full/Combined/vid1.mp4"), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 960, 720, "yuv420p"
        for k in range(120):
            image = np.full((720, 960, 3), 60, np.uint8)
            image[:, :, 0] = 2 * k  # red grows with the frame number: which frame was kept is visible
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    (raw / "Transcript/Combined/vid1.txt").write_text(
        "vid1___0___0.2___2.6___Hello there\nvid1___1___2.5___3.9___Bye.\nvid1___2___3.9___4.0___unlabelled\n")
    (raw / "Labels/batch1.csv").write_text(
        "Input.VIDEO_ID,Input.CLIP,Answer.anger,Answer.disgust,Answer.fear,Answer.happiness,Answer.sadness,"
        "Answer.surprise\nvideos/vid1,0,0,0,0,1,0,0\nvideos/vid1,0,1,0,0,0,0,0\nvideos/vid1,1,0,0,0,0,0,0\n")


def test_prepare_mosei_end_to_end(tmp_path, capsys, monkeypatch):
    from repro.data.mesm import MoseiRawReader
    from repro.data.mesm_layout import MOSEI

    raw, root = tmp_path / "MOSEI_Raw", tmp_path / "mesm"
    write_mosei_release(raw)
    script = load_script("prepare_mesm")
    assert script.main(["mosei", "--raw", str(raw), "--root", str(root), "--no-progress"]) == 0
    assert "2 utterances prepared now" in capsys.readouterr().out
    meta = pickle.loads((root / MOSEI.processed / "meta.pkl").read_bytes())
    assert meta == {"vid1_0": {"text": "Hello there", "label": [1, 0, 0, 1, 0, 0]},
                    "vid1_1": {"text": "Bye.", "label": [0] * 6}}
    # 2 fps = every 15th frame: clip 0 keeps kept[int(2·0.2):int(2·2.6)] = frames 0, 15, .., 60; clip 1 kept[5:7]
    from PIL import Image

    for clip, frames in {"vid1_0": [0, 15, 30, 45, 60], "vid1_1": [75, 90]}.items():
        images = sorted((root / MOSEI.processed / clip).glob("image_*.jpg"))
        assert len(images) == len(frames)
        reds = [int(np.asarray(Image.open(root / MOSEI.processed / clip / f"image_{i}.jpg"))[360, 480, 0])
                for i in range(len(frames))]
        assert np.abs(np.array(reds) - 2 * np.array(frames)).max() <= 6
    assert wavfile.read(root / MOSEI.processed / "vid1_0" / "audio.wav")[1].shape == (int(16000 * 2.6) - 3200,)
    for split in ("train", "valid", "test"):
        (root / MOSEI.split_dir).mkdir(exist_ok=True)
        (root / MOSEI.split_dir / f"{split}_split.txt").write_text("vid1_0\nvid1_1\n")

    # the faces CLI with a stub detector in place of MTCNN (repro.data.faces is the MTCNN branch's)
    import repro.data.mesm_faces as faces

    def stub_cropper(weights_dir=None, quirk_fixed_crop=False):
        return (lambda image: image[156:204, 156:204]), synthetic_fallback, "stub"

    monkeypatch.setattr(faces, "default_cropper", stub_cropper)
    assert script.main(["faces", "--dataset", "mosei", "--root", str(root), "--no-progress"]) == 0
    assert "2 utterances cropped now, 0 already done; 0 with no face found in any frame" in capsys.readouterr().out
    splits = MoseiRawReader(root, text_tiny=True, text_max_length=100).load()
    sample = splits["train"][0]
    assert sample["video"].shape == (5, 3, 48, 48) and sample["label"].tolist() == [1, 0, 0, 1, 0, 0]
    assert sample["audio"].shape == (math.ceil((1 + (int(16000 * 2.6) - 3200) // 200) / 32), 1, 128, 32)
