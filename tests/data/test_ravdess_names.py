"""RAVDESS file names, MSAF's clip selection (60 full-AV speech clips per actor) and its 6-fold CV by actor.

The name lists are SYNTHETIC: every combination the release documents (RAVDESS README, zenodo 1188976), no files.
"""

from __future__ import annotations

import itertools

import pytest

from repro.data.base import DataError
from repro.data.ravdess_names import (
    ACTORS,
    AUDIO_ONLY,
    actor_folds,
    parse_name,
    release_names,
    select_clips,
    split_actors,
    split_clips,
    validation_actors,
)


def speech_names(modality: int, actors=ACTORS, ext: str = "mp4") -> list[str]:
    """SYNTHETIC: every speech file name of one modality in the release (neutral has normal intensity only)."""
    names = []
    for actor, emotion, intensity, statement, repetition in itertools.product(
        actors, range(1, 9), (1, 2), (1, 2), (1, 2)
    ):
        if emotion == 1 and intensity == 2:
            continue
        names.append(f"Actor_{actor:02d}/{modality:02d}-01-{emotion:02d}-{intensity:02d}-"
                     f"{statement:02d}-{repetition:02d}-{actor:02d}.{ext}")
    return names


def video_speech_release(actors=ACTORS) -> list[str]:
    """SYNTHETIC: the names in Video_Speech_Actor_XX.zip — full-AV (01) and video-only (02) copies of each clip."""
    return speech_names(1, actors) + speech_names(2, actors)


# -- parsing -------------------------------------------------------------------------------------------------------
def test_parses_the_documented_examples():
    doc = parse_name("02-01-06-01-02-01-12.mp4")  # README: video-only, speech, fearful, normal, "dogs", 1st, actor 12
    assert (doc.modality, doc.vocal_channel, doc.emotion, doc.intensity, doc.statement, doc.repetition, doc.actor) \
        == (2, 1, 6, 1, 2, 1, 12)
    assert (doc.label, doc.emotion_name, doc.gender) == (5, "fearful", "female")
    audio = parse_name("03-01-06-01-02-01-12.wav")  # the audio-only README's example
    assert (audio.modality, audio.stem) == (3, "03-01-06-01-02-01-12")
    first = parse_name("Actor_01/01-01-01-01-01-01-01.mp4")
    assert (first.label, first.emotion_name, first.gender, first.actor) == (0, "neutral", "male", 1)
    last = parse_name("Actor_24/01-01-08-02-02-02-24.mp4")
    assert (last.label, last.emotion_name, last.intensity, last.gender) == (7, "surprised", 2, "female")


@pytest.mark.parametrize(("name", "why"), [
    ("01-01-06-01-02-01.mp4", "seven dash-separated"),
    ("1-01-06-01-02-01-12.mp4", "seven dash-separated"),
    ("notes.txt", "seven dash-separated"),
    ("04-01-06-01-02-01-12.mp4", "modality 04"),
    ("01-01-09-01-02-01-12.mp4", "emotion 09"),
    ("01-01-06-03-02-01-12.mp4", "intensity 03"),
    ("01-01-06-01-02-01-25.mp4", "actor 25"),
    ("01-01-01-02-01-01-01.mp4", "neutral"),
    ("Actor_05/01-01-06-01-02-01-12.mp4", "Actor_05 but names actor 12"),
])
def test_malformed_name_is_one_line_naming_file_and_pattern(name, why):
    with pytest.raises(DataError) as err:
        parse_name(name)
    message = str(err.value)
    assert message.startswith(name) and why in message
    assert "MM-VV-EE-II-SS-RR-AA.ext" in message and "\n" not in message


# -- selection -----------------------------------------------------------------------------------------------------
def test_selection_keeps_60_full_av_speech_clips_per_actor():
    release = video_speech_release()
    assert len(release) == 2880
    clips = select_clips(release)
    assert len(clips) == 1440 and all(c.split("/")[1].startswith("01-01-") for c in clips)
    parsed = [parse_name(c) for c in clips]
    for actor in ACTORS:
        assert sum(p.actor == actor for p in parsed) == 60
    labels = [p.label for p in parsed]
    assert [labels.count(k) for k in range(8)] == [96] + [192] * 7  # neutral: 4 per actor, others 8
    assert [p.actor for p in parsed] == sorted(p.actor for p in parsed)  # grouped by actor


