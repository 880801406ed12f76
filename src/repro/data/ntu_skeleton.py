"""NTU RGB+D ``.skeleton`` text files: parser, the authors' origin subtraction, missing-skeleton detection, and a
SYNTHETIC writer of files in the release's exact format (for tests and fixtures).

Format (shahroudy/NTURGB-D ``Matlab/read_skeleton_file.m``): line 1 = frame count; per frame a body-count line;
per body one line of 10 values (bodyID clipedEdges handLeftConfidence handLeftState handRightConfidence
handRightState isRestricted leanX leanY trackingState), a joint-count line (25), then 25 joint lines of 12 values
(x y z depthX depthY colorX colorY orientationW orientationX orientationY orientationZ trackingState).

Parsing (IMPLEMENTATION-NOTES §1.4, ``get_3D_skeleton`` of mfas/datasets/ntu.py): an array ``(3, T, 25, 2)``
float32 of the camera-space x, y, z. Bodies are taken in file order and bodies beyond the first two of a frame are
dropped (the authors' loop writes body index p and silently fails for p ≥ 2); we count the dropped ones. An absent
second body, and every body of a frame with 0 bodies, stays zero; frames with 0 bodies are kept. NaN values → 0
with a count (the authors' ``np.nan_to_num``; ±inf, which the release does not contain, is also set to 0 here,
where nan_to_num would give ±float32 max).

Stricter than the authors' (who skip the joint-count line and trust it): a truncated file, a joint count other than
25, a line with the wrong number of values, a non-numeric value, or non-blank text after the last frame is a
one-line ``DataError`` naming the file and the 1-based line number — never a silent misalignment.

Origin (``subtract_origin``): the authors subtract joint index 1 (the spine middle) of body 0 at each frame from
every joint of both bodies. Default here: an absent body stays zero; QUIRK ``absent_becomes_minus_origin=True``
reproduces the authors' arithmetic, where an absent (all-zero) body becomes −origin.

Missing skeletons: samples whose every frame has 0 bodies (the release's 302 "samples with missing skeletons")
are found by ``missing_skeleton_names`` from parsed files; no list is copied from any repository.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repro.data.base import DataError

NUM_JOINTS = 25
MAX_BODIES = 2
BODY_VALUES = 10
JOINT_VALUES = 12
ORIGIN_JOINT = 1  # spine middle (0-based joint index 1), the authors' origin
SYNTHETIC_NOTE = "SYNTHETIC NTU skeleton written by repro.data.ntu_skeleton - not real data"


@dataclass(frozen=True)
class Skeleton:
    """One parsed ``.skeleton`` file: ``xyz`` (3, T, 25, 2) float32 and what parsing had to repair or drop."""

    xyz: np.ndarray
    bodies: np.ndarray  # (T,) int: bodies listed per frame in the file (before keeping the first two)
    nan_count: int  # non-finite coordinate values set to 0
    dropped_bodies: int  # body entries beyond the first two of their frame

    @property
    def num_frames(self) -> int:
        return int(self.xyz.shape[1])

    @property
    def is_empty(self) -> bool:
        """No frame lists any body: a "missing skeleton" sample of the release."""
        return not bool(np.any(self.bodies > 0))


class _Lines:
    """The file's lines with a cursor; every error names the file and the 1-based line number."""

    def __init__(self, path: Path, lines: list[str]):
        self.path, self.lines, self.pos = path, lines, 0

    def error(self, line_no: int, what: str) -> DataError:
        return DataError(f"{self.path}: line {line_no}: {what} — re-extract the file from the NTU RGB+D "
                         "release (nturgbd_skeletons) or remove the sample")

    def take(self, context: str) -> str:
        if self.pos >= len(self.lines):
            raise self.error(self.pos + 1, f"file ends inside {context} (truncated)")
        self.pos += 1
        return self.lines[self.pos - 1]

    def count(self, context: str) -> int:
        text = self.take(context).strip()
        try:
            return int(text)
        except ValueError:
            raise self.error(self.pos, f"expected the {context} (one integer), found {text[:40]!r}") from None

    def values(self, n: int, context: str) -> list[str]:
        fields = self.take(context).split()
        if len(fields) != n:
            raise self.error(self.pos, f"expected {n} values for {context}, found {len(fields)}")
        return fields


