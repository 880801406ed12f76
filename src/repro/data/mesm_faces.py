"""MESM's face crops, computed once at preparation time (mesm.txt §3.1 "visual features"; IMPLEMENTATION-NOTES §5.2).

The authors run facenet-pytorch's ``MTCNN(image_size=48, margin=2, post_process=False)`` on every sampled frame
inside the model's forward pass, and take a fixed central crop when no face is found. The detector is frozen, so
this project runs it once (`build_face_cache`, ``scripts/prepare_mesm.py faces``) with `repro.data.faces`
(MTCNN in pure torch, a batch of frames at a time) and the readers read the crops:

    <root>/<DATASET>_FACES48/<uttr_id>.npy     uint8 (F, 48, 48, 3) RGB crops of the sampled frames
    <root>/<DATASET>_FACES48/<uttr_id>.json    {"frames": [stored frame indices], "fallback": [bool per frame],
                                               "n_images": stored frames of the utterance}
    <root>/<DATASET>_FACES48/index.json        every utterance's record + the settings (written last)

The frames cropped are those the default sampling picks at ``--img-interval`` (IEMOCAP: every 15th stored frame at
500 ms; MOSEI: every stored frame, which also covers the compounded sub-sampling QUIRK). The image MTCNN sees is
the authors': IEMOCAP's stored 224² half-frame; MOSEI's stored frame halved when taller than 360 px, then
centre-cropped (zero-padded where smaller) to 360² (torchvision ``Resize`` + ``CenterCrop``).

The fallback is the centred 48² window; QUIRK ``--quirk-fixed-crop`` (reader switch ``quirk_fixed_crop``) uses the
authors' arithmetic (`repro.data.faces.fixed_crop_box`: the columns shifted half a crop left) and writes its own
cache, ``<DATASET>_FACES48_QUIRKCROP/``, so both can exist.

Resumable: an utterance whose ``.json`` exists is skipped (the ``.npy`` is written first, both atomically). An
utterance without frames gets an empty record (the readers drop it, as the authors' collate does, and count it);
one whose every frame fell back to the fixed crop is counted and listed in the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from repro.data.base import DataError, has_synthetic_mark
from repro.data.mesm_layout import (
    ASSUMED_FPS,
    SPLIT_FILES,
    Layout,
    count_images,
    frame_indices,
    image_prefix,
    layout_of,
    read_split,
    utterance_folder,
)
from repro.files import atomic_save_npy, atomic_write_text

FACE_SIZE = 48
INDEX = "index.json"
FORMAT = "mesm-faces-1"
Cropper = Callable[[np.ndarray], "np.ndarray | None"]


# ---------------------------------------------------------------------------------------------------------------
# the image MTCNN sees


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """torchvision's ``CenterCrop(size)`` on an (H, W, C) image: zero-pad a side shorter than `size` (left/top get
    the smaller half), then cut the centre with offsets ``round((H - size) / 2)``."""
    h, w = image.shape[:2]
    if h < size or w < size:
        pad_h, pad_w = max(0, size - h), max(0, size - w)
        image = np.pad(image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
        h, w = image.shape[:2]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return np.ascontiguousarray(image[top:top + size, left:left + size])


def read_frame(path: Path, layout: Layout) -> np.ndarray:
    """A stored frame as MTCNN gets it in the authors' code: uint8 (S, S, 3) RGB (S = 224 IEMOCAP, 360 MOSEI)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if layout.key == "mosei" and img.height > layout.frame_size:
                img = img.resize((img.width // 2, img.height // 2), Image.BILINEAR)
            image = np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"cannot read frame {path} ({(str(err).splitlines() or ['?'])[0]}): truncated or not a "
                        f"jpg; fix: prepare this utterance again (delete its folder and rerun "
                        f"scripts/prepare_mesm.py {layout.key}; it resumes)") from None
    return center_crop(image, layout.frame_size) if layout.key == "mosei" else image


# ---------------------------------------------------------------------------------------------------------------
# building the cache


@dataclass
class FaceReport:
    folder: Path
    prepared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    all_fallback: list[str] = field(default_factory=list)  # every frame fell back to the fixed crop
    no_frames: list[str] = field(default_factory=list)  # no stored frame: the readers drop these


def default_cropper(weights_dir: Path | None = None, quirk_fixed_crop: bool = False) -> tuple[Cropper, Cropper, str]:
    """MTCNN (`repro.data.faces`, imported here only: the readers never need it) and the authors' fixed crop."""
    from repro.data.faces import FaceCropper, default_weights_dir, fixed_crop

    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    return (FaceCropper.from_folder(folder), (lambda image: fixed_crop(image, size=FACE_SIZE, quirk=quirk_fixed_crop)),
            "mtcnn")


def split_ids(root: Path, layout: Layout) -> list[str]:
    """The ids of the three split files, in order, each once."""
    seen: dict[str, None] = {}
    for split in SPLIT_FILES:
        seen.update(dict.fromkeys(read_split(root, layout, split)))
    return list(seen)


def _checked_face(face, image_path: Path) -> np.ndarray:
    face = np.asarray(face)
    if face.shape != (FACE_SIZE, FACE_SIZE, 3):
        raise DataError(f"the face cropper returned shape {face.shape} for {image_path}, expected "
                        f"({FACE_SIZE}, {FACE_SIZE}, 3); fix: check repro.data.faces (or the cropper passed)")
    return np.clip(np.rint(face), 0, 255).astype(np.uint8) if face.dtype != np.uint8 else face


def crop_utterance(folder: Path, layout: Layout, uttr_id: str, img_interval: int, cropper: Cropper,
                   fallback: Cropper) -> tuple[np.ndarray, dict]:
    """The crops of one utterance's sampled frames and its record."""
    if not folder.is_dir():
        raise DataError(f"no folder {folder} for utterance {uttr_id} of the split files; fix: prepare it "
                        f"({layout.prepare_command()}) or drop the id from the split files")
    prefix = image_prefix(layout, uttr_id)
    n_images = count_images(folder, prefix)
    frames = frame_indices(n_images, layout.key, img_interval)
    paths = [folder / f"{prefix}{k}.jpg" for k in frames]
    images = [read_frame(path, layout) for path in paths]
    # MTCNN's batched detection when the cropper has it (repro.data.faces.FaceCropper.crop_batch), else one by one
    found = cropper.crop_batch(images) if hasattr(cropper, "crop_batch") and images else [cropper(i) for i in images]
    faces, fell_back = [], []
    for path, image, face in zip(paths, images, found, strict=True):
        fell_back.append(face is None)
        faces.append(_checked_face(fallback(image) if face is None else face, path))
    crops = np.stack(faces) if faces else np.zeros((0, FACE_SIZE, FACE_SIZE, 3), np.uint8)
    return crops, {"frames": frames, "fallback": fell_back, "n_images": n_images}


def build_face_cache(root: Path, dataset: str, img_interval: int = 500, cropper: Cropper | None = None,
                     fallback: Cropper | None = None, cropper_name: str | None = None,
                     ids: Iterable[str] | None = None, progress: bool = True,
                     weights_dir: Path | None = None, quirk_fixed_crop: bool = False) -> FaceReport:
    """Crop the faces of every utterance of the split files (or `ids`) not yet done; then write index.json.

    `cropper(image) -> (48, 48, 3) uint8 | None` and `fallback(image) -> (48, 48, 3)` default to MTCNN and the
    authors' fixed crop (`repro.data.faces`; `quirk_fixed_crop`: their offsets, written to the QUIRKCROP cache).
    A bad utterance goes into the report with its one-line reason."""
    root, layout = Path(root), layout_of(dataset)
    if cropper is None:
        cropper, default_fallback, cropper_name = default_cropper(weights_dir, quirk_fixed_crop)
        fallback = fallback or default_fallback
    if fallback is None:
        raise ValueError("give `fallback` with a custom `cropper`")
    ids = list(ids) if ids is not None else split_ids(root, layout)
    out = root / layout.faces_folder(quirk_fixed_crop)
    out.mkdir(parents=True, exist_ok=True)
    report = FaceReport(out)
    todo = [u for u in ids if not (out / f"{u}.json").is_file()]
    report.skipped = [u for u in ids if u not in set(todo)]
    with progress_bar(len(todo), progress, f"{layout.key} faces") as bar:
        task = bar.add_task("faces", total=len(todo)) if bar is not None else None
        for uttr_id in todo:
            try:
                crops, record = crop_utterance(utterance_folder(root, layout, uttr_id), layout, uttr_id,
                                               img_interval, cropper, fallback)
                atomic_save_npy(out / f"{uttr_id}.npy", crops)
                atomic_write_text(out / f"{uttr_id}.json", json.dumps(record) + "\n")
                report.prepared.append(uttr_id)
            except (DataError, OSError) as err:
                report.bad.append((uttr_id, str(err)))
            if bar is not None:
                bar.advance(task)
    write_index(out, layout, img_interval, cropper_name or getattr(cropper, "__name__", type(cropper).__name__),
                quirk_fixed_crop, report)
    return report


def progress_bar(total: int, enabled: bool, what: str):
    """A rich progress bar (rich is a dependency), or a no-op."""
    from contextlib import nullcontext

    if not enabled or total == 0:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())


