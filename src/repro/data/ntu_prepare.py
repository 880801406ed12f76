"""Preparation of NTU RGB+D 60's RGB videos for ``data=ntu`` (IMPLEMENTATION-NOTES §1.4; the authors' README: the
videos "resized with ffmpeg to 256×256, 30 fps", read from ``NTU/nturgbd_rgb/avi_256x256_30/``).

The release's ``nturgbd_rgb/<stem>_rgb.avi`` (1920×1080, 30 fps; any sub-folder of the source) →
``<root>/nturgbd_rgb/avi_256x256_30/<stem>_rgb.avi``: every frame decoded in order with PyAV, scaled to 256×256 with
swscale's bicubic filter (ffmpeg's ``scale`` default, so what an ``ffmpeg -i in.avi -vf scale=256:256 out.avi``
does: the 16:9 frame is squeezed, not cropped), re-encoded as MPEG-4 part 2 (ffmpeg's default for .avi) at a fixed
quantiser (``qscale``, 3 by default) with 30 frames per second of video time, one output frame per input frame (the
release is 30 fps; nothing is dropped or duplicated).

Resumable: a file whose output exists is skipped; an output is written to a temporary name beside it and renamed
when complete (`repro.files.atomic_write`), so an interrupted run leaves no half file that a later run would skip
(a killed run's hidden temporary file is deleted when that video is prepared again).
Files go to `workers` processes (one file each at a time, one decoder thread each). A file that cannot be decoded
(or has no frame, or a name that is not an NTU sample) is reported with its name and reason; the others go on.

Why per-sample avi decoding and not a frame store: docs/ntu.md (measured; scripts/bench_ntu_data.py).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from repro.data.base import DataError
from repro.data.ntu_names import parse_ntu_name
from repro.data.ntu_rgb import PREPARED_SIZE, RGB_DIR, RGB_SUFFIX, av_reason
from repro.files import atomic_write

FPS = 30
QSCALE = 3  # MPEG-4 quantiser (2 = near lossless, 31 = worst): ~45 kB per second of 256² video at 3
RELEASE_HINT = ("download nturgbd_rgb_s001.zip … s017.zip of NTU RGB+D 60 (rose1.ntu.edu.sg/dataset/actionRecognition)"
                " and unzip them so one folder holds the *_rgb.avi files")


@dataclass
class Report:
    """What one `prepare` run did: outputs written now, outputs already there, and the files that failed."""

    out: Path
    prepared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        rate = len(self.prepared) / self.seconds if self.seconds > 0 and self.prepared else 0.0
        return (f"{self.out}: {len(self.prepared)} videos prepared now, {len(self.skipped)} already done, "
                f"{len(self.failed)} failed ({self.seconds:.1f} s, {rate:.2f} files/s)")


def output_path(root: Path, stem: str) -> Path:
    return Path(root) / RGB_DIR / f"{stem}{RGB_SUFFIX}"


def resize_video(source: Path, target: Path, size: int = PREPARED_SIZE, qscale: int = QSCALE) -> int:
    """Write `target` (atomically): `source`'s frames scaled to size×size, MPEG-4 avi at 30 fps. Returns the number
    of frames; an unreadable source or one without frames is a DataError naming it (nothing is written)."""
    import av

    def write(f) -> None:
        with av.open(str(source)) as inp:
            if not inp.streams.video:
                raise DataError(f"{source}: no video stream")
            stream = inp.streams.video[0]
            stream.codec_context.thread_count = 1  # one decoder thread per worker process
            with av.open(f, "w", format="avi") as out:
                video = out.add_stream("mpeg4", rate=FPS)
                video.width = video.height = size
                video.pix_fmt = "yuv420p"
                video.options = {"qscale": str(int(qscale))}
                for k, frame in enumerate(inp.decode(stream)):
                    small = frame.reformat(width=size, height=size, format="yuv420p", interpolation="BICUBIC")
                    small.pts, small.time_base = k, Fraction(1, FPS)
                    out.mux(video.encode(small))
                    counted[0] = k + 1
                if counted[0] == 0:
                    raise DataError(f"{source}: no video frames")
                out.mux(video.encode())

    counted = [0]
    try:
        atomic_write(target, write, binary=True, suffix=".avi")
    except DataError as err:
        raise DataError(f"cannot prepare {err}; fix: download that file of the release again") from None
    except (av.FFmpegError, OSError, ValueError) as err:
        raise DataError(f"cannot decode {source} ({av_reason(err)}): expected a video of the NTU RGB+D release; "
                        "fix: download that file again (compare its size with the release's)") from None
    return counted[0]


def _work(job: tuple[str, str, int, int]) -> tuple[str, str | None, float]:
    """One file in a worker: (source, error or None, seconds)."""
    source, target, size, qscale = job
    start = time.perf_counter()
    try:
        resize_video(Path(source), Path(target), size, qscale)
        return source, None, time.perf_counter() - start
    except DataError as err:
        return source, str(err), time.perf_counter() - start


def find_sources(src: Path, out_dir: Path) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """Sample stem → release file (``*_rgb.avi`` under `src`, the output folder excluded), and the files that
    cannot be used (a name that is not an NTU-60 sample, a sample found twice) with their reasons."""
    sources: dict[str, Path] = {}
    bad: list[tuple[str, str]] = []
    out_dir = out_dir.resolve()
    for p in sorted(Path(src).rglob(f"*{RGB_SUFFIX}")):
        if out_dir in p.resolve().parents:
            continue
        try:
            stem = parse_ntu_name(p).stem
        except DataError as err:
            bad.append((str(p), str(err)))
            continue
        if stem in sources:
            bad.append((str(p), f"sample {stem} found twice (also {sources[stem]}); keep one copy"))
            continue
        sources[stem] = p
    return sources, bad


def _run(jobs: list, workers: int) -> Iterable[tuple[str, str | None, float]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_work, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_work, jobs)


def prepare(src: Path, root: Path, workers: int = 1, size: int = PREPARED_SIZE, qscale: int = QSCALE) -> Report:
    """Resize every release video under `src` not yet done into ``<root>/nturgbd_rgb/avi_256x256_30/``."""
    src, root = Path(src), Path(root)
    out_dir = root / RGB_DIR
    if not src.is_dir():
        raise DataError(f"missing folder {src}: expected the release's *{RGB_SUFFIX} files; fix: {RELEASE_HINT}")
    sources, bad = find_sources(src, out_dir)
    if not sources and not bad:
        raise DataError(f"{src} holds no *{RGB_SUFFIX} files; fix: {RELEASE_HINT}")
    report = Report(out_dir, failed=list(bad))
    todo = []
    for stem, source in sources.items():
        target = output_path(root, stem)
        if target.is_file():
            report.skipped.append(stem)
        else:
            for stale in target.parent.glob(f".{target.name}.*"):  # an interrupted run's temporary file
                stale.unlink(missing_ok=True)
            todo.append((str(source), str(target), int(size), int(qscale)))
    stem_of = {j[0]: parse_ntu_name(j[0]).stem for j in todo}
    start = time.perf_counter()
    for source, error, _ in _run(todo, max(1, int(workers))):
        if error is None:
            report.prepared.append(stem_of[source])
        else:
            report.failed.append((source, error))
    report.seconds = time.perf_counter() - start
    return report


def default_root(data_dir: str | Path | None = None) -> Path:
    """``${paths.data_dir}/ntu``: paths.data_dir as configs/paths/default.yaml resolves it (REPRO_DATA_DIR, else
    ``${REPRO_ROOT:-.}/data``)."""
    if data_dir is None:
        data_dir = os.environ.get("REPRO_DATA_DIR") or Path(os.environ.get("REPRO_ROOT", ".")) / "data"
    return Path(data_dir) / "ntu"
