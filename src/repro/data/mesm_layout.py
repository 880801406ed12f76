"""MESM's processed layout (IMPLEMENTATION-NOTES §5.1; the authors' src/datasets.py and preprocessing notebooks):
names, the speaker-side rule, frame sampling, meta.pkl and the split id lists. Shared by the readers
(`repro.data.mesm`), the face cache (`repro.data.mesm_faces`), the preparation (`repro.data.mesm_prepare`) and the
SYNTHETIC fixture (`repro.data.fixtures_mesm`).

    <root>/IEMOCAP_RAW_PROCESSED/meta.pkl        {uttr_id: {start_time, end_time, label (3 letters), text, sr, fps}}
    <root>/IEMOCAP_RAW_PROCESSED/<Ses0xY_name>/<uttr_id>/audio.wav (stereo), audio_L.wav, audio_R.wav,
                                                        image_L_{i}.jpg, image_R_{i}.jpg   (224², every video frame)
    <root>/MOSEI_RAW_PROCESSED/meta.pkl          {id: {text, label: 6 × 0/1}}
    <root>/MOSEI_RAW_PROCESSED/<id>/audio.wav, image_{i}.jpg                                (one frame every 500 ms)
    <root>/{IEMOCAP,MOSEI}_SPLIT/{train,valid,test}_split.txt                               (one id a line)

IEMOCAP's parent folder is the id's first two ``_`` fields (the notebook's ``"_".join(id.split("_")[:2])``, e.g.
``Ses01F_script01`` for ``Ses01F_script01_1_F000``); the reader finds folders by id, as the authors' glob does.
Speaker side (``use_left``): the left half of the dialog frame (and left audio channel) shows the speaker when the
session's gender letter (last character of the first field, ``Ses01F``) equals the first letter of the last field
(``F000``).

Frames (``sample_imgs_by_interval``): one every ``img_interval`` ms assuming 30 fps, i.e. indices
``range(0, n_images, int(img_interval / 1000 · 30))`` — step 15 at 500 ms. IEMOCAP stores every frame. MOSEI's
preparation already kept one frame per 500 ms, so by default MOSEI takes every stored frame (at 500 ms; generally a
step of img_interval / 500). QUIRK ``quirk_mosei_compound_subsampling``: the authors' MOSEI loader applies the
30-fps step again to the 2-fps frames (one frame per 7.5 s), falling back to ``step // 4`` when that leaves none.
Not reproduced (documented): the authors count IEMOCAP frames as ``(files − 5) // 2``, which with the notebook's
three wavs drops the last frame from the candidates; here the images themselves are counted.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repro.data.base import DataError

SPLIT_FILES = {"train": "train_split.txt", "val": "valid_split.txt", "test": "test_split.txt"}
ASSUMED_FPS = 30  # the authors' sampling assumes 30 fps (IEMOCAP's DivX avi are 29.97)
MOSEI_STORED_INTERVAL_MS = 500  # the MOSEI notebook keeps one frame per 500 ms
SPLITS_URL = "github.com/wenliangdai/Multimodal-End2end-Sparse (folder `data split/`)"
QUIRK_CROP_SUFFIX = "_QUIRKCROP"


@dataclass(frozen=True)
class Layout:
    """One dataset's names in the processed layout."""

    key: str  # iemocap | mosei
    processed: str  # folder of meta.pkl and the utterance folders
    split_dir: str
    faces_dir: str  # the face cache `scripts/prepare_mesm.py faces` writes (+ QUIRK_CROP_SUFFIX with the quirk)
    emotions: tuple[str, ...]
    frame_size: int  # side of the square frame MTCNN sees (after the authors' resize / crop)

    def prepare_command(self, root: Path | str = "<root>") -> str:
        raw = "<IEMOCAP_full_release>" if self.key == "iemocap" else "<CMU_MOSEI raw folder>"
        return f"python scripts/prepare_mesm.py {self.key} --raw {raw} --root {root}"

    def faces_folder(self, quirk_fixed_crop: bool = False) -> str:
        """The face cache's folder: the authors' fixed-crop arithmetic (QUIRK) gets its own, so both can exist."""
        return self.faces_dir + (QUIRK_CROP_SUFFIX if quirk_fixed_crop else "")

    def faces_command(self, root: Path | str, img_interval: int = 500, quirk_fixed_crop: bool = False) -> str:
        extra = "" if img_interval == 500 else f" --img-interval {img_interval}"
        extra += " --quirk-fixed-crop" if quirk_fixed_crop else ""
        return f"python scripts/prepare_mesm.py faces --dataset {self.key} --root {root}{extra}"


IEMOCAP = Layout("iemocap", "IEMOCAP_RAW_PROCESSED", "IEMOCAP_SPLIT", "IEMOCAP_FACES48",
                 ("ang", "exc", "fru", "hap", "neu", "sad"), 224)
MOSEI = Layout("mosei", "MOSEI_RAW_PROCESSED", "MOSEI_SPLIT", "MOSEI_FACES48",
               ("anger", "disgust", "fear", "happiness", "sadness", "surprise"), 360)
LAYOUTS = {"iemocap": IEMOCAP, "mosei": MOSEI}


def layout_of(dataset: str) -> Layout:
    if dataset not in LAYOUTS:
        raise DataError(f"unknown MESM dataset {dataset!r}: expected one of {', '.join(LAYOUTS)}")
    return LAYOUTS[dataset]


# ---------------------------------------------------------------------------------------------------------------
# names


def use_left(uttr_id: str) -> bool:
    """IEMOCAP's speaker side: the session's gender letter equals the first letter of the id's last field."""
    fields = uttr_id.split("_")
    return fields[0][-1] == fields[-1][0]


