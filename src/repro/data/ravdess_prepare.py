"""Prepare RAVDESS once (`scripts/prepare_ravdess.py`): face crops and MFCCs per clip, as MSAF's ``dataset_prep.py``.

Input (the release as users unzip it; IMPLEMENTATION-NOTES §1.2): ``<raw>/Actor_XX/01-01-…mp4`` (1280×720, 30 fps,
AAC audio; ``02-…`` video-only copies are skipped as MSAF does) and the OpenFace CSVs of
``FacialTracking_Actors_01-24.zip`` (``<stem>.csv``, one per clip, found anywhere under ``<raw>/landmarks`` or the
folder given with ``--landmarks``: flat, as the authors' download script unzips them, or in sub-folders). The
audio-only release (``--audio-only``): ``<raw>/Actor_XX/03-01-…wav`` (48 kHz, some files stereo).

What each clip becomes (the authors' steps, read in ``ravdess/video_utils.py`` and ``dataset_prep.py``):

- Frames: 30 times ``arange(0, dur, dur/30)`` (padded with ``dur`` / cut to 30) map to frame index
  ``int(fps·t + 1e-5)`` (moviepy's ``get_frame``); the video is decoded ONCE, IN ORDER (PyAV; never seek: slower and
  it can return wrong frames, ENVIRONMENT.md) and those frames are kept (an index past the end repeats the last
  frame, as moviepy does).
- Face box: 30 CSV rows ``ceil(arange(0, rows, rows/30))``; the 68 landmarks ``x_0..x_67`` / ``y_0..y_67`` (found
  by header name; the authors' fixed columns 298–365 / 366–433 when the header has no such names), divided by the
  video's width / height (the authors divide by the constants 1280 / 720, which is the same on the release and
  lets the SYNTHETIC fixture use small frames); box = min / max, truncated to ints as the authors.
- ``crop_from="resized"`` (default, the authors' way, a QUIRK): the whole frame is first resized to 224×224
  (bicubic swscale, as moviepy's ``target_resolution`` asks ffmpeg), the box is cut from that squeezed frame and
  resized back to 224×224 (bilinear, as ``cv2.resize``) — so a face of ~60×80 px is upsampled and the aspect ratio
  is not kept. ``crop_from="full"``: the box is cut from the full-resolution frame and resized to 224×224 with
  antialiasing (sharper faces; not the paper's).
- Stored as uint8 RGB ``(30, 3, 224, 224)`` — no JPEG round trip (the authors wrote JPEGs; their BGR read-back is
  the reader's ``quirk_bgr`` switch).
- Audio: the mp4's audio stream decoded with PyAV and resampled by swresample to 44.1 kHz (the authors' moviepy
  wrote a 44.1 kHz wav with ffmpeg), averaged to mono (librosa's ``to_mono``), samples
  ``[int(0.5·44100), +int(2.45·44100))`` (``librosa.load(offset=0.5, duration=2.45)``), then
  ``librosa.feature.mfcc(n_mfcc=13)`` → (13, 212) float32. (The authors' 16-bit wav adds a quantisation of
  ~3e-5 that is not reproduced.) Audio-only release: ``librosa.load(wav, sr=44100, mono=True, offset=0.5,
  duration=2.45)`` exactly; stereo and non-44.1 kHz files are handled (mixed down / resampled) and counted.

Prepared layout (``out``)::

    manifest.json                      written last, atomically: clips (name, actor, label), counts, bad clips
    SYNTHETIC.txt                      only when the raw folder holds one (the fixture)
    Actor_XX/<stem>.video.npy          (30, 3, 224, 224) uint8 RGB   (not in the audio-only layout)
    Actor_XX/<stem>.mfcc.npy           (13, 212) float32
    Actor_XX/<stem>.json               per-clip facts (duration, frames, audio channels / rate); written last, so
                                       its presence marks the clip done (resume skips it)

Every file is written to a temporary name and renamed (``os.replace``). A bad clip (missing landmark CSV, shorter
than 30 frames or 2.95 s, no audio track, truncated or undecodable) is reported by name with a one-line reason and
the others are still prepared.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from repro.data.base import DataError, has_synthetic_mark
from repro.data.ravdess_names import AUDIO_ONLY, FULL_AV, missing_actors, parse_name, release_names, select_clips
from repro.files import atomic_save_npy, atomic_write_text

FRAMES = 30
FRAME_SIZE = 224
SAMPLE_RATE = 44100
AUDIO_OFFSET = 0.5  # s, librosa.load(offset=0.5)
AUDIO_DURATION = 2.45  # s, librosa.load(duration=2.45)
MIN_DURATION = AUDIO_OFFSET + AUDIO_DURATION  # 2.95 s: a shorter clip has no full MFCC window
N_MFCC = 13
MFCC_FRAMES = 212  # 1 + int(2.45 · 44100) // 512 (librosa's default hop)
MFCC_SHAPE = (N_MFCC, MFCC_FRAMES)
VIDEO_SHAPE = (FRAMES, 3, FRAME_SIZE, FRAME_SIZE)
LANDMARKS = 68
# The authors' fixed CSV columns (0-based slices of their `data[t, 297:365]` and `data[t, 365:433]`), used only when
# the header does not name x_0..x_67 / y_0..y_67.
LANDMARK_X_COLUMNS = slice(297, 365)
LANDMARK_Y_COLUMNS = slice(365, 433)
MANIFEST = "manifest.json"
PREPARED_FORMAT = "repro-ravdess-prepared/1"
CROP_FROM = ("resized", "full")
KINDS = ("video_audio", "audio")
VIDEO_SUFFIX, MFCC_SUFFIX, INFO_SUFFIX = ".video.npy", ".mfcc.npy", ".json"
DOWNLOAD_HINT = ("download Video_Speech_Actor_01..24.zip (zenodo.org/record/1188976) and "
                 "FacialTracking_Actors_01-24.zip (zenodo.org/record/3255102), unzip both into one folder (the CSVs "
                 "under landmarks/), then run "
                 "`python scripts/prepare_ravdess.py --raw <that folder>`")
AUDIO_DOWNLOAD_HINT = ("download Audio_Speech_Actors_01-24.zip (zenodo.org/record/1188976), unzip it, then run "
                       "`python scripts/prepare_ravdess.py --raw <that folder> --audio-only`")


class ClipError(Exception):
    """One clip cannot be prepared; the message is its one-line reason."""


@dataclass(frozen=True)
class Clip:
    """One clip to prepare: `name` = ``Actor_XX/<stem>`` (the id in the manifest), its source and landmark files."""

    name: str
    source: Path
    landmarks: Path | None = None

    @property
    def stem(self) -> str:
        return self.name.split("/", 1)[1]


@dataclass
class Report:
    """What a preparation run did. `bad`: (clip name, one-line reason); `counts`: prepared / skipped / audio facts."""

    out: Path
    kind: str
    prepared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    missing_actors: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.bad


# ---------------------------------------------------------------------------------------------------------------
# the authors' sampling (pure functions, tested against their formulas)


def frame_times(duration: float, n: int = FRAMES) -> list[float]:
    """``arange(0, dur, dur/n)``, padded with ``dur`` when float rounding leaves n − 1, cut to n (video_utils.py)."""
    times = [float(t) for t in np.arange(0, duration, duration / n)]
    if len(times) < n:
        times.append(float(duration))
    return times[:n]


def frame_indices(duration: float, fps: float, n: int = FRAMES) -> list[int]:
    """The frame each time of `frame_times` selects: moviepy's ``get_frame(t)`` reads frame ``int(fps·t + 1e-5)``."""
    return [int(fps * t + 1e-5) for t in frame_times(duration, n)]


