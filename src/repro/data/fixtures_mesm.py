"""SYNTHETIC IEMOCAP / CMU-MOSEI in MESM's exact processed layout (`repro.data.mesm_layout`), for tests, SMOKE runs
and ``python -m repro.data fixture data=iemocap_raw|mosei_raw``.

Nothing here is real data. The first utterance of every split has the same size (the registry test reads it).
Each dataset gets 8 / 6 / 6 utterances (train / valid / test) with every one of the 6
emotions present in every split: IEMOCAP one-hot (the 6 classes in turn), MOSEI multi-hot (emotion k plus, for
some, emotion k+2). The label is visible in the data so that a model can learn in a few steps: the frames show an
emotion-coloured square (the "face") on a grey gradient, the speaker's audio channel is an emotion-dependent
tone (the other channel noise), and the transcript names the emotion. IEMOCAP: ``Ses0xY_<dialog>_<F|M>nnn`` ids of
both genders in both session kinds (so both speaker sides occur), every frame of 224² halves as ``image_{L,R}_{i}
.jpg``, a stereo ``audio.wav`` and mono ``audio_{L,R}.wav``; MOSEI: ``<video>_<clip>`` ids, 2-fps 360×480 frames
``image_{i}.jpg`` and a mono ``audio.wav``; 16 kHz int16 wavs. The face cache is built by
`repro.data.mesm_faces.build_face_cache` with a SYNTHETIC cropper (the square where it is bright, else "no face":
the fixed-crop fallback), recorded as cropper "synthetic". ``SYNTHETIC.txt`` in the root marks it all.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from repro.data.mesm_audio import SAMPLE_RATE
from repro.data.mesm_faces import FACE_SIZE, build_face_cache
from repro.data.mesm_layout import IEMOCAP, MOSEI, SPLIT_FILES, Layout, use_left, utterance_folder
from repro.files import atomic_write_text

SYNTHETIC_NOTE = "SYNTHETIC MESM fixture written by repro.data.fixtures_mesm - not real data\n"
SPLIT_SIZES = {"train": 8, "val": 6, "test": 6}
PALETTE = np.array([[220, 40, 40], [240, 160, 30], [150, 60, 200], [240, 230, 60], [160, 160, 160], [40, 70, 220]],
                   dtype=np.float64)
TONES_HZ = (220.0, 330.0, 440.0, 550.0, 660.0, 770.0)
IEMOCAP_FPS = 29.97
MOSEI_FRAME_SHAPE = (360, 480)  # (H, W): no halving (H <= 360), centre crop 360² as the authors' loader
DARK_FRAME_EVERY = 4  # every 4th frame is dark: the synthetic cropper finds no face there (the fixed-crop fallback)


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([2021, *keys])


def background(height: int, width: int, seed: int) -> np.ndarray:
    """float (H, W, 3): a smooth grey gradient + faint noise (one per utterance and side; cheap to compress)."""
    ramp = np.linspace(50, 110, width)[None, :, None] + np.linspace(0, 20, height)[:, None, None]
    return ramp + _rng(seed).integers(0, 8, (height, width, 3))


def frame_image(base: np.ndarray, emotion: int, k: int) -> np.ndarray:
    """uint8 (H, W, 3): the background + an emotion-coloured 64² square near the centre, moving a little from frame
    to frame; dark on every 4th frame (no "face" found there)."""
    image = base.copy()
    height, width = image.shape[:2]
    top, left = height // 2 - 32 + (k % 3) * 2, width // 2 - 32
    brightness = 0.25 if k % DARK_FRAME_EVERY == DARK_FRAME_EVERY - 1 else 1.0
    image[top:top + 64, left:left + 64] = PALETTE[emotion] * brightness
    return image.clip(0, 255).astype(np.uint8)


def tone(seconds: float, emotion: int, seed: int) -> np.ndarray:
    """int16 mono: the emotion's tone + a little noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = 0.3 * np.sin(2 * np.pi * TONES_HZ[emotion] * t) + 0.02 * _rng(seed).standard_normal(t.size)
    return (wave * 32767).astype(np.int16)


def noise(seconds: float, seed: int) -> np.ndarray:
    return (0.02 * _rng(seed, 1).standard_normal(int(seconds * SAMPLE_RATE)) * 32767).astype(np.int16)


def _write_wav(path: Path, data: np.ndarray) -> None:
    from scipy.io import wavfile

    wavfile.write(path, SAMPLE_RATE, data)


def _write_jpg(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path, quality=90)