def side(uttr_id: str) -> str:
    return "L" if use_left(uttr_id) else "R"


def iemocap_parent(uttr_id: str) -> str:
    """The notebook's parent folder of an utterance: its first two `_` fields."""
    return "_".join(uttr_id.split("_")[:2])


def utterance_folder(root: Path, layout: Layout, uttr_id: str) -> Path:
    base = Path(root) / layout.processed
    return base / iemocap_parent(uttr_id) / uttr_id if layout.key == "iemocap" else base / uttr_id


def image_prefix(layout: Layout, uttr_id: str) -> str:
    """``image_L_`` / ``image_R_`` (IEMOCAP, the speaker's half) or ``image_`` (MOSEI)."""
    return f"image_{side(uttr_id)}_" if layout.key == "iemocap" else "image_"


def audio_name(layout: Layout, uttr_id: str) -> str:
    return f"audio_{side(uttr_id)}.wav" if layout.key == "iemocap" else "audio.wav"


def count_images(folder: Path, prefix: str) -> int:
    """Number of ``<prefix>{i}.jpg`` files, which must be numbered 0..n-1: a gap is a one-line `DataError`
    naming the first missing frame (a copy cut short), so sampling never reads the wrong frame."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.jpg$")
    numbers = sorted(int(m.group(1)) for p in Path(folder).iterdir() if (m := pattern.match(p.name)))
    if numbers and numbers[-1] != len(numbers) - 1:
        missing = next(i for i, n in enumerate(numbers) if i != n)
        raise DataError(f"missing frame {Path(folder) / f'{prefix}{missing}.jpg'}: expected frames {prefix}0.jpg.."
                        f"{prefix}{numbers[-1]}.jpg without gaps; fix: prepare this utterance again "
                        f"(delete its folder and rerun scripts/prepare_mesm.py; it resumes)")
    return len(numbers)


# ---------------------------------------------------------------------------------------------------------------
# frame sampling


def frame_step(img_interval: int, fps: int = ASSUMED_FPS) -> int:
    step = int(img_interval / 1000 * fps)
    if step < 1:
        raise DataError(f"data.reader.img_interval={img_interval} ms is shorter than one frame at {fps} fps; "
                        f"fix: use >= {int(np.ceil(1000 / fps))}")
    return step


def frame_indices(n_images: int, dataset: str, img_interval: int = 500, compound_quirk: bool = False) -> list[int]:
    """Which stored frames an utterance's video input takes (see the module docstring)."""
    if dataset == "iemocap":
        return list(range(0, n_images, frame_step(img_interval)))
    if compound_quirk:
        step = frame_step(img_interval)
        picked = list(range(0, n_images, step))
        return picked if picked else list(range(0, n_images, max(1, step // 4)))
    return list(range(0, n_images, max(1, round(img_interval / MOSEI_STORED_INTERVAL_MS))))


# ---------------------------------------------------------------------------------------------------------------
# meta.pkl and split files


def read_meta(root: Path, layout: Layout, fix: str) -> dict:
    path = Path(root) / layout.processed / "meta.pkl"
    if not path.is_file():
        raise DataError(f"missing {path}: expected the {layout.processed} layout (meta.pkl + one folder per "
                        f"utterance); fix: {fix}")
    try:
        with path.open("rb") as f:
            meta = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise DataError(f"cannot read {path} ({type(err).__name__}: {reason}): truncated or not a pickle; "
                        f"fix: copy it again or rerun {layout.prepare_command()}") from None
    if not isinstance(meta, dict) or not meta:
        raise DataError(f"{path} holds {type(meta).__name__}, expected a non-empty dict uttr_id → "
                        f"{{text, label, ...}}; fix: rerun {layout.prepare_command()}")
    return meta


def read_split(root: Path, layout: Layout, split: str) -> list[str]:
    path = Path(root) / layout.split_dir / SPLIT_FILES[split]
    if not path.is_file():
        raise DataError(f"missing split file {path}: expected one utterance id a line; fix: copy "
                        f"`data split/{layout.split_dir.replace('_SPLIT', '_split')}/{SPLIT_FILES[split]}` of "
                        f"{SPLITS_URL} to {path.parent}/")
    try:
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"cannot read {path} as text: expected one utterance id a line; fix: copy it again from "
                        f"{SPLITS_URL}") from None
    if not ids:
        raise DataError(f"{path} lists no ids: expected one utterance id a line; fix: copy it again from {SPLITS_URL}")
    return ids


def label_vector(layout: Layout, entry: dict, uttr_id: str, meta_path: Path) -> np.ndarray:
    """IEMOCAP: the 3-letter label as a one-hot float row; MOSEI: the 6 × 0/1 multi-hot row."""
    label = entry.get("label") if isinstance(entry, dict) else None
    if layout.key == "iemocap":
        if label not in layout.emotions:
            raise DataError(f"{meta_path}: utterance {uttr_id} has label {label!r}, expected one of "
                            f"{', '.join(layout.emotions)} (the 6 classes MESM uses); fix: drop the id from the "
                            f"split files or rerun {layout.prepare_command()}")
        row = np.zeros(len(layout.emotions), np.float32)
        row[layout.emotions.index(label)] = 1.0
        return row
    row = np.asarray(label if label is not None else [], dtype=np.float32).reshape(-1)
    if row.shape != (len(layout.emotions),) or not np.isin(row, (0.0, 1.0)).all():
        raise DataError(f"{meta_path}: utterance {uttr_id} has label {label!r}, expected 6 values 0/1 "
                        f"({', '.join(layout.emotions)}); fix: rerun {layout.prepare_command()}")
    return row
