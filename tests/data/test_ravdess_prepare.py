"""RAVDESS preparation (repro.data.ravdess_prepare, scripts/prepare_ravdess.py) on SYNTHETIC raw releases.

Every release here is SYNTHETIC (repro.data.fixtures_ravdess): small mp4s with an AAC track, OpenFace-layout landmark
CSVs, wavs at 48 kHz (some stereo). Checked: shapes, dtypes, labels, that the crop is the face (the face's colour
is the emotion's), that the MFCC equals librosa on the same audio, the authors' frame / row sampling, resuming, and
each bad input's one line with the other clips still prepared.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from repro.data.base import DataError
from repro.data.fixtures_ravdess import PALETTE, face_track, landmarks_csv, tone, write_mp4, write_raw_release
from repro.data.ravdess_prepare import (
    FRAMES,
    MFCC_SHAPE,
    VIDEO_SHAPE,
    decode_clip,
    frame_indices,
    frame_times,
    landmark_rows,
    prepare,
)
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[2]
ACTORS = (1, 2)  # a partial release: fast, and it exercises the missing-actor warning


def _cli():
    return load_script("prepare_ravdess")


def _prepare(raw, out, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = prepare(raw, out, progress=False, **kw)
    return report, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def raw_video(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("ravdess_raw")
    write_raw_release(raw, actors=ACTORS)
    return raw


@pytest.fixture(scope="module")
def prepared(raw_video, tmp_path_factory):
    out = tmp_path_factory.mktemp("ravdess_prepared")
    report, messages = _prepare(raw_video, out)
    return out, report, messages


def test_frame_times_and_indices_follow_the_authors():
    for duration, fps in [(3.5035, 29.97), (3.2, 30.0), (4.004, 30.0), (3.0, 30.0)]:
        authors = list(np.arange(0, duration, duration / 30))
        if len(authors) < 30:
            authors.append(duration)
        assert frame_times(duration) == pytest.approx(authors[:30])
        assert frame_indices(duration, fps) == [int(fps * t + 1e-5) for t in authors[:30]]
    assert frame_indices(3.5, 30.0)[:4] == [0, 3, 7, 10] and frame_indices(3.5, 30.0)[-1] == 101
    for rows in (31, 90, 105, 120):
        authors = [int(np.ceil(t)) for t in np.arange(0, rows, rows / 30)]
        assert landmark_rows(rows) == (authors + [rows - 1])[:30]


def test_in_order_decoding_keeps_exactly_the_selected_frames(tmp_path):
    """The 30 crops (whole-frame boxes) equal the authors' frame indices of the fully decoded clip, frame by frame."""
    import av

    n, fps = 105, 30
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (n, 48, 64, 3), dtype=np.uint8)  # every frame different
    path = write_mp4(tmp_path / "count.mp4", frames, fps, tone(0, n / fps, 48000, 1, 0))
    video, audio, facts = decode_clip(path, lambda w, h: [(0, 224, 0, 224)] * FRAMES)
    with av.open(str(path)) as container:
        every = [f.reformat(width=224, height=224, format="rgb24", interpolation="BICUBIC").to_ndarray()
                 for f in container.decode(video=0)]
    wanted = frame_indices(facts["duration"], facts["fps"])
    assert facts["frames"] == n == len(every) and len(set(wanted)) == FRAMES and wanted[0] == 0
    np.testing.assert_array_equal(video, np.stack([every[min(k, n - 1)] for k in wanted]).transpose(0, 3, 1, 2))
    assert not np.array_equal(video[1], video[2])
    assert abs(len(audio) / 44100 - n / fps) < 0.05  # resampled to 44.1 kHz, the whole track