def landmark_rows(n_rows: int, n: int = FRAMES) -> list[int]:
    """The CSV rows the authors read: ``ceil`` of ``arange(0, rows, rows/n)``, padded with the last row, cut to n."""
    rows = [int(np.ceil(t)) for t in np.arange(0, n_rows, n_rows / n)]
    if len(rows) < n:
        rows.append(n_rows - 1)
    return [min(r, n_rows - 1) for r in rows[:n]]


def read_landmarks(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 68 2D landmarks (x, y in pixels) of every row of an OpenFace CSV: two (rows, 68) arrays."""
    try:
        with open(path) as f:
            header = [h.strip() for h in f.readline().split(",")]
        names = {h: i for i, h in enumerate(header)}
        x_names, y_names = [f"x_{i}" for i in range(LANDMARKS)], [f"y_{i}" for i in range(LANDMARKS)]
        if all(n in names for n in x_names + y_names):
            x_cols, y_cols = [names[n] for n in x_names], [names[n] for n in y_names]
        else:  # no named columns: the authors' positions
            x_cols = list(range(LANDMARK_X_COLUMNS.start, LANDMARK_X_COLUMNS.stop))
            y_cols = list(range(LANDMARK_Y_COLUMNS.start, LANDMARK_Y_COLUMNS.stop))
        data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=x_cols + y_cols, ndmin=2, dtype=np.float64)
    except (OSError, ValueError, IndexError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ClipError(f"landmark CSV {path} is not an OpenFace CSV with x_0..x_67, y_0..y_67 ({reason})") from None
    if len(data) == 0:
        raise ClipError(f"landmark CSV {path} has no rows")
    return data[:, :LANDMARKS], data[:, LANDMARKS:]


def face_boxes(xs: np.ndarray, ys: np.ndarray, norm: tuple[float, float], size: tuple[int, int],
               n: int = FRAMES) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) per selected frame in an image of `size` = (width, height): landmarks divided by
    `norm` = (video width, height), scaled to `size`, min / max truncated to ints (the authors'), clamped inside."""
    width, height = size
    boxes = []
    for r in landmark_rows(len(xs), n):
        x, y = xs[r] / norm[0], ys[r] / norm[1]
        top, bottom = int(y.min() * height), int(y.max() * height)
        left, right = int(x.min() * width), int(x.max() * width)
        boxes.append((max(top, 0), min(bottom, height), max(left, 0), min(right, width)))
    return boxes


def _resize_crop(crop: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 → (3, 224, 224) uint8 with Pillow's bilinear filter: plain bilinear when enlarging (as the
    authors' ``cv2.resize``; the default crops are ~60×80 px), antialiased when shrinking (``crop_from="full"``)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(crop)).resize((FRAME_SIZE, FRAME_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(image).transpose(2, 0, 1)


# ---------------------------------------------------------------------------------------------------------------
# decoding


def _av_reason(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def decode_clip(path: Path, boxes_of: Callable[[int, int], list[tuple[int, int, int, int]]] | None,
                crop_from: str = "resized", threads: int = 1) -> tuple[np.ndarray | None, np.ndarray, dict]:
    """Decode an mp4 once, in order: the 30 face crops (None when `boxes_of` is None) and the 44.1 kHz mono audio.

    `boxes_of(width, height)` gives the 30 face boxes in an image of that size. Returns (video (30, 3, 224, 224)
    uint8 or None, audio float32, facts). Raises `ClipError` with a one-line reason.
    """
    import av
    from av.video.reformatter import VideoReformatter

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise ClipError(f"cannot open ({_av_reason(err)}): truncated or not a video file") from None
    with container:
        if not container.streams.video:
            raise ClipError("has no video stream")
        if not container.streams.audio:
            raise ClipError("has no audio track (MSAF needs the full-AV 01-… clips, not the video-only 02-…)")
        vstream, astream = container.streams.video[0], container.streams.audio[0]
        vstream.codec_context.thread_count = threads  # 1 per worker process: --workers owns the cores
        if threads != 1:
            vstream.thread_type = "AUTO"  # one process: frame + slice threads (H.264 decodes ~2× faster on 2 cores)
        width, height = vstream.codec_context.width, vstream.codec_context.height
        duration = (container.duration / av.time_base if container.duration
                    else float((vstream.duration or 0) * vstream.time_base))
        fps = float(vstream.average_rate or vstream.guessed_rate or 0)
        if duration < MIN_DURATION:
            raise ClipError(f"lasts {duration:.2f} s, needs >= {MIN_DURATION} s (0.5 s offset + 2.45 s of audio)")
        wanted = frame_indices(duration, fps)
        boxes = boxes_of(width, height) if boxes_of else None
        by_index = {}
        for i, k in enumerate(wanted):
            by_index.setdefault(k, []).append(i)
        video = np.zeros(VIDEO_SHAPE, np.uint8) if boxes else None
        done = np.zeros(FRAMES, bool)
        reformatter = VideoReformatter()
        resampler = av.AudioResampler(format="fltp", layout=astream.layout.name, rate=SAMPLE_RATE)
        chunks, count, last = [], 0, None
        channels, rate = len(astream.layout.channels), astream.codec_context.sample_rate

        def crop(frame, slots):
            if crop_from == "resized":
                img = reformatter.reformat(frame, width=FRAME_SIZE, height=FRAME_SIZE, format="rgb24",
                                           interpolation="BICUBIC").to_ndarray()
            else:
                img = reformatter.reformat(frame, format="rgb24").to_ndarray()
            for i in slots:
                top, bottom, left, right = boxes[i]
                if bottom - top < 2 or right - left < 2:
                    raise ClipError(f"face box of frame {i} is empty ({top}:{bottom}, {left}:{right}); check the "
                                    f"landmark CSV's rows")
                video[i] = _resize_crop(img[top:bottom, left:right])
                done[i] = True

        try:
            for packet in container.demux(vstream, astream):
                for frame in packet.decode():
                    if packet.stream is astream:
                        chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
                        continue
                    if video is not None and count in by_index:
                        crop(frame, by_index[count])
                    count, last = count + 1, frame
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except av.FFmpegError as err:
            raise ClipError(f"undecodable after {count} frames ({_av_reason(err)}): truncated or corrupt") from None
        if count < FRAMES:
            raise ClipError(f"has {count} video frames, needs >= {FRAMES}")
        if video is not None and not done.all():  # times past the last frame: moviepy repeats the last one
            crop(last, [i for i in range(FRAMES) if not done[i]])
    audio = np.concatenate(chunks, axis=1).mean(axis=0) if chunks else np.zeros(0, np.float32)
    facts = {"duration": round(duration, 4), "fps": fps, "frames": count, "width": width, "height": height,
             "audio_channels": int(channels), "audio_rate": int(rate)}
    return video, audio.astype(np.float32), facts


def mfcc(audio: np.ndarray, what: str) -> np.ndarray:
    """The authors' MFCC of 44.1 kHz mono samples: the 2.45 s window after 0.5 s, 13 coefficients → (13, 212)."""
    import librosa

    start, length = int(AUDIO_OFFSET * SAMPLE_RATE), int(AUDIO_DURATION * SAMPLE_RATE)
    if len(audio) < start + length:
        raise ClipError(f"{what} is {len(audio) / SAMPLE_RATE:.2f} s long, needs >= {MIN_DURATION} s "
                        f"(0.5 s offset + 2.45 s window)")
    features = librosa.feature.mfcc(y=audio[start:start + length], sr=SAMPLE_RATE, n_mfcc=N_MFCC).astype(np.float32)
    if features.shape != MFCC_SHAPE:  # pragma: no cover - a librosa default changed
        raise ClipError(f"MFCC has shape {features.shape}, expected {MFCC_SHAPE}")
    return features


def load_wav(path: Path) -> tuple[np.ndarray, dict]:
    """The audio-only release's clip as the authors' ``librosa.load(sr=44100, mono=True, offset=0.5,
    duration=2.45)``, padded back to the window start so `mfcc` cuts the same samples; facts: channels, rate."""
    import librosa
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise ClipError(f"cannot read ({_av_reason(err)}): truncated or not a wav file") from None
    duration = info.frames / info.samplerate
    if duration < MIN_DURATION:
        raise ClipError(f"lasts {duration:.2f} s, needs >= {MIN_DURATION} s (0.5 s offset + 2.45 s window)")
    try:
        y, _ = librosa.load(str(path), sr=SAMPLE_RATE, mono=True, offset=AUDIO_OFFSET, duration=AUDIO_DURATION)
    except (RuntimeError, ValueError, soundfile.LibsndfileError) as err:
        raise ClipError(f"cannot decode ({_av_reason(err)}): truncated or corrupt") from None
    padded = np.concatenate([np.zeros(int(AUDIO_OFFSET * SAMPLE_RATE), np.float32), y])
    return padded, {"duration": round(duration, 4), "audio_channels": int(info.channels),
                    "audio_rate": int(info.samplerate)}


# ---------------------------------------------------------------------------------------------------------------
# one clip


def save_npy(path: Path, array: np.ndarray) -> None:
    atomic_save_npy(path, array)


def clip_files(out: Path, name: str, kind: str) -> dict[str, Path]:
    """The files clip `name` (``Actor_XX/<stem>``) has in a prepared folder of `kind`."""
    base = Path(out) / name
    files = {"mfcc": base.with_name(base.name + MFCC_SUFFIX), "info": base.with_name(base.name + INFO_SUFFIX)}
    if kind == "video_audio":
        files["video"] = base.with_name(base.name + VIDEO_SUFFIX)
    return files


def is_done(out: Path, name: str, kind: str) -> bool:
    """A clip is done once its info file exists (written after its arrays) and its arrays are there."""
    return all(p.is_file() for p in clip_files(out, name, kind).values())


def prepare_clip(clip: Clip, out: Path, kind: str, crop_from: str = "resized", threads: int = 1) -> dict:
    """Prepare one clip into `out` (arrays first, the info file last); returns its facts. Raises `ClipError`."""
    files = clip_files(out, clip.name, kind)
    if kind == "audio":
        audio, facts = load_wav(clip.source)
        features = mfcc(audio, "the wav")
    else:
        if clip.landmarks is None:
            raise ClipError(f"has no landmark CSV {clip.stem}.csv (FacialTracking_Actors_01-24.zip, zenodo 3255102; "
                            "give its folder with --landmarks)")
        xs, ys = read_landmarks(clip.landmarks)
        video, audio, facts = decode_clip(
            clip.source, lambda w, h: face_boxes(xs, ys, (w, h), (FRAME_SIZE, FRAME_SIZE) if crop_from == "resized"
                                                 else (w, h)), crop_from, threads)
        features = mfcc(audio, "its audio track")
        save_npy(files["video"], video)
    save_npy(files["mfcc"], features)
    parsed = parse_name(clip.source.name)
    facts = {"name": clip.name, "actor": parsed.actor, "label": parsed.label, "emotion": parsed.emotion_name, **facts}
    atomic_write_text(files["info"], json.dumps(facts) + "\n")
    return facts


def _work(job: tuple[Clip, str, str, str, int]) -> tuple[str, dict | None, str | None]:
    """Pool worker: (name, facts, None) or (name, None, one-line reason)."""
    clip, out, kind, crop_from, threads = job
    try:
        return clip.name, prepare_clip(clip, Path(out), kind, crop_from, threads), None
    except ClipError as err:
        return clip.name, None, str(err)
    except Exception as err:  # noqa: BLE001 - a clip's unexpected failure must not lose the others
        return clip.name, None, f"failed ({type(err).__name__}: {_av_reason(err)})"


# ---------------------------------------------------------------------------------------------------------------
# the release


def landmark_index(folder: Path | None) -> dict[str, Path]:
    """``<stem> → CSV`` of every CSV under `folder` (flat, as the authors unzip it, or in sub-folders)."""
    if folder is None or not Path(folder).is_dir():
        return {}
    return {p.stem: p for p in sorted(Path(folder).rglob("*.csv"))}


def find_clips(raw: Path, kind: str, landmarks: Path | None = None) -> tuple[list[Clip], list[tuple[str, str]]]:
    """MSAF's clips of the raw release (full-AV speech mp4s, or the audio-only wavs) and the malformed names."""
    suffix, modality = (".wav", AUDIO_ONLY) if kind == "audio" else (".mp4", FULL_AV)
    names, bad = [], []
    for name in release_names(raw, suffix):
        try:
            parse_name(name)
            names.append(name)
        except DataError as err:
            bad.append((name, str(err).removeprefix(f"{name}: ")))
    csvs = landmark_index(landmarks) if kind == "video_audio" else {}
    clips = []
    for name in select_clips(names, modality):
        source = Path(raw) / name
        stem = source.name[: -len(suffix)]
        clips.append(Clip(f"{source.parent.name}/{stem}", source, csvs.get(stem)))
    return clips, bad


def default_landmarks(raw: Path) -> Path:
    """``<raw>/landmarks`` (the authors' layout) when it exists, else `raw` itself (CSVs anywhere under it)."""
    return Path(raw) / "landmarks" if (Path(raw) / "landmarks").is_dir() else Path(raw)


def _progress(total: int, enabled: bool):
    """A rich progress bar (rich is a dependency), or a no-op."""
    from contextlib import nullcontext

    if not enabled or total == 0:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("preparing RAVDESS"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())


def prepare(raw: Path, out: Path, kind: str = "video_audio", landmarks: Path | None = None, workers: int = 1,
            crop_from: str = "resized", progress: bool = True) -> Report:
    """Prepare every clip of `raw` not yet done in `out`, then write the manifest. Bad clips go into the report
    (and the manifest) with their one-line reasons; a missing actor gives one warning naming it."""
    raw, out = Path(raw), Path(out)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if crop_from not in CROP_FROM:
        raise DataError(f"--crop-from {crop_from!r} is not one of {', '.join(CROP_FROM)}")
    if not raw.is_dir() or not any(raw.glob("Actor_*")):
        hint = AUDIO_DOWNLOAD_HINT if kind == "audio" else DOWNLOAD_HINT
        raise DataError(f"{raw} has no Actor_XX/ folders: expected the unzipped RAVDESS release; fix: {hint}")
    clips, bad = find_clips(raw, kind, default_landmarks(raw) if landmarks is None else landmarks)
    report = Report(out, kind, bad=list(bad))
    report.missing_actors = missing_actors({parse_name(c.source.name).actor for c in clips})
    if report.missing_actors:
        names = ", ".join(f"Actor_{a:02d}" for a in report.missing_actors)
        warnings.warn(f"{raw}: partial RAVDESS release, missing {names}"
                      " — preparing the actors that are there (the 6-fold cross-validation needs all 24)", stacklevel=2)
    out.mkdir(parents=True, exist_ok=True)
    todo = [c for c in clips if not is_done(out, c.name, kind)]
    report.skipped = [c.name for c in clips if c not in todo]
    threads = 0 if workers <= 1 else 1  # one process: let the decoder use the cores (0 = FFmpeg's auto)
    jobs = [(c, str(out), kind, crop_from, threads) for c in todo]
    with _progress(len(jobs), progress) as bar:
        task = bar.add_task("clips", total=len(jobs)) if bar is not None else None
        source = {c.name: c.source for c in todo}
        for name, _, reason in _run(jobs, workers):
            if reason is None:
                report.prepared.append(name)
            else:  # named by its file, relative to the release (Actor_XX/<file>)
                report.bad.append((f"{source[name].parent.name}/{source[name].name}", reason))
            if bar is not None:
                bar.advance(task)
    write_manifest(report, clips, raw)
    return report


def _run(jobs: list, workers: int) -> Iterable[tuple[str, dict | None, str | None]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_work, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_work, jobs)


def write_manifest(report: Report, clips: list[Clip], raw: Path) -> Path:
    """manifest.json (atomically, last): every done clip of the release with its actor and label, the counts
    (prepared, skipped, bad, stereo, resampled), the bad clips and missing actors; SYNTHETIC.txt beside it when the
    raw release is the SYNTHETIC fixture."""
    out, entries = report.out, []
    for clip in clips:
        info = clip_files(out, clip.name, report.kind)["info"]
        if is_done(out, clip.name, report.kind):
            entries.append(json.loads(info.read_text()))
    stereo = sum(e.get("audio_channels", 1) > 1 for e in entries)
    resampled = sum(e.get("audio_rate", SAMPLE_RATE) != SAMPLE_RATE for e in entries)
    report.counts = {"clips": len(entries), "prepared": len(report.prepared), "skipped": len(report.skipped),
                     "bad": len(report.bad), "stereo": stereo, "resampled": resampled}
    synthetic = has_synthetic_mark(raw)
    manifest = {
        "format": PREPARED_FORMAT, "kind": report.kind, "synthetic": synthetic,
        "video": list(VIDEO_SHAPE) if report.kind == "video_audio" else None, "mfcc": list(MFCC_SHAPE),
        "counts": report.counts, "missing_actors": report.missing_actors,
        "bad": [{"name": n, "reason": r} for n, r in report.bad],
        "clips": [{k: e[k] for k in ("name", "actor", "label")} for e in entries],
    }
    if synthetic:
        atomic_write_text(out / "SYNTHETIC.txt", "SYNTHETIC RAVDESS fixture prepared by repro.data.ravdess_prepare "
                                                  "(not real data)\n")
    path = out / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
    return path


def default_out(kind: str, data_dir: str | Path | None = None) -> Path:
    """``${paths.data_dir}/ravdess`` (or ``ravdess_audio``): paths.data_dir as configs/paths/default.yaml resolves it
    (REPRO_DATA_DIR, else ``${REPRO_ROOT:-.}/data``)."""
    if data_dir is None:
        data_dir = os.environ.get("REPRO_DATA_DIR") or Path(os.environ.get("REPRO_ROOT", ".")) / "data"
    return Path(data_dir) / ("ravdess_audio" if kind == "audio" else "ravdess")