def synthetic_cropper(image: np.ndarray) -> np.ndarray | None:
    """SYNTHETIC "detector": the 48² centre of the bright square, or None when the frame is dark there."""
    h, w = image.shape[:2]
    crop = image[h // 2 - FACE_SIZE // 2: h // 2 + FACE_SIZE // 2, w // 2 - FACE_SIZE // 2: w // 2 + FACE_SIZE // 2]
    return crop.copy() if crop.mean() > 90 else None


def synthetic_fallback(image: np.ndarray) -> np.ndarray:
    """SYNTHETIC stand-in for the authors' fixed crop: the top-left 48² (so a fallback is recognisable)."""
    return image[:FACE_SIZE, :FACE_SIZE].copy()


# ---------------------------------------------------------------------------------------------------------------
# IEMOCAP


def iemocap_ids() -> dict[str, list[tuple[str, int]]]:
    """Per split, (uttr id, class) pairs: both session genders and both speaker genders (so both sides)."""
    out, n = {}, 0
    for split, size in SPLIT_SIZES.items():
        rows = []
        for j in range(size):
            session = f"Ses0{n % 5 + 1}{'FM'[n % 2]}"
            dialog = f"impro0{j % 3 + 1}" if j % 2 == 0 else f"script0{j % 3 + 1}_{j % 2 + 1}"
            speaker = "FM"[(n // 2) % 2]
            rows.append((f"{session}_{dialog}_{speaker}{n:03d}", j % len(IEMOCAP.emotions)))
            n += 1
        out[split] = rows
    return out


def write_iemocap_utterance(root: Path, uttr_id: str, emotion: int, n: int, frames: int) -> dict:
    """One utterance folder (frames of both halves, stereo + per-side wavs); returns its meta.pkl entry."""
    folder = utterance_folder(root, IEMOCAP, uttr_id)
    folder.mkdir(parents=True, exist_ok=True)
    seconds = frames / IEMOCAP_FPS
    speaker_base, other_base = background(224, 224, n), background(224, 224, n + 1000)
    for k in range(frames):  # the speaker's half shows the emotion, the other half another colour
        speaker_half = frame_image(speaker_base, emotion, k)
        other_half = frame_image(other_base, (emotion + 3) % 6, k)
        left, right = (speaker_half, other_half) if use_left(uttr_id) else (other_half, speaker_half)
        _write_jpg(folder / f"image_L_{k}.jpg", left)
        _write_jpg(folder / f"image_R_{k}.jpg", right)
    speech, other = tone(seconds, emotion, n), noise(seconds, n)
    left, right = (speech, other) if use_left(uttr_id) else (other, speech)
    _write_wav(folder / "audio.wav", np.stack([left, right], axis=1))
    _write_wav(folder / "audio_L.wav", left)
    _write_wav(folder / "audio_R.wav", right)
    start = 1.5 * n
    return {"start_time": start, "end_time": round(start + seconds, 4), "label": IEMOCAP.emotions[emotion],
            "text": f"synthetic utterance {n} sounds {IEMOCAP.emotions[emotion]}", "sr": SAMPLE_RATE,
            "fps": IEMOCAP_FPS}


# ---------------------------------------------------------------------------------------------------------------
# MOSEI


def mosei_labels(n: int) -> list[int]:
    row = [0] * len(MOSEI.emotions)
    row[n % 6] = 1
    if n % 3 == 0:
        row[(n + 2) % 6] = 1
    return row


def write_mosei_utterance(root: Path, uttr_id: str, label: list[int], n: int, frames: int) -> dict:
    folder = utterance_folder(root, MOSEI, uttr_id)
    folder.mkdir(parents=True, exist_ok=True)
    emotion = int(np.argmax(label))
    base = background(*MOSEI_FRAME_SHAPE, n)
    for k in range(frames):
        _write_jpg(folder / f"image_{k}.jpg", frame_image(base, emotion, k))
    _write_wav(folder / "audio.wav", tone(frames / 2, emotion, n))
    return {"text": f"synthetic clip {n} feels {MOSEI.emotions[emotion]}", "label": label}


# ---------------------------------------------------------------------------------------------------------------


def write_layout(root: Path, layout: Layout) -> dict[str, list[str]]:
    """meta.pkl, the utterance folders and the split files; returns the ids per split."""
    meta, ids = {}, {}
    if layout.key == "iemocap":
        for split, rows in iemocap_ids().items():
            ids[split] = [u for u, _ in rows]
            for j, (uttr_id, emotion) in enumerate(rows):  # 16..31 frames: 2-3 sampled at step 15
                meta[uttr_id] = write_iemocap_utterance(root, uttr_id, emotion, len(meta), 16 + 3 * (j % 6))
    else:
        n = 0
        for split, size in SPLIT_SIZES.items():
            ids[split] = [f"SYNTHvid{n + j:04d}_{j % 4}" for j in range(size)]
            for j, uttr_id in enumerate(ids[split]):
                # 3..7 frames at 2 fps (1.5-3.5 s)
                meta[uttr_id] = write_mosei_utterance(root, uttr_id, mosei_labels(j), n + j, 3 + j % 5)
            n += size
    processed = root / layout.processed
    processed.mkdir(parents=True, exist_ok=True)
    with (processed / "meta.pkl").open("wb") as f:
        pickle.dump(meta, f)
    (root / layout.split_dir).mkdir(parents=True, exist_ok=True)
    for split, name in SPLIT_FILES.items():
        atomic_write_text(root / layout.split_dir / name, "\n".join(ids[split]) + "\n")
    return ids


def write_fixture(folder: Path, dataset: str = "iemocap") -> Path:
    """The SYNTHETIC `dataset` (iemocap | mosei) under `folder` (the root holding <DATASET>_RAW_PROCESSED/)."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "SYNTHETIC.txt", SYNTHETIC_NOTE)
    layout = IEMOCAP if dataset == "iemocap" else MOSEI
    write_layout(root, layout)
    build_face_cache(root, layout.key, cropper=synthetic_cropper, fallback=synthetic_fallback,
                     cropper_name="synthetic", progress=False)
    rewrite_hand_crafted_features(root, layout)
    return root


def rewrite_hand_crafted_features(root: Path, layout: Layout) -> None:
    """The hand-crafted-feature fixture (repro.data.fixtures_mesm_hcf) shares the split files and meta.pkl: when it
    was written here before, rewrite it for the utterances just listed, so both fixtures read the same splits in
    whichever order they were written."""
    from repro.data.fixtures_mesm_hcf import write_iemocap_hcf, write_mosei_hcf

    dataset = layout.split_dir.split("_")[0]  # IEMOCAP_SPLIT -> IEMOCAP
    if (root / f"{dataset}_HCF_FEATURES").exists():
        (write_iemocap_hcf if layout.key == "iemocap" else write_mosei_hcf)(root)