def _joint_block(lines: _Lines, frame: int, body: int) -> np.ndarray:
    """The 25 joint lines of one body → (25, 3) float64 x, y, z (all 12 values are checked to be numbers)."""
    start = lines.pos
    rows = [lines.values(JOINT_VALUES, f"joint {j} of body {body} in frame {frame}") for j in range(NUM_JOINTS)]
    try:
        return np.array(rows, dtype=np.float64)[:, :3]
    except ValueError:
        for offset, row in enumerate(rows):  # find the offending line for the message
            for value in row:
                try:
                    float(value)
                except ValueError:
                    raise lines.error(start + offset + 1, f"non-numeric value {value[:20]!r} in a joint line") \
                        from None
        raise


def _body_header(lines: _Lines, frame: int, body: int) -> None:
    """The body-info line and the joint-count line of one body (checked; their values are not kept)."""
    info = lines.values(BODY_VALUES, f"the body-info line of body {body} in frame {frame}")
    try:
        [float(v) for v in info]
    except ValueError:
        raise lines.error(lines.pos, f"non-numeric value in the body-info line of body {body}") from None
    joints = lines.count(f"joint count of body {body} in frame {frame}")
    if joints != NUM_JOINTS:
        raise lines.error(lines.pos, f"body {body} in frame {frame} has {joints} joints, expected {NUM_JOINTS}")


def _joint_values(lines: _Lines, blocks: list[tuple[int, int, int]]) -> np.ndarray:
    """All joint lines of the kept `blocks` (frame, body, first line index) → (blocks, 25, 3) x, y, z.

    One C-level ``np.loadtxt`` over the joined lines (about twice as fast as converting line by line); when it
    refuses, or would skip a blank line, the slow per-line path finds the offending line for the message.
    """
    text = "\n".join(line for _, _, start in blocks for line in lines.lines[start:start + NUM_JOINTS])
    try:
        values = np.loadtxt(io.StringIO(text), dtype=np.float64, comments=None, ndmin=2)
        if values.shape == (len(blocks) * NUM_JOINTS, JOINT_VALUES):
            return values[:, :3].reshape(len(blocks), NUM_JOINTS, 3)
    except ValueError:
        pass
    out = np.empty((len(blocks), NUM_JOINTS, 3))
    for k, (frame, body, start) in enumerate(blocks):
        lines.pos = start
        out[k] = _joint_block(lines, frame, body)
    return out


