"""SYNTHETIC NTU RGB+D fixtures in the release's layout: the skeleton fixture (``nturgbd_skeletons/``, exact text
format; `write_ntu_skeletons`, ``data=ntu_skeleton``) and, for ``data=ntu``, the same samples plus one small RGB video
each (`write_ntu`: ``nturgbd_rgb/avi_256x256_30/<stem>_rgb.avi``, the layout scripts/prepare_ntu.py writes).

Subjects: 4 CS training subjects (1, 4, 8, 13), the MFAS dev subjects 2 and 5, and the CS test subjects 3 and 6;
per subject actions 1..4 × replications 1..2 → 32 train / 16 val / 16 test samples, plus one sample whose every
frame has 0 bodies (a "missing skeleton", excluded by the reader). Replication 2 has a second body; some samples
start with frames of 0 bodies. Each action moves the arm joints in its own way relative to the spine (a raise, a
sideways swing, a push forward, a fast wave) so a model can learn the classes; lengths vary (40-64 frames).

RGB (`write_ntu`): an MPEG-4 avi of 64×64 frames at 30 fps (not the prepared 256×256: the reader resizes to what
its crop needs), 24-40 frames, for every skeleton sample including the all-empty one (the release has RGB for its
302 samples without skeletons). The action is visible: a noisy grey background with a blob of the action's colour
that moves in the action's direction (right, down, left, up) across the clip; the blob stays inside the central
crop. Lengths differ from the skeleton files' (as in the release, where the two are recorded separately).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repro.data.ntu_skeleton import write_skeleton_file
from repro.files import atomic_write_text

FIXTURE_SUBJECTS = (1, 4, 8, 13, 2, 5, 3, 6)
FIXTURE_ACTIONS = (1, 2, 3, 4)
MISSING_SAMPLE = "S001C001P001R001A005"
ARM_JOINTS = np.array([5, 6, 7, 9, 10, 11, 21, 22, 23, 24])  # elbows, wrists, hands, hand tips, thumbs
# per action: the direction the arms move and the number of cycles over the sequence
MOTIONS = {1: ((0.0, 1.0, 0.0), 0.5), 2: ((1.0, 0.0, 0.0), 1.0), 3: ((0.0, 0.0, -1.0), 1.0), 4: ((0.0, 1.0, 0.0), 3.0)}


def _frames(rng: np.random.Generator, action: int, bodies: int, num_frames: int, empty: int) -> list[list]:
    base = rng.normal(0.0, 0.2, size=(bodies, 25, 3)) + np.array([0.0, 0.0, 3.0])
    base[:, :, 0] += np.arange(bodies)[:, None] * 0.8
    direction, cycles = MOTIONS[action]
    t = np.arange(num_frames) / num_frames
    swing = 0.4 * np.sin(2 * np.pi * cycles * t)[:, None] * np.array(direction)  # (T, 3)
    sway = np.cumsum(rng.normal(0.0, 0.01, size=(num_frames, 1, 1, 3)), axis=0)  # whole-body drift
    frames = np.broadcast_to(base, (num_frames, bodies, 25, 3)) + sway
    frames = frames + rng.normal(0.0, 0.01, size=frames.shape)
    frames[:, :, ARM_JOINTS] += swing[:, None, None, :]
    return [[] if k < empty else list(frames[k]) for k in range(num_frames)]


RGB_SIZE = 64
RGB_FPS = 30
# per action: the blob's colour and the direction it travels (x, y) over the clip
RGB_PATTERNS = {1: ((230, 40, 40), (1, 0)), 2: ((40, 230, 40), (0, 1)), 3: ((40, 40, 230), (-1, 0)),
                4: ((230, 230, 40), (0, -1))}
SYNTHETIC_NOTE = "SYNTHETIC NTU RGB+D fixture written by repro.data.fixtures_ntu - not real data\n"


def write_ntu_skeletons(folder: Path, seed: int = 0) -> Path:
    """Write the SYNTHETIC fixture into `folder` (the NTU folder); returns it."""
    folder = Path(folder)
    out = folder / "nturgbd_skeletons"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for subject in FIXTURE_SUBJECTS:
        for action in FIXTURE_ACTIONS:
            for rep in (1, 2):
                name = f"S001C001P{subject:03d}R{rep:03d}A{action:03d}.skeleton"
                frames = _frames(rng, action, rep, int(rng.integers(40, 65)), empty=int(rng.integers(0, 3)))
                write_skeleton_file(out / name, frames)
    write_skeleton_file(out / f"{MISSING_SAMPLE}.skeleton", [[] for _ in range(30)])
    atomic_write_text(folder / "SYNTHETIC.txt", "SYNTHETIC NTU RGB+D skeleton fixture written by "
                                                "repro.data.fixtures_ntu - not real data\n")
    return folder


def rgb_frames(rng: np.random.Generator, action: int, num_frames: int, size: int = RGB_SIZE) -> np.ndarray:
    """(n, size, size, 3) uint8: a noisy grey background and the action's coloured blob moving its way."""
    colour, (dx, dy) = RGB_PATTERNS[action]
    background = rng.integers(70, 130, (size, size, 3), dtype=np.uint8)
    noise = rng.integers(0, 16, (3, size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    frames = np.repeat(background[None], num_frames, axis=0)
    travel = 0.25 * size  # from -travel/2 to +travel/2 around the centre: inside the central 7/8 crop
    for k in range(num_frames):
        shift = travel * (k / max(num_frames - 1, 1) - 0.5)
        cx, cy = size / 2 + dx * shift, size / 2 + dy * shift
        blob = (xx - cx) ** 2 + (yy - cy) ** 2 <= (0.18 * size) ** 2
        frames[k][blob] = colour
        frames[k] = np.minimum(frames[k].astype(np.int16) + noise[k % 3], 255).astype(np.uint8)
    return frames


def write_avi(path: Path, frames: np.ndarray, fps: int = RGB_FPS, codec: str = "mpeg4",
              pix_fmt: str = "yuv420p") -> Path:
    """An avi of (n, H, W, 3) uint8 RGB frames (default MPEG-4 part 2, yuv420p, as the prepared files; tests that
    need exact pixel values write ``codec="rawvideo", pix_fmt="bgr24"``)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width, stream.pix_fmt = frames.shape[1], frames.shape[2], pix_fmt
        if codec == "mpeg4":
            stream.options = {"qscale": "3"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return path


def write_ntu(folder: Path, seed: int = 0, size: int = RGB_SIZE) -> Path:
    """The SYNTHETIC ``data=ntu`` fixture: the skeleton fixture + one avi per sample (same stems); returns it."""
    from repro.data.ntu_rgb import RGB_DIR, RGB_SUFFIX

    folder = write_ntu_skeletons(folder, seed)
    rgb = folder / RGB_DIR
    rng = np.random.default_rng(seed + 1)
    for skeleton in sorted((folder / "nturgbd_skeletons").glob("*.skeleton")):
        action = int(skeleton.stem[-3:])
        pattern = action if action in RGB_PATTERNS else 1 + action % len(RGB_PATTERNS)  # the empty sample's A005
        write_avi(rgb / f"{skeleton.stem}{RGB_SUFFIX}", rgb_frames(rng, pattern, int(rng.integers(24, 41)), size))
    atomic_write_text(folder / "nturgbd_rgb" / "SYNTHETIC.txt", SYNTHETIC_NOTE)
    atomic_write_text(folder / "SYNTHETIC.txt", SYNTHETIC_NOTE)
    return folder


RELEASE_SIZE = (1920, 1080)  # (width, height) of the release's RGB videos


def write_release_rgb(src: Path, stems: list[str], size: tuple[int, int] = (96, 54), frames: int = 12,
                      seed: int = 0) -> list[Path]:
    """SYNTHETIC release videos ``<src>/<stem>_rgb.avi`` for the preparation's tests and benchmark: named as the
    release's 1920×1080 files but `size` (width, height) — small by default, as real 1080p is slow to write."""
    rng = np.random.default_rng(seed)
    width, height = size
    paths = []
    for stem in stems:
        action = 1 + (int(stem[-3:]) - 1) % len(RGB_PATTERNS)
        side = max(width, height)
        top, left = (side - height) // 2, (side - width) // 2  # the central band: the blob stays in the middle
        square = rgb_frames(rng, action, frames, size=side)
        paths.append(write_avi(Path(src) / f"{stem}_rgb.avi", square[:, top:top + height, left:left + width]))
    Path(src).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(src) / "SYNTHETIC.txt", SYNTHETIC_NOTE)
    return paths
