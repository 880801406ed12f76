"""SYNTHETIC RAVDESS: a raw release in the exact layout (mp4s with an AAC track, OpenFace landmark CSVs, wavs),
prepared by `repro.data.ravdess_prepare` so that SMOKE runs exercise the whole pipeline.

Nothing here is real data. Every actor (all 24, or those asked for) gets `clips_per_actor` full-AV speech clips
(``01-01-EE-01-01-01-AA.mp4``) of distinct emotions (4 consecutive actors — one test fold — cover all 8), small
frames (128×72 instead of 1280×720: the preparation divides landmarks by the decoded frame size, so it needs no
switch), 30 fps, ~3.1 s. The label is visible in the data: the face rectangle has an emotion-dependent colour and
the audio is an emotion-dependent tone, so a model can learn in a few steps. The face box moves during the clip
and the landmark CSV (OpenFace 2.x column names, x_0 at the authors' column 298) follows it. Actor_01 also holds a
``02-…`` video-only copy, which the preparation must skip. The audio-only release has the matching
``03-01-…wav`` files at 48 kHz, every third one stereo. ``SYNTHETIC.txt`` marks the raw folder; the preparation
copies the mark into the prepared folder and its manifest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from repro.data.ravdess_names import ACTORS, EMOTIONS

SYNTHETIC_NOTE = "SYNTHETIC RAVDESS fixture written by repro.data.fixtures_ravdess - not real data"
FIXTURE_SIZE = (128, 72)  # (width, height); the release is 1280×720
FIXTURE_FPS = 30
FIXTURE_SECONDS = 3.1  # > 2.95 s (0.5 s offset + 2.45 s MFCC window); the release's clips last ~3.5-4 s
RELEASE_RATE = 48000
# emotion-dependent colour of the face and pitch of the tone (label 0..7)
PALETTE = np.array([[230, 40, 40], [40, 230, 40], [40, 40, 230], [230, 230, 40], [230, 40, 230], [40, 230, 230],
                    [250, 250, 250], [120, 60, 20]], dtype=np.float64)
# OpenFace 2.x columns before the 68 2D landmarks: 297 of them, so x_0 is the authors' column 298 (1-based)
_LEADING = (["frame", "face_id", "timestamp", "confidence", "success"]
            + [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"]
            + [f"eye_lmk_{a}_{i}" for a in ("x", "y") for i in range(56)]
            + [f"eye_lmk_{a}_{i}" for a in ("X", "Y", "Z") for i in range(56)]
            + ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"])
_HEADER = ", ".join(_LEADING + [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)] + ["p_scale", "AU01_r"])


def clip_emotions(actor: int, clips_per_actor: int) -> list[int]:
    """Emotion codes (1..8) of an actor's fixture clips: distinct, and 4 consecutive actors cover all 8."""
    return [((actor - 1) * clips_per_actor + j) % len(EMOTIONS) + 1 for j in range(clips_per_actor)]


def face_track(n: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """(n, 4) face boxes (left, top, right, bottom) in pixels, drifting across the frame during the clip."""
    width, height = size
    rng = np.random.default_rng(seed)
    start = rng.uniform([0.3, 0.38], [0.4, 0.45]) * (width, height)  # the box stays inside the frame throughout
    end = start + rng.uniform([0.05, 0.0], [0.2, 0.1]) * (width, height)
    centre = start + np.linspace(0, 1, n)[:, None] * (end - start)
    half = np.array([0.14 * width, 0.3 * height])
    return np.concatenate([centre - half, centre + half], axis=1)


def landmarks_csv(boxes: np.ndarray, fps: float) -> str:
    """An OpenFace-layout CSV: one row per frame, the 68 landmarks on an ellipse inside each box."""
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    zeros = ", ".join(["0"] * (len(_LEADING) - 5))
    lines = [_HEADER]
    for k, (left, top, right, bottom) in enumerate(boxes):
        cx, cy, rx, ry = (left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2
        xs, ys = cx + rx * np.cos(angles), cy + ry * np.sin(angles)
        coords = ", ".join(f"{v:.2f}" for v in np.concatenate([xs, ys]))
        lines.append(f"{k + 1}, 0, {k / fps:.3f}, 0.98, 1, {zeros}, {coords}, 1.0, 0.0")
    return "\n".join(lines) + "\n"


def tone(label: int, seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    """(channels, samples) float32: an emotion-dependent tone with a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    signal = 0.3 * np.sin(2 * np.pi * 180.0 * 2 ** (label / 3) * t) + 0.01 * rng.standard_normal(t.size)
    return np.repeat(signal[None].astype(np.float32), channels, axis=0) * np.linspace(1.0, 0.7, channels)[:, None]


def write_mp4(path: Path, frames: np.ndarray, fps: int, audio: np.ndarray | None, rate: int = RELEASE_RATE,
              codec: str = "libx264", options: dict | None = None) -> Path:
    """An mp4 of (n, H, W, 3) uint8 RGB frames (H.264, yuv420p) with an AAC track of `audio` (channels, samples)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps, options=options or {"preset": "ultrafast"})
        video.height, video.width, video.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        sound = None
        if audio is not None:
            layout = "stereo" if audio.shape[0] == 2 else "mono"
            # the fast AAC coder: 4x quicker than the default two-loop search, which a SYNTHETIC tone does not need
            sound = container.add_stream("aac", rate=rate, layout=layout, options={"aac_coder": "fast"})
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        if sound is not None:
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, np.float32), format="fltp",
                                               layout=sound.layout.name)
            chunk.sample_rate, chunk.pts = rate, 0
            container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