def test_prepared_shapes_labels_and_face_crops(prepared):
    out, report, messages = prepared
    manifest = json.loads((out / "manifest.json").read_text())
    assert report.ok and manifest["synthetic"] is True and (out / "SYNTHETIC.txt").is_file()
    assert manifest["counts"]["clips"] == 4 == len(report.prepared)  # 2 actors × 2 clips; the 02-… copy skipped
    assert all(c["name"].split("/")[1].startswith("01-01-") for c in manifest["clips"])
    assert manifest["missing_actors"] == list(range(3, 25))
    assert len([m for m in messages if "Actor_03" in m and "Actor_24" in m]) == 1  # one warning naming them
    for clip in manifest["clips"]:
        emotion = int(clip["name"].split("/")[1].split("-")[2])
        assert clip["label"] == emotion - 1 and clip["actor"] == int(clip["name"][6:8])
        video = np.load(out / f"{clip['name']}.video.npy")
        mfcc = np.load(out / f"{clip['name']}.mfcc.npy")
        assert video.shape == VIDEO_SHAPE and video.dtype == np.uint8
        assert mfcc.shape == MFCC_SHAPE and mfcc.dtype == np.float32
        # the crop is the face box, whose colour is the emotion's (the background is grey 60..130)
        colour = video[:, :, 40:184, 40:184].mean(axis=(0, 2, 3))
        assert np.abs(colour - np.minimum(PALETTE[clip["label"]], 243)).max() < 20, (clip, colour)


def test_mfcc_equals_librosa_on_the_decoded_audio(prepared, raw_video):
    import librosa

    out, _, _ = prepared
    name = json.loads((out / "manifest.json").read_text())["clips"][1]["name"]
    _, audio, facts = decode_clip(raw_video / f"{name}.mp4", None)
    expected = librosa.feature.mfcc(y=audio[22050:22050 + 108045], sr=44100, n_mfcc=13)
    assert facts["audio_rate"] == 48000 and expected.shape == (13, 212)
    np.testing.assert_allclose(np.load(out / f"{name}.mfcc.npy"), expected, rtol=0, atol=1e-3)


def test_audio_only_release_is_librosa_load_and_counts_stereo(tmp_path):
    import librosa
    import soundfile

    raw, out = tmp_path / "raw", tmp_path / "ravdess_audio"
    names = write_raw_release(raw, audio_only=True, actors=ACTORS)
    report, _ = _prepare(raw, out, kind="audio")
    stereo = sum(soundfile.info(raw / n).channels == 2 for n in names)
    assert report.ok and 0 < stereo < len(names)
    assert report.counts == {"clips": 4, "prepared": 4, "skipped": 0, "bad": 0, "stereo": stereo, "resampled": 4}
    for name in names:
        y, sr = librosa.load(raw / name, sr=44100, mono=True, offset=0.5, duration=2.45)
        expected = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
        np.testing.assert_allclose(np.load(out / f"{name[:-4]}.mfcc.npy"), expected, rtol=0, atol=1e-4)
        assert not (out / f"{name[:-4]}.video.npy").exists()


def test_second_run_skips_and_a_deleted_clip_is_redone(raw_video, tmp_path):
    out = tmp_path / "ravdess"
    first, _ = _prepare(raw_video, out)
    kept = out / "Actor_01/01-01-01-01-01-01-01.video.npy"
    stamp = kept.stat().st_mtime_ns
    again, _ = _prepare(raw_video, out)
    assert again.prepared == [] and sorted(again.skipped) == sorted(first.prepared)
    (out / "Actor_02/01-01-03-01-01-01-02.video.npy").unlink()
    third, _ = _prepare(raw_video, out)
    assert third.prepared == ["Actor_02/01-01-03-01-01-01-02"] and len(third.skipped) == 3
    assert kept.stat().st_mtime_ns == stamp and third.counts["clips"] == 4
    assert not list(out.rglob(".*"))  # no temporary files left behind