def test_selection_of_the_audio_only_release_and_song_files_skipped():
    song = ["Actor_03/01-02-03-01-01-01-03.mp4"]  # SYNTHETIC song clip: not MSAF's
    assert select_clips(video_speech_release() + song) == select_clips(video_speech_release())
    audio = select_clips(speech_names(3, ext="wav"), modality=AUDIO_ONLY)
    assert len(audio) == 1440 and all(a.endswith(".wav") for a in audio)


def test_selection_refuses_a_malformed_name_in_the_list():
    with pytest.raises(DataError, match="Actor_01/readme.txt"):
        select_clips(speech_names(1, actors=[1]) + ["Actor_01/readme.txt"])


def test_release_names_lists_actor_folders(tmp_path):
    for name in speech_names(1, actors=[2])[:3] + ["Actor_02/01-01-01-01-01-01-02.csv"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")  # SYNTHETIC empty files: only their names are read
    assert release_names(tmp_path) == sorted(speech_names(1, actors=[2])[:3])


# -- folds ---------------------------------------------------------------------------------------------------------
def test_six_folds_of_four_consecutive_actors_gender_balanced():
    folds = actor_folds(ACTORS)
    assert folds == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [17, 18, 19, 20],
                     [21, 22, 23, 24]]
    assert sorted(a for f in folds for a in f) == list(ACTORS)  # disjoint, covering all 24
    for fold in folds:
        assert sum(a % 2 for a in fold) == 2  # 2 male (odd) + 2 female (even)
    # The authors' rule: sorted "Actor_XX" folders, fold i = sorted[4i:4i+4]; the order of the input is irrelevant.
    folders = sorted(f"Actor_{a:02d}" for a in reversed(ACTORS))
    assert [[int(f[6:]) for f in folders[4 * i:4 * i + 4]] for i in range(6)] == folds
    assert actor_folds(reversed(ACTORS)) == folds


def test_folds_need_all_24_actors():
    with pytest.raises(DataError, match="missing Actor_05, Actor_17") as err:
        actor_folds([a for a in ACTORS if a not in (5, 17)])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("fold", range(6))
def test_validation_actors_never_test_actors_and_gender_balanced(fold):
    test = actor_folds(ACTORS)[fold]
    val = validation_actors(ACTORS, fold)
    assert len(val) == 4 and not set(val) & set(test)
    assert sorted(a % 2 for a in val) == [0, 0, 1, 1]
    split = split_actors(ACTORS, fold, select_on="val")
    assert (len(split["train"]), split["val"], split["test"]) == (16, val, test)
    assert not set(split["train"]) & (set(val) | set(test))


def test_every_actor_validates_once_over_the_folds():
    assert sorted(a for k in range(6) for a in validation_actors(ACTORS, k)) == list(ACTORS)


def test_split_clips_for_both_protocols():
    clips = select_clips(video_speech_release())
    paper = split_clips(clips, fold=2)
    assert {k: len(v) for k, v in paper.items()} == {"train": 1200, "val": 240, "test": 240}
    assert paper["val"] == paper["test"]  # the paper selects on the test fold
    assert {parse_name(c).actor for c in paper["test"]} == {9, 10, 11, 12}
    held_out = split_clips(clips, fold=2, select_on="val")
    assert {k: len(v) for k, v in held_out.items()} == {"train": 960, "val": 240, "test": 240}
    assert {parse_name(c).actor for c in held_out["val"]} == {13, 14, 15, 16}
    assert sorted(held_out["train"] + held_out["val"] + held_out["test"]) == sorted(clips)


def test_bad_fold_or_protocol_is_one_line_error():
    with pytest.raises(DataError, match=r"fold=<0\.\.5>"):
        split_actors(ACTORS, 6)
    with pytest.raises(DataError, match="protocol.select_on='dev'"):
        split_actors(ACTORS, 0, select_on="dev")
