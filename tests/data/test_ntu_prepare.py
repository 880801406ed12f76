"""scripts/prepare_ntu.py / repro.data.ntu_prepare on SYNTHETIC release videos (named as the release's 1920×1080
``_rgb.avi`` files but 96×54, `repro.data.fixtures_ntu.write_release_rgb`): 256×256 outputs the reader decodes,
every frame kept, resumable and atomic, failures reported by name while the rest go on, N worker processes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from repro.data.base import DataError
from repro.data.fixtures_ntu import RGB_PATTERNS, write_release_rgb
from repro.data.ntu_prepare import output_path, prepare
from repro.data.ntu_rgb import RGB_DIR, NTUClips
from tests.conftest import load_script

STEMS = ["S001C001P001R001A001", "S001C002P002R002A002", "S002C003P003R001A003"]


@pytest.fixture
def release(tmp_path) -> Path:
    """The layout of the unzipped release: <root>/nturgbd_rgb/<stem>_rgb.avi."""
    src = tmp_path / "ntu" / "nturgbd_rgb"
    write_release_rgb(src, STEMS, size=(96, 54), frames=12)
    return src


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_outputs_are_256_square_every_frame_and_read_by_the_reader(release):
    root = release.parent
    report = prepare(release, root)
    assert report.ok and sorted(report.prepared) == STEMS and report.skipped == []
    for stem in STEMS:
        out = output_path(root, stem)
        assert out == root / RGB_DIR / f"{stem}_rgb.avi"
        frames = _frames(out)
        assert len(frames) == 12 and frames[0].shape == (256, 256, 3)  # one output frame per input frame
        with av.open(str(out)) as c:
            assert c.streams.video[0].codec_context.name == "mpeg4" and c.streams.video[0].average_rate == 30
        clip = NTUClips([out], frames=8, frame_size=224)[0]
        assert clip.shape == (8, 3, 224, 224)
        # the action's blob colour survives (squeezed 16:9 → 1:1, not cropped): the centre pixel's colour
        colour = np.array(RGB_PATTERNS[int(stem[-3:])][0])
        assert np.abs(clip[0, :, 112, 112].astype(int) - colour).max() < 40
    assert not list((root / RGB_DIR).glob(".*"))  # no temporary files left


def test_resumable_skips_done_files_and_ignores_its_own_outputs(release):
    root = release.parent
    prepare(release, root)
    done = output_path(root, STEMS[0])
    before = done.stat().st_mtime_ns
    stale = root / RGB_DIR / f".{STEMS[1]}_rgb.avi.x1y2.avi"
    stale.write_bytes(b"half a file")  # a killed run's temporary file
    output_path(root, STEMS[1]).unlink()
    again = prepare(release, root)  # src = nturgbd_rgb holds avi_256x256_30/*_rgb.avi: not taken as sources
    assert again.prepared == [STEMS[1]] and sorted(again.skipped) == sorted([STEMS[0], STEMS[2]])
    assert again.failed == [] and done.stat().st_mtime_ns == before
    assert len(_frames(output_path(root, STEMS[1]))) == 12 and not stale.exists()


def test_bad_files_are_reported_by_name_and_the_rest_go_on(release):
    root = release.parent
    broken = release / "S003C001P004R001A004_rgb.avi"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00AVI truncated" * 20)
    foreign = release / "sub" / "clip_rgb.avi"
    foreign.parent.mkdir()
    foreign.write_bytes(b"x")
    report = prepare(release, root)
    assert sorted(report.prepared) == STEMS
    failed = dict(report.failed)
    assert set(failed) == {str(broken), str(foreign)}
    assert "cannot" in failed[str(broken)] and "\n" not in failed[str(broken)]
    assert "not an NTU RGB+D 60 sample name" in failed[str(foreign)]
    assert not output_path(root, "S003C001P004R001A004").exists()
    assert not list((root / RGB_DIR).glob(".*"))


def test_two_workers_give_the_same_files(release, tmp_path):
    one = prepare(release, tmp_path / "one", workers=1)
    two = prepare(release, tmp_path / "two", workers=2)
    assert sorted(one.prepared) == sorted(two.prepared) == STEMS
    for stem in STEMS:
        a, b = _frames(output_path(tmp_path / "one", stem)), _frames(output_path(tmp_path / "two", stem))
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_script_exit_codes(release, tmp_path, capsys):
    script = load_script("prepare_ntu")
    root = release.parent
    assert script.main(["--root", str(root)]) == 0  # default --src: <root>/nturgbd_rgb
    assert "3 videos prepared now" in capsys.readouterr().out
    (release / "S003C001P004R001A004_rgb.avi").write_bytes(b"not a video")
    assert script.main(["--root", str(root)]) == 1
    captured = capsys.readouterr()
    assert "3 already done, 1 failed" in captured.out and "S003C001P004R001A004_rgb.avi" in captured.err
    assert script.main(["--root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(tmp_path / "nowhere" / "nturgbd_rgb") in err


def test_missing_or_empty_source_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="missing folder"):
        prepare(tmp_path / "none", tmp_path / "ntu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no \\*_rgb.avi files"):
        prepare(tmp_path / "empty", tmp_path / "ntu")