def _bad_release(raw: Path) -> dict[str, str]:
    """Actor_01 good (2 clips); in Actor_02 one clip per bad input. Returns file → the words its line must hold."""
    write_raw_release(raw, actors=(1,))
    folder, csvs = raw / "Actor_02", raw / "landmarks"
    folder.mkdir()

    def clip(emotion, seconds=3.1, fps=30, audio=True, csv=True):
        stem = f"01-01-{emotion:02d}-01-01-01-02"
        count = int(round(seconds * fps))
        boxes = face_track(count, (128, 72), emotion)
        frames = np.full((count, 72, 128, 3), 90, np.uint8)
        write_mp4(folder / f"{stem}.mp4", frames, fps, tone(0, seconds, 48000, 1, 0) if audio else None)
        if csv:
            (csvs / f"{stem}.csv").write_text(landmarks_csv(boxes, fps))
        return f"Actor_02/{stem}.mp4"

    bad = {clip(1, csv=False): "no landmark CSV", clip(2, seconds=2.0): "needs >= 2.95 s",
           clip(3, fps=5): "has 16 video frames, needs >= 30", clip(4, audio=False): "no audio track"}
    good = raw / "Actor_01/01-01-01-01-01-01-01.mp4"
    cut = folder / "01-01-05-01-01-01-02.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    shutil.copyfile(csvs / "01-01-01-01-01-01-01.csv", csvs / "01-01-05-01-01-01-02.csv")
    bad["Actor_02/01-01-05-01-01-01-02.mp4"] = "truncated"
    (folder / "01-01-09-01-01-01-02.mp4").write_bytes(b"")  # emotion 09 does not exist
    bad["Actor_02/01-01-09-01-01-01-02.mp4"] = "not a RAVDESS file name"
    return bad


def test_each_bad_clip_is_one_line_and_the_others_are_prepared(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "ravdess"
    bad = _bad_release(raw)
    code = _cli().main(["--raw", str(raw), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        f"warning: {raw}: partial RAVDESS release, missing {', '.join(f'Actor_{a:02d}' for a in range(3, 25))} — "
        "preparing the actors that are there (the 6-fold cross-validation needs all 24)"]
    lines = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert len(lines) == len(bad)
    for name, words in bad.items():
        line = next(line for line in lines if line.startswith(f"{name}: "))
        assert words in line, line
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["name"] for c in manifest["clips"]] == ["Actor_01/01-01-01-01-01-01-01", "Actor_01/01-01-02-01-01-01-01"]
    assert {b["name"] for b in manifest["bad"]} == set(bad)
    assert (out / "Actor_01/01-01-02-01-01-01-01.video.npy").is_file()


def test_no_release_is_one_line_with_the_download(tmp_path, capsys):
    assert _cli().main(["--raw", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err and "1188976" in err and "3255102" in err
    with pytest.raises(DataError, match="crop-from"):
        prepare(tmp_path, tmp_path / "out", crop_from="middle")


def test_crop_from_full_is_the_face_too(raw_video, tmp_path):
    report, _ = _prepare(raw_video, tmp_path / "full", crop_from="full")
    video = np.load(tmp_path / "full/Actor_01/01-01-02-01-01-01-01.video.npy")
    assert report.ok and np.abs(video[:, :, 40:184, 40:184].mean(axis=(0, 2, 3)) - PALETTE[1]).max() < 20


@pytest.mark.slow  # two spawned workers import torch and librosa (~15 s on 2 cores)
def test_two_workers_write_the_same_arrays(raw_video, prepared, tmp_path):
    out, _, _ = prepared
    report, _ = _prepare(raw_video, tmp_path / "two", workers=2)
    names = [c["name"] for c in json.loads((out / "manifest.json").read_text())["clips"]]
    assert report.ok and sorted(report.prepared) == sorted(names)
    for name in names:  # the decoder's threading and the process pool do not change a single value
        for suffix in (".video.npy", ".mfcc.npy"):
            expected = np.load(out / f"{name}{suffix}")
            np.testing.assert_array_equal(np.load(tmp_path / "two" / f"{name}{suffix}"), expected)