def write_index(out: Path, layout: Layout, img_interval: int, cropper_name: str, quirk_fixed_crop: bool = False,
                report: FaceReport | None = None) -> Path:
    """index.json from every utterance record in the cache `out` (this run's and earlier ones'), written last."""
    out = Path(out)
    records = {}
    for path in sorted(out.glob("*.json")):
        if path.name == INDEX:
            continue
        record = json.loads(path.read_text())
        records[path.stem] = record
        if report is not None and not record["frames"]:
            report.no_frames.append(path.stem)
        elif report is not None and all(record["fallback"]):
            report.all_fallback.append(path.stem)
    index = {"format": FORMAT, "dataset": layout.key, "img_interval": int(img_interval), "fps": ASSUMED_FPS,
             "face_size": FACE_SIZE, "frame_size": layout.frame_size, "cropper": cropper_name,
             "fixed_crop_quirk": bool(quirk_fixed_crop), "synthetic": has_synthetic_mark(out.parent),
             "utterances": records}
    path = out / INDEX
    atomic_write_text(path, json.dumps(index) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
# reading it


def read_face_index(root: Path, layout: Layout, img_interval: int, quirk_fixed_crop: bool = False) -> dict:
    """index.json of the face cache; absent or unreadable: one line naming the folder and the command that builds
    it."""
    path = Path(root) / layout.faces_folder(quirk_fixed_crop) / INDEX
    command = layout.faces_command(root, img_interval, quirk_fixed_crop)
    if not path.is_file():
        raise DataError(f"missing face cache {path.parent}/ ({INDEX}): expected the {FACE_SIZE}² face crops of the "
                        f"sampled frames, computed once; fix: run `{command}` (needs the MTCNN weights: "
                        f"python scripts/fetch_mtcnn_weights.py)")
    try:
        index = json.loads(path.read_text())
        ok = index.get("format") == FORMAT and index.get("dataset") == layout.key
        records = index["utterances"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DataError(f"cannot read {path}: truncated or not a face-cache index; fix: run `{command}` again "
                        f"(it rebuilds the index)") from None
    if not ok or not isinstance(records, dict):
        raise DataError(f"{path} is not a {layout.key} face-cache index ({FORMAT}); fix: run `{command}`")
    return index


def cached_positions(record: dict, wanted: list[int], uttr_id: str, folder: Path, command: str) -> np.ndarray:
    """Rows of the cached crops that hold the `wanted` stored frames (all must be cached)."""
    position = {int(k): row for row, k in enumerate(record["frames"])}
    missing = [k for k in wanted if k not in position]
    if missing:
        raise DataError(f"{folder / (uttr_id + '.npy')} has no crop of frame {missing[0]} (it holds frames "
                        f"{record['frames'][:4]}…): the cache was built for another img_interval; fix: run "
                        f"`{command}`")
    return np.array([position[k] for k in wanted], np.int64)
