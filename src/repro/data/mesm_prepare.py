"""Raw IEMOCAP / CMU-MOSEI releases → MESM's processed layout (`repro.data.mesm_layout`), as the authors'
preprocessing notebooks (preprocessing/preprocess_{iemocap,mosei}.ipynb; mesm.txt §4.1; IMPLEMENTATION-NOTES §5.1).

IEMOCAP (``IEMOCAP_full_release/Session{1..5}/dialog/``): for every ``EmoEvaluation/<dialog>.txt`` the turn lines
``[start - end]<TAB>uttr_id<TAB>label<TAB>[v, a, d]`` give the times and the label, ``transcriptions/<dialog>.txt``
lines ``uttr_id [times]: text`` the text; ``wav/<dialog>.wav`` (stereo, 16 kHz) is cut at ``int(sr·t)``,
``avi/DivX/<dialog>.avi`` at ``int(fps·t)`` frames. Each frame is split into its left and right halves (360 of the
720 px each), centre-cropped to 224², and written as ``image_L_{i}.jpg`` / ``image_R_{i}.jpg`` (JPEG quality 95,
OpenCV's default); ``audio.wav`` keeps both channels, ``audio_L.wav`` / ``audio_R.wav`` one each. Only utterances
labelled with one of the 6 classes MESM uses are written (the notebook writes every utterance; the split lists only
hold these). Deviation (documented): the text is everything after the first ``:`` of the transcription line (the
notebook takes the part after the last ``:``, which cuts sentences that contain one).

CMU-MOSEI (``<raw>/Audio/WAV_16000/<video>.wav``, ``Videos/Full/Combined/<video>.mp4``,
``Transcript/Combined/<video>.txt``, ``Labels/*.csv``): labels from the MTurk batch CSVs — per ``<video>_<clip>``
(``Input.VIDEO_ID``'s last path part, ``Input.CLIP``) the **sum over annotators** of ``Answer.anger``,
``Answer.disgust``, ``Answer.fear``, ``Answer.happiness``, ``Answer.sadness``, ``Answer.surprise``, then > 0; the
transcript lines ``video___clip___start___end___text`` give the times and text. The video is decoded once, in order,
keeping every ``round(0.5·fps)``-th frame of its first 280 s (2 fps), and clip frames are kept frames
``[int(2·start), int(2·end))`` (streamed to the clip folders, not held in memory as the notebook does); the audio
(channel 0 if stereo) is cut at ``int(sr·max(start, 0))..int(sr·end)``. Frames are written as decoded (no crop:
the loader halves frames taller than 360 px and centre-crops 360²).

Decoding is PyAV, in order (ENVIRONMENT.md). Resumable: an utterance whose folder exists is skipped, and a dialog /
video whose utterances are all done is not decoded; each utterance is written into a temporary folder and renamed.
A bad dialog / video (missing file, unreadable, no stereo) is recorded with a one-line reason and the run goes on;
meta.pkl (every utterance with a folder) is written last, atomically. The face crops are a separate step
(`repro.data.mesm_faces`, ``scripts/prepare_mesm.py faces``).
"""

from __future__ import annotations

import csv
import os
import pickle
import shutil
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from repro.data.base import DataError, has_synthetic_mark
from repro.data.mesm_faces import progress_bar
from repro.data.mesm_layout import IEMOCAP, MOSEI, Layout, iemocap_parent
from repro.files import atomic_write, atomic_write_text

CROP = 224  # IEMOCAP half-frames are centre-cropped to this
JPEG_QUALITY = 95  # cv2.imwrite's default, the notebooks' writer
MOSEI_INTERVAL_MS = 500
MOSEI_LIMIT_S = 280  # the notebook stops decoding a video after this (the longest MOSEI clip ends near 270 s)
MOSEI_ANSWERS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")


@dataclass
class PrepareReport:
    root: Path
    prepared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (dialog / video file, one-line reason)