def parse_skeleton(path: str | Path) -> Skeleton:
    """Parse one ``.skeleton`` file (see the module docstring); bad input raises a one-line ``DataError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read a .skeleton text file ({err}) — check the path and the file") from None
    lines = _Lines(path, text.splitlines())
    num_frames = lines.count("frame count")
    if num_frames < 0:
        raise lines.error(1, f"negative frame count {num_frames}")
    bodies = np.zeros(num_frames, dtype=np.int64)
    blocks = []  # (frame, body, index of its first joint line) of every body (all are checked, two are kept)
    for t in range(num_frames):
        bodies[t] = lines.count(f"body count of frame {t}")
        if bodies[t] < 0:
            raise lines.error(lines.pos, f"negative body count {bodies[t]} in frame {t}")
        for b in range(bodies[t]):
            _body_header(lines, t, b)
            blocks.append((t, b, lines.pos))
            if lines.pos + NUM_JOINTS > len(lines.lines):
                raise lines.error(len(lines.lines) + 1, f"file ends inside body {b} of frame {t} (truncated)")
            lines.pos += NUM_JOINTS
    rest = next((i for i in range(lines.pos, len(lines.lines)) if lines.lines[i].strip()), None)
    if rest is not None:
        raise lines.error(rest + 1, f"text after the last of the {num_frames} frames (wrong frame count?)")
    xyz = np.zeros((3, num_frames, NUM_JOINTS, MAX_BODIES), dtype=np.float64)
    if blocks:
        values = _joint_values(lines, blocks)
        index = np.array([(t, b) for t, b, _ in blocks])
        keep = index[:, 1] < MAX_BODIES
        # separated advanced indices go first: the target is (kept, 3, 25)
        xyz[:, index[keep, 0], :, index[keep, 1]] = values[keep].transpose(0, 2, 1)
    bad = ~np.isfinite(xyz)
    xyz[bad] = 0.0
    dropped = int(np.clip(bodies - MAX_BODIES, 0, None).sum())
    return Skeleton(xyz.astype(np.float32), bodies, int(bad.sum()), dropped)


def read_skeleton(path: str | Path) -> np.ndarray:
    """The (3, T, 25, 2) float32 x, y, z of one ``.skeleton`` file."""
    return parse_skeleton(path).xyz


def subtract_origin(xyz: np.ndarray, absent_becomes_minus_origin: bool = False) -> np.ndarray:
    """The authors' normalisation: joint 1 (spine middle) of body 0 at each frame subtracted from every joint.

    A body is absent at a frame when all its coordinates are 0 (as the parser leaves it). Default: absent bodies
    stay zero. QUIRK ``absent_becomes_minus_origin=True``: the authors' plain subtraction, absent → −origin.
    Frames without body 0 have origin 0 and are unchanged either way.
    """
    if xyz.ndim != 4 or xyz.shape[0] != 3 or xyz.shape[2] != NUM_JOINTS:
        raise DataError(f"skeleton array of shape {xyz.shape}: expected (3, T, {NUM_JOINTS}, M) — pass the "
                        "output of read_skeleton")
    origin = xyz[:, :, ORIGIN_JOINT, 0][:, :, None, None]
    out = xyz - origin
    if not absent_becomes_minus_origin:
        present = np.any(xyz != 0, axis=(0, 2), keepdims=True)  # (1, T, 1, M)
        out = np.where(present, out, 0)
    return out.astype(xyz.dtype, copy=False)


def missing_skeleton_names(parsed: Mapping[str, Skeleton]) -> list[str]:
    """Names (keys of `parsed`) of samples with no body in any frame, sorted."""
    return sorted(name for name, skeleton in parsed.items() if skeleton.is_empty)


# --- SYNTHETIC writer (release format) ---------------------------------------------------------------------------

Frames = Sequence[Sequence[np.ndarray]]  # frames[t][b] = (25, 3) x, y, z of body b at frame t


def write_skeleton_file(path: str | Path, frames: Frames, body_ids: Sequence[int] | None = None) -> Path:
    """Write a SYNTHETIC ``.skeleton`` file in the release's exact text format.

    `frames[t]` lists the bodies of frame t (an empty list = a frame with 0 bodies), each a (25, 3) array of x, y, z.
    The other values are derived plausibly (depth/colour pixels from x, y, z; a unit quaternion; tracking state 2).
    Values are written as the release does, with 7 significant digits.
    """
    path = Path(path)
    out = [str(len(frames))]
    for bodies in frames:
        out.append(str(len(bodies)))
        for b, joints in enumerate(bodies):
            body_id = body_ids[b] if body_ids is not None else 72057594037931101 + b
            out.append(f"{body_id} 0 1 2 1 2 0 {0.01 * (b + 1):.7g} {-0.02:.7g} 2")
            out.append(str(len(joints)))
            for x, y, z in np.asarray(joints, dtype=np.float64):
                z_safe = z if abs(z) > 1e-3 else 1e-3
                depth_x, depth_y = 256 + 365 * x / z_safe, 212 - 365 * y / z_safe
                color_x, color_y = 960 + 1060 * x / z_safe, 540 - 1060 * y / z_safe
                out.append(f"{x:.7g} {y:.7g} {z:.7g} {depth_x:.7g} {depth_y:.7g} {color_x:.7g} {color_y:.7g} "
                           "0.9238795 0 0.3826834 0 2")
    path.write_text("\n".join(out) + "\n", encoding="ascii")
    return path


def synthetic_frames(rng: np.random.Generator, num_frames: int = 100, num_bodies: int = 1,
                     empty_frames: Sequence[int] = ()) -> list[list[np.ndarray]]:
    """SYNTHETIC bodies: a random-walk skeleton ~3 m in front of the camera per body; `empty_frames` get 0 bodies."""
    base = rng.normal(0.0, 0.3, size=(num_bodies, NUM_JOINTS, 3)) + np.array([0.0, 0.0, 3.0])
    base[:, :, 0] += np.arange(num_bodies)[:, None] * 0.8  # bodies side by side
    walk = np.cumsum(rng.normal(0.0, 0.01, size=(num_frames, num_bodies, NUM_JOINTS, 3)), axis=0)
    empty = set(empty_frames)
    return [[] if t in empty else list(base + walk[t]) for t in range(num_frames)]
