"""NTU RGB+D skeletons: names, the CS protocols, the `.skeleton` parser on SYNTHETIC files in the release format."""

from __future__ import annotations

import numpy as np
import pytest

from repro.data.base import DataError
from repro.data.ntu_names import (
    CS_TEST_SUBJECTS,
    CS_TRAIN_SUBJECTS,
    PROTOCOLS,
    parse_ntu_name,
    sample_stem,
    split_names,
)
from repro.data.ntu_skeleton import (
    missing_skeleton_names,
    parse_skeleton,
    read_skeleton,
    subtract_origin,
    synthetic_frames,
    write_skeleton_file,
)


def _expected(frames) -> np.ndarray:
    """The (3, T, 25, 2) array the parser should give: first two bodies in file order, zeros elsewhere."""
    out = np.zeros((3, len(frames), 25, 2), dtype=np.float64)
    for t, bodies in enumerate(frames):
        for b, joints in enumerate(bodies[:2]):
            for j in range(25):
                out[:, t, j, b] = joints[j]
    return out


# --- names and protocols -----------------------------------------------------------------------------------------

def test_name_fields_and_label():
    name = parse_ntu_name("nturgbd_skeletons/S017C003P040R002A060.skeleton")
    assert (name.setup, name.camera, name.subject, name.replication, name.action) == (17, 3, 40, 2, 60)
    assert name.label == 59
    assert parse_ntu_name("S001C002P003R002A013_rgb.avi").label == 12
    assert sample_stem("S001C002P003R002A013_rgb.avi") == sample_stem("S001C002P003R002A013.skeleton") \
        == "S001C002P003R002A013"


@pytest.mark.parametrize("bad", ["S001C002P003R002A13.skeleton", "S001C002P003R002A061.skeleton",
                                 "S001C004P003R002A013.skeleton", "x_S001C002P003R002A013.skeleton"])
def test_malformed_name_is_one_line_error(bad):
    with pytest.raises(DataError) as err:
        parse_ntu_name(bad)
    message = str(err.value)
    assert "\n" not in message and bad in message and "S001C002P003R002A013" in message and "rename" in message


def test_cs_subjects_partition_and_protocols():
    assert len(CS_TRAIN_SUBJECTS) == len(CS_TEST_SUBJECTS) == 20
    assert sorted(CS_TRAIN_SUBJECTS + CS_TEST_SUBJECTS) == list(range(1, 41))
    mfas = PROTOCOLS["mfas"]
    assert mfas.val == (2, 5, 9, 14) and len(mfas.train) == 16 and not set(mfas.train) & set(mfas.val)
    quirk = PROTOCOLS["msaf_quirk"]
    assert quirk.train == CS_TRAIN_SUBJECTS and set(quirk.val) <= set(CS_TEST_SUBJECTS)


def test_split_names_by_subject():
    names = [f"S001C001P{s:03d}R001A001.skeleton" for s in range(1, 41)]
    splits = split_names(names)
    subjects = {k: [parse_ntu_name(n).subject for n in v] for k, v in splits.items()}
    assert subjects["val"] == [2, 5, 9, 14]
    assert subjects["test"] == list(CS_TEST_SUBJECTS)
    assert len(subjects["train"]) == 16 and 1 in subjects["train"] and 2 not in subjects["train"]
    quirk = split_names(names, "msaf_quirk")
    assert [parse_ntu_name(n).subject for n in quirk["val"]] == [3, 6, 7, 10]
    assert set(quirk["val"]) <= set(quirk["test"]) and len(quirk["train"]) == 20
    with pytest.raises(DataError, match="listed twice"):
        split_names(names + ["S001C001P001R001A001_rgb.avi"])
    with pytest.raises(DataError, match="unknown"):
        split_names(names, "cv")


# --- parser ------------------------------------------------------------------------------------------------------

def test_round_trip_two_bodies_and_empty_frames(tmp_path):
    rng = np.random.default_rng(0)
    frames = synthetic_frames(rng, num_frames=12, num_bodies=2, empty_frames=(0, 5))
    frames[7] = frames[7][:1]  # the second body leaves for one frame
    path = write_skeleton_file(tmp_path / "S001C001P001R001A050.skeleton", frames)
    parsed = parse_skeleton(path)
    assert parsed.xyz.shape == (3, 12, 25, 2) and parsed.xyz.dtype == np.float32
    np.testing.assert_allclose(parsed.xyz, _expected(frames), rtol=1e-6, atol=1e-6)  # 7 significant digits
    assert parsed.bodies.tolist() == [0, 2, 2, 2, 2, 0, 2, 1, 2, 2, 2, 2]
    assert not parsed.xyz[:, [0, 5]].any() and not parsed.xyz[:, 7, :, 1].any()
    assert parsed.nan_count == 0 and parsed.dropped_bodies == 0 and not parsed.is_empty