@dataclass(frozen=True)
class Utterance:
    uttr_id: str
    start: float
    end: float
    meta: dict


class SourceError(Exception):
    """A dialog / video that cannot be prepared; the message is the one-line reason."""


# ---------------------------------------------------------------------------------------------------------------
# shared: writing, decoding


def _write_jpg(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(image)).save(path, quality=JPEG_QUALITY)


def _write_wav(path: Path, rate: int, data: np.ndarray) -> None:
    from scipy.io import wavfile

    wavfile.write(path, rate, np.ascontiguousarray(data))


def _read_wav(path: Path) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile

    if not path.is_file():
        raise SourceError(f"missing {path}")
    try:
        return wavfile.read(path)
    except (ValueError, OSError, EOFError) as err:
        raise SourceError(f"cannot read {path} as a wav ({(str(err).splitlines() or ['?'])[0]})") from None


def decode_in_order(path: Path, keep: Callable[[int], bool],
                    limit: int | None = None) -> Iterable[tuple[int, np.ndarray]]:
    """(index, RGB uint8 (H, W, 3)) of the frames `keep(index)` wants, decoding in order (PyAV)."""
    import av

    if not path.is_file():
        raise SourceError(f"missing {path}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise SourceError(f"cannot open {path} ({(str(err).splitlines() or ['?'])[0]})") from None
    with container:
        if not container.streams.video:
            raise SourceError(f"{path} has no video stream")
        for index, frame in enumerate(container.decode(video=0)):
            if limit is not None and index >= limit:
                break
            if keep(index):
                yield index, frame.to_ndarray(format="rgb24")


def video_fps(path: Path) -> float:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return float(stream.average_rate or stream.guessed_rate or stream.base_rate)
    except (av.FFmpegError, OSError, IndexError) as err:
        raise SourceError(f"cannot read the frame rate of {path} ({(str(err).splitlines() or ['?'])[0]})") from None


def _temp_folder(final: Path) -> Path:
    temp = final.parent / f".tmp-{final.name}"
    shutil.rmtree(temp, ignore_errors=True)  # an interrupted earlier attempt
    temp.mkdir(parents=True)
    return temp


def _finish(temp: Path, final: Path) -> None:
    os.replace(temp, final)


def write_meta(root: Path, layout: Layout, meta: dict) -> Path:
    path = root / layout.processed / "meta.pkl"
    atomic_write(path, lambda f: pickle.dump(meta, f), binary=True)
    return path


def _mark_synthetic(raw: Path, root: Path) -> None:
    if has_synthetic_mark(raw):
        atomic_write_text(root / "SYNTHETIC.txt", "SYNTHETIC raw release prepared by repro.data.mesm_prepare (not real "
                                                  "data)\n")


# ---------------------------------------------------------------------------------------------------------------
# IEMOCAP


def parse_emo_evaluation(lines: Iterable[str]) -> dict[str, dict]:
    """uttr_id → {start_time, end_time, label} from an EmoEvaluation file's turn lines."""
    out = {}
    for line in lines:
        if not line.startswith("["):
            continue
        fields = line.strip().split("\t")
        times = fields[0][1:-1].split(" ")
        out[fields[1]] = {"start_time": float(times[0]), "end_time": float(times[2]), "label": fields[2]}
    return out


def parse_transcription(lines: Iterable[str]) -> dict[str, str]:
    """uttr_id → text from a transcription file (lines ``uttr_id [times]: text``; others skipped)."""
    out = {}
    for line in lines:
        head, colon, text = line.partition(":")
        uttr_id = head.split(" ")[0]
        if colon and "_" in uttr_id:
            out[uttr_id] = text.strip()
    return out


def iemocap_dialogs(raw: Path) -> list[tuple[Path, str]]:
    """(session dialog folder, dialog name) of every EmoEvaluation file, sorted."""
    found = []
    for session in sorted(Path(raw).glob("Session*")):
        for path in sorted((session / "dialog" / "EmoEvaluation").glob("*.txt")):
            if not path.name.startswith("."):
                found.append((session / "dialog", path.stem))
    return found


def iemocap_utterances(dialog_dir: Path, dialog: str) -> list[Utterance]:
    evaluation = dialog_dir / "EmoEvaluation" / f"{dialog}.txt"
    transcription = dialog_dir / "transcriptions" / f"{dialog}.txt"
    if not transcription.is_file():
        raise SourceError(f"missing {transcription}")
    turns = parse_emo_evaluation(evaluation.read_text(errors="replace").splitlines())
    texts = parse_transcription(transcription.read_text(errors="replace").splitlines())
    return [Utterance(u, t["start_time"], t["end_time"], {**t, "text": texts.get(u, "")})
            for u, t in turns.items() if t["label"] in IEMOCAP.emotions]


def halves(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right halves of a dialog frame, each centre-cropped to 224² (the notebook's `crop`)."""
    height, width = frame.shape[:2]
    left, right = frame[:, : width // 2], frame[:, width // 2:]
    top = (height - CROP) // 2
    if top < 0 or width // 2 < CROP:
        raise SourceError(f"frames are {width}×{height}, expected halves of at least {CROP}² (IEMOCAP's 720×480)")

    def crop(half):
        off = (half.shape[1] - CROP) // 2
        return half[top:top + CROP, off:off + CROP]

    return crop(left), crop(right)


def _facts(wav: Path, avi: Path) -> tuple[int | None, float | None]:
    """(sample rate, fps) of a dialog whose utterances were all written earlier (headers only)."""
    from scipy.io import wavfile

    rate = int(wavfile.read(wav, mmap=True)[0]) if wav.is_file() else None
    return rate, (video_fps(avi) if avi.is_file() else None)


@contextmanager
def _folders_finished_or_removed(temps: dict[str, tuple[Path, Path]]):
    """Every (temp, final) folder that the block registers in `temps`: moved into place when the block succeeds,
    removed when it fails, so an interrupted preparation leaves no half-written utterance behind."""
    try:
        yield
        for temp, final in temps.values():
            _finish(temp, final)
    except BaseException:
        for temp, _ in temps.values():
            shutil.rmtree(temp, ignore_errors=True)
        raise


def prepare_iemocap_dialog(dialog_dir: Path, dialog: str, root: Path, done: set[str]) -> tuple[list[Utterance], int]:
    """Write the dialog's utterances not in `done`; returns (all its 6-class utterances, how many written)."""
    utterances = iemocap_utterances(dialog_dir, dialog)
    wav, avi = dialog_dir / "wav" / f"{dialog}.wav", dialog_dir / "avi" / "DivX" / f"{dialog}.avi"
    todo = [u for u in utterances if u.uttr_id not in done]
    if not todo:
        rate, fps = _facts(wav, avi)
        for u in utterances:
            u.meta.update(sr=rate, fps=fps)
        return utterances, 0
    for path in (wav, avi):
        if not path.is_file():
            raise SourceError(f"missing {path}")
    rate, signal = _read_wav(wav)
    if signal.ndim != 2 or signal.shape[1] != 2:
        raise SourceError(f"{wav} has shape {signal.shape}, expected stereo (samples, 2): one channel per speaker")
    fps = video_fps(avi)
    for u in utterances:
        u.meta.update(sr=int(rate), fps=fps)
    spans = {u.uttr_id: (int(fps * u.start), int(fps * u.end)) for u in todo}
    temps = {}
    with _folders_finished_or_removed(temps):
        for u in todo:
            final = root / IEMOCAP.processed / iemocap_parent(u.uttr_id) / u.uttr_id
            temp = _temp_folder(final)
            temps[u.uttr_id] = (temp, final)
            segment = signal[int(rate * u.start):int(rate * u.end)]
            _write_wav(temp / "audio.wav", rate, segment)
            _write_wav(temp / "audio_L.wav", rate, segment[:, 0])
            _write_wav(temp / "audio_R.wav", rate, segment[:, 1])
        last = max(end for _, end in spans.values())
        for index, frame in decode_in_order(avi, lambda i: any(a <= i < b for a, b in spans.values()), limit=last):
            left, right = halves(frame)
            for uttr_id, (a, b) in spans.items():
                if a <= index < b:
                    _write_jpg(temps[uttr_id][0] / f"image_L_{index - a}.jpg", left)
                    _write_jpg(temps[uttr_id][0] / f"image_R_{index - a}.jpg", right)
    return utterances, len(todo)


def prepare_iemocap(raw: Path, root: Path, progress: bool = True) -> PrepareReport:
    raw, root = Path(raw), Path(root)
    dialogs = iemocap_dialogs(raw)
    if not dialogs:
        raise DataError(f"{raw} has no Session*/dialog/EmoEvaluation/*.txt: expected the unzipped "
                        f"IEMOCAP_full_release (Session1..5); fix: point --raw at it (request it from "
                        f"sail.usc.edu/iemocap)")
    report = PrepareReport(root)
    (root / IEMOCAP.processed).mkdir(parents=True, exist_ok=True)
    done = {p.name for p in (root / IEMOCAP.processed).glob("*/*") if p.is_dir() and not p.name.startswith(".")}
    meta = {}
    with progress_bar(len(dialogs), progress, "IEMOCAP dialogs") as bar:
        task = bar.add_task("dialogs", total=len(dialogs)) if bar is not None else None
        for dialog_dir, dialog in dialogs:
            try:
                utterances, written = prepare_iemocap_dialog(dialog_dir, dialog, root, done)
                for u in utterances:
                    meta[u.uttr_id] = u.meta
                    (report.prepared if u.uttr_id not in done else report.skipped).append(u.uttr_id)
            except (SourceError, DataError, OSError, ValueError) as err:
                report.bad.append((f"{dialog_dir.parent.name}/{dialog}", str(err)))
            if bar is not None:
                bar.advance(task)
    finished = {p.name for p in (root / IEMOCAP.processed).glob("*/*") if p.is_dir() and not p.name.startswith(".")}
    write_meta(root, IEMOCAP, {u: m for u, m in meta.items() if u in finished})
    _mark_synthetic(raw, root)
    return report


# ---------------------------------------------------------------------------------------------------------------
# CMU-MOSEI


def mosei_labels(csv_files: Iterable[Path]) -> dict[str, list[int]]:
    """``<video>_<clip>`` → 6 × 0/1: the sum over annotators (rows) of each Answer.<emotion>, > 0."""
    sums: dict[str, np.ndarray] = {}
    for path in csv_files:
        with Path(path).open(newline="", encoding="utf-8", errors="replace") as f:
            for row in csv.DictReader(f):
                try:
                    uttr_id = f"{str(row['Input.VIDEO_ID']).split('/')[-1]}_{row['Input.CLIP']}"
                    values = np.array([float(row[f"Answer.{e}"] or 0) for e in MOSEI_ANSWERS])
                except KeyError as err:
                    raise DataError(f"{path} has no column {err.args[0]!r}: expected the MOSEI MTurk label CSV "
                                    f"(Input.VIDEO_ID, Input.CLIP, Answer.<emotion>); fix: point --raw at the raw "
                                    f"release with its Labels/ folder") from None
                sums[uttr_id] = sums.get(uttr_id, 0) + values
    return {u: [int(v > 0) for v in s] for u, s in sums.items()}


def mosei_transcript(path: Path) -> list[tuple[str, str, float, float, str]]:
    """(video, clip, start, end, text) rows of a ``Transcript/Combined`` file (``___``-separated)."""
    rows = []
    for line in Path(path).read_text(errors="replace").splitlines():
        parts = [p for p in line.split("___") if p]
        if len(parts) >= 5:
            rows.append((parts[0], parts[1], float(parts[2]), float(parts[3]), parts[4].replace("\n", "")))
    return rows


def prepare_mosei_video(raw: Path, video: str, clips: list[Utterance], root: Path) -> None:
    wav, path = raw / "Audio" / "WAV_16000" / f"{video}.wav", raw / "Videos" / "Full" / "Combined" / f"{video}.mp4"
    for source in (wav, path):
        if not source.is_file():
            raise SourceError(f"missing {source}")
    rate, signal = _read_wav(wav)
    if signal.ndim == 2:
        signal = signal[:, 0]  # the notebook keeps channel 0
    fps = video_fps(path)
    every = max(1, int(np.round(MOSEI_INTERVAL_MS / 1000 * fps)))
    per_second = int(1000 // MOSEI_INTERVAL_MS)
    # clip spans in kept-frame numbers (the k-th kept frame is decoded frame k·every); frames are streamed to the
    # clips' folders, not held: 280 s of 720p at 2 fps would be 1.5 GB
    spans = {c.uttr_id: (int(per_second * c.start), int(per_second * c.end)) for c in clips}
    temps = {}
    with _folders_finished_or_removed(temps):
        for clip in clips:
            final = root / MOSEI.processed / clip.uttr_id
            temps[clip.uttr_id] = (_temp_folder(final), final)
            segment = signal[int(rate * max(clip.start, 0.0)):int(rate * clip.end)]
            _write_wav(temps[clip.uttr_id][0] / "audio.wav", rate, segment)
        frames = decode_in_order(path, lambda i: i % every == 0, limit=int(fps * MOSEI_LIMIT_S))
        for index, frame in frames:
            kept = index // every
            for uttr_id, (a, b) in spans.items():
                if a <= kept < b:
                    _write_jpg(temps[uttr_id][0] / f"image_{kept - a}.jpg", frame)


def prepare_mosei(raw: Path, root: Path, progress: bool = True) -> PrepareReport:
    raw, root = Path(raw), Path(root)
    label_files = sorted((raw / "Labels").glob("*.csv"))
    transcripts = sorted((raw / "Transcript" / "Combined").glob("*.txt"))
    if not label_files or not transcripts:
        raise DataError(f"{raw} has no Labels/*.csv or Transcript/Combined/*.txt: expected the raw CMU-MOSEI "
                        f"release (Audio/WAV_16000, Videos/Full/Combined, Transcript/Combined, Labels); fix: point "
                        f"--raw at it")
    labels = mosei_labels(label_files)
    by_video: dict[str, list[Utterance]] = {}
    for path in transcripts:
        for video, clip, start, end, text in mosei_transcript(path):
            uttr_id = f"{video.split('/')[-1]}_{clip}"
            if uttr_id in labels:
                by_video.setdefault(video, []).append(Utterance(uttr_id, start, end,
                                                                {"text": text, "label": labels[uttr_id]}))
    report = PrepareReport(root)
    (root / MOSEI.processed).mkdir(parents=True, exist_ok=True)
    meta = {}
    with progress_bar(len(by_video), progress, "MOSEI videos") as bar:
        task = bar.add_task("videos", total=len(by_video)) if bar is not None else None
        for video, clips in sorted(by_video.items()):
            todo = [c for c in clips if not (root / MOSEI.processed / c.uttr_id).is_dir()]
            report.skipped += [c.uttr_id for c in clips if c not in todo]
            try:
                if todo:
                    prepare_mosei_video(raw, video, todo, root)
                report.prepared += [c.uttr_id for c in todo]
            except (SourceError, OSError, ValueError) as err:
                report.bad.append((f"{video}", str(err)))
            for c in clips:
                if (root / MOSEI.processed / c.uttr_id).is_dir():
                    meta[c.uttr_id] = c.meta
            if bar is not None:
                bar.advance(task)
    write_meta(root, MOSEI, meta)
    _mark_synthetic(raw, root)
    return report