def clip_frames(label: int, boxes: np.ndarray, size: tuple[int, int], seed: int) -> np.ndarray:
    """(n, H, W, 3) uint8: a noisy grey background with the face box filled in the emotion's colour."""
    width, height = size
    rng = np.random.default_rng(seed)
    background = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
    noise = rng.integers(0, 12, (4, height, width, 3), dtype=np.uint8)  # a few noise frames reused: writing is fast
    colour = np.minimum(PALETTE[label], 243).astype(np.uint8)
    frames = np.repeat(background[None], len(boxes), axis=0)
    for k, (left, top, right, bottom) in enumerate(boxes):
        frames[k, int(top):int(bottom), int(left):int(right)] = colour
        frames[k] += noise[k % len(noise)]
    return frames


def write_raw_release(raw: str | Path, audio_only: bool = False, clips_per_actor: int = 2,
                      actors: tuple[int, ...] = ACTORS, seconds: float = FIXTURE_SECONDS,
                      size: tuple[int, int] = FIXTURE_SIZE, seed: int = 0) -> list[str]:
    """Write a SYNTHETIC raw release into `raw` (``Actor_XX/`` + ``landmarks/`` + SYNTHETIC.txt, or the wav
    release); returns the ``Actor_XX/<file>`` names of the clips the preparation should keep."""
    raw = Path(raw)
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    n = int(round(seconds * FIXTURE_FPS))
    names = []
    for actor in actors:
        for emotion in clip_emotions(actor, clips_per_actor):
            stem = f"-01-{emotion:02d}-01-01-01-{actor:02d}"
            clip_seed = seed * 10_000 + actor * 10 + emotion
            folder = raw / f"Actor_{actor:02d}"
            folder.mkdir(exist_ok=True)
            channels = 2 if clip_seed % 3 == 0 else 1  # some files stereo, as the audio release
            audio = tone(emotion - 1, seconds, RELEASE_RATE, channels, clip_seed)
            if audio_only:
                import soundfile

                soundfile.write(folder / f"03{stem}.wav", audio.T, RELEASE_RATE, subtype="PCM_16")
                names.append(f"{folder.name}/03{stem}.wav")
                continue
            boxes = face_track(n, size, clip_seed)
            write_mp4(folder / f"01{stem}.mp4", clip_frames(emotion - 1, boxes, size, clip_seed), FIXTURE_FPS, audio)
            (raw / "landmarks").mkdir(exist_ok=True)
            (raw / "landmarks" / f"01{stem}.csv").write_text(landmarks_csv(boxes, FIXTURE_FPS))
            names.append(f"{folder.name}/01{stem}.mp4")
    if not audio_only and names:  # a video-only copy (02-…), which MSAF skips
        first = raw / names[0]
        shutil.copyfile(first, first.with_name("02" + first.name[2:]))
    return names


def write_prepared(folder: str | Path, audio_only: bool = False, **options) -> Path:
    """The registered fixture writer: a SYNTHETIC raw release in ``<folder>/raw`` prepared into `folder`."""
    from repro.data.base import DataError
    from repro.data.ravdess_prepare import prepare

    folder = Path(folder)
    raw = folder / "raw"
    write_raw_release(raw, audio_only=audio_only, **options)
    report = prepare(raw, folder, kind="audio" if audio_only else "video_audio", progress=False)
    if report.bad:  # pragma: no cover - the fixture is built to be clean
        name, reason = report.bad[0]
        raise DataError(f"the SYNTHETIC RAVDESS fixture did not prepare: {name}: {reason}")
    return folder
