"""SYNTHETIC NTU RGB+D skeleton fixture in the release's layout and exact text format (``nturgbd_skeletons/``).

Subjects: 4 CS training subjects (1, 4, 8, 13), the MFAS dev subjects 2 and 5, and the CS test subjects 3 and 6;
per subject actions 1..4 × replications 1..2 → 32 train / 16 val / 16 test samples, plus one sample whose every
frame has 0 bodies (a "missing skeleton", excluded by the reader). Replication 2 has a second body; some samples
start with frames of 0 bodies. Each action moves the arm joints in its own way relative to the spine (a raise, a
sideways swing, a push forward, a fast wave) so a model can learn the classes; lengths vary (40-64 frames).
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