def test_third_body_dropped_and_nan_counted(tmp_path):
    rng = np.random.default_rng(1)
    frames = synthetic_frames(rng, num_frames=3, num_bodies=3)
    frames[1][0] = frames[1][0].copy()
    frames[1][0][4, 2] = np.nan
    parsed = parse_skeleton(write_skeleton_file(tmp_path / "a.skeleton", frames))
    assert parsed.dropped_bodies == 3 and parsed.nan_count == 1 and parsed.xyz[2, 1, 4, 0] == 0.0
    expected = _expected(frames)
    expected[2, 1, 4, 0] = 0.0
    np.testing.assert_allclose(parsed.xyz, expected, rtol=1e-6, atol=1e-6)


def test_missing_skeleton_samples_listed(tmp_path):
    rng = np.random.default_rng(2)
    parsed = {}
    for stem, empty in (("S001C001P001R001A001", ()), ("S001C001P001R001A002", range(4)),
                        ("S001C001P001R001A003", (1,))):
        frames = synthetic_frames(rng, num_frames=4, num_bodies=1, empty_frames=empty)
        parsed[stem] = parse_skeleton(write_skeleton_file(tmp_path / f"{stem}.skeleton", frames))
    empty_file = tmp_path / "S001C001P001R001A004.skeleton"
    empty_file.write_text("0\n")
    parsed["S001C001P001R001A004"] = parse_skeleton(empty_file)
    assert missing_skeleton_names(parsed) == ["S001C001P001R001A002", "S001C001P001R001A004"]


def _valid_lines(tmp_path) -> list[str]:
    frames = synthetic_frames(np.random.default_rng(3), num_frames=2, num_bodies=1)
    return write_skeleton_file(tmp_path / "ok.skeleton", frames).read_text().splitlines()


@pytest.mark.parametrize("edit, line_no, words", [
    (lambda ls: ls[:20], 21, "truncated"),  # frame 0's joints end early
    (lambda ls: ls[:3] + ["24"] + ls[4:28] + ls[29:], 4, "24 joints"),  # body 0 of frame 0: 24 joints (count on line 4)
    (lambda ls: ls[:9] + [ls[9].replace(ls[9].split()[1], "abc", 1)] + ls[10:], 10, "non-numeric"),
    (lambda ls: ls[:9] + [" ".join(ls[9].split()[:11])] + ls[10:], 10, "expected 12 values"),
    (lambda ls: ["x"] + ls[1:], 1, "frame count"),
    (lambda ls: ["1"] + ls[1:], 30, "after the last"),
])
def test_bad_file_is_one_line_error_with_line_number(tmp_path, edit, line_no, words):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("\n".join(edit(_valid_lines(tmp_path))) + "\n")
    with pytest.raises(DataError) as err:
        parse_skeleton(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and f"line {line_no}:" in message and words in message


# --- origin ------------------------------------------------------------------------------------------------------

def test_origin_subtraction_default_and_quirk(tmp_path):
    frames = synthetic_frames(np.random.default_rng(4), num_frames=5, num_bodies=2, empty_frames=(2,))
    frames[3] = frames[3][:1]  # body 1 absent at frame 3
    xyz = read_skeleton(write_skeleton_file(tmp_path / "a.skeleton", frames))
    origin = xyz[:, :, 1, 0]
    out = subtract_origin(xyz)
    np.testing.assert_allclose(out[:, 0, :, 1], xyz[:, 0, :, 1] - origin[:, 0, None], atol=1e-6)
    assert np.abs(out[:, :, 1, 0]).max() == 0.0  # the origin joint itself becomes 0 where body 0 is present
    assert not out[:, 3, :, 1].any() and not out[:, 2].any()  # absent stays zero
    quirk = subtract_origin(xyz, absent_becomes_minus_origin=True)
    np.testing.assert_allclose(quirk[:, 3, :, 1], np.broadcast_to(-origin[:, 3, None], (3, 25)), atol=1e-6)
    np.testing.assert_array_equal(quirk[:, [0, 1, 4]], out[:, [0, 1, 4]])  # identical where both bodies exist


def test_windows_line_endings_parse_alike(tmp_path):
    frames = synthetic_frames(np.random.default_rng(5), num_frames=3, num_bodies=1, empty_frames=(1,))
    unix = write_skeleton_file(tmp_path / "unix.skeleton", frames)
    dos = tmp_path / "dos.skeleton"
    dos.write_bytes(unix.read_bytes().replace(b"\n", b"\r\n"))
    np.testing.assert_array_equal(read_skeleton(dos), read_skeleton(unix))
