"""Readers of MESM's raw-data layout for IEMOCAP (``data=iemocap_raw``) and CMU-MOSEI (``data=mosei_raw``)
(mesm.txt §4.1 "Datasets", §3.1 inputs; IMPLEMENTATION-NOTES §5.1; the authors' src/datasets.py).

Layout, names, side rule and frame sampling: `repro.data.mesm_layout`. Per utterance the sample is

- ``video``: float32 (F, 3, 48, 48), 0..255, the MTCNN face crops of the sampled frames, read from the face cache
  (`repro.data.mesm_faces`, built once by ``scripts/prepare_mesm.py faces``; ``quirk_fixed_crop`` reads the cache
  whose no-face fallback used the authors' crop arithmetic); the authors' normalisation (mean [159, 111, 102], std
  [37, 33, 32]) is a ``data.transforms`` entry of the data config;
- ``audio``: float32 (C, 1, 128, 32), the 128-mel power spectrogram of the speaker's wav cut into 32-frame chunks
  (`repro.data.mesm_audio`; IEMOCAP ``audio_L.wav`` / ``audio_R.wav`` by the side rule, MOSEI ``audio.wav``);
- ``text`` int64 (L,) token ids and ``text_mask`` bool (L,) (`repro.data.text_tokens`);
- ``label``: float32 (6,): IEMOCAP's class one-hot (ang, exc, fru, hap, neu, sad), MOSEI's multi-hot (anger,
  disgust, fear, happiness, sadness, surprise).

Batches (`collate_mesm`, the reader's ``collate`` hook that the datamodule uses): frames and chunks of all samples
concatenated, ``video_counts`` / ``audio_counts`` int64 (B,) per sample; text, mask and labels stacked; ids a list.
Utterances without any stored frame are dropped from their split at load, counted, with one warning (the authors'
collate drops samples with zero images); the face cache's index, when present, tells which, so every modality
subset of a run sees the same samples. Only the modalities the model uses are read (`Reader.modalities`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from repro.data.base import ArrayDataset, DataError, Reader, has_synthetic_mark, load_npy
from repro.data.mesm_audio import SAMPLE_RATE, wav_chunks
from repro.data.mesm_faces import FACE_SIZE, cached_positions, read_face_index
from repro.data.mesm_layout import (
    IEMOCAP,
    MOSEI,
    SPLIT_FILES,
    Layout,
    audio_name,
    frame_indices,
    label_vector,
    read_meta,
    read_split,
    utterance_folder,
)
from repro.data.text_tokens import tokenize

INTEGER_MODALITIES = ("text", "text_mask")  # token ids and the mask keep their dtypes (not float like the rest)


class FaceCrops:
    """Lazy array-like over the face cache: ``view[i]`` = uint8 (F, 3, 48, 48) crops of utterance i's sampled
    frames (rows `positions[i]` of its ``.npy``); ``view[index]`` = another view (nothing read)."""

    dtype = np.dtype(np.uint8)

    def __init__(self, paths: list[Path], positions: list[np.ndarray], fix: str):
        self.paths, self.positions, self.fix = list(paths), list(positions), fix

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, i: int) -> np.ndarray:
        crops = load_npy(self.paths[i], self.fix)
        if crops.ndim != 4 or crops.shape[1:] != (FACE_SIZE, FACE_SIZE, 3) or crops.dtype != np.uint8:
            raise DataError(f"{self.paths[i]} holds {crops.dtype} {crops.shape}, expected uint8 (F, {FACE_SIZE}, "
                            f"{FACE_SIZE}, 3); fix: {self.fix}")
        rows = self.positions[i]
        if rows.size and rows.max() >= len(crops):
            raise DataError(f"{self.paths[i]} holds {len(crops)} crops, its index.json record wants row "
                            f"{rows.max()}; fix: {self.fix}")
        return np.ascontiguousarray(np.asarray(crops[rows]).transpose(0, 3, 1, 2))

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return self._read(int(i))
        index = np.arange(len(self))[i] if isinstance(i, slice) else np.asarray(i)
        return FaceCrops([self.paths[k] for k in index], [self.positions[k] for k in index], self.fix)


class SpectrogramChunks:
    """Lazy array-like over wav files: ``view[i]`` = float32 (C, 1, 128, 32) chunks of utterance i's spectrogram."""

    dtype = np.dtype(np.float32)

    def __init__(self, paths: list[Path], dataset: str, sample_rate: int, fix: str):
        self.paths, self.dataset, self.sample_rate, self.fix = list(paths), dataset, int(sample_rate), fix

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return wav_chunks(self.paths[int(i)], self.dataset, self.sample_rate, self.fix).numpy()
        index = np.arange(len(self))[i] if isinstance(i, slice) else np.asarray(i)
        return SpectrogramChunks([self.paths[k] for k in index], self.dataset, self.sample_rate, self.fix)


class MesmDataset(ArrayDataset):
    """`ArrayDataset` whose token ids and mask keep their integer / bool dtypes."""

    def _tensor(self, m: str, i: int) -> torch.Tensor:
        if m in INTEGER_MODALITIES:
            return torch.from_numpy(np.array(self.arrays[m][i]))
        return super()._tensor(m, i)

    def subset(self, index: np.ndarray) -> MesmDataset:
        base = super().subset(index)
        return MesmDataset(base.arrays, base.labels, base.ids, label_dtype=self.label_dtype)


def _counts(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.tensor([t.shape[0] for t in tensors], dtype=torch.int64)


def collate_mesm(samples: list[dict]) -> dict:
    """The MESM batch: ``video`` (ΣF, 3, 48, 48) + ``video_counts`` (B,), ``audio`` (ΣC, 1, 128, 32) +
    ``audio_counts`` (B,), ``text`` / ``text_mask`` (B, L), ``label`` (B, 6), ``id`` list (present keys only)."""
    batch: dict = {}
    for modality in ("video", "audio"):
        if modality in samples[0]:
            parts = [s[modality] for s in samples]
            counts = _counts(parts)
            if (counts == 0).any():
                empty = samples[int((counts == 0).nonzero()[0, 0])]["id"]
                raise ValueError(f"utterance {empty} has no {modality} steps; the MESM readers drop such samples "
                                 f"at load (a sample must have >= 1 frame / chunk)")
            batch[modality] = torch.cat(parts)
            batch[f"{modality}_counts"] = counts
    for key in ("text", "text_mask", "label"):
        if key in samples[0]:
            batch[key] = torch.stack([s[key] for s in samples])
    batch["id"] = [s["id"] for s in samples]
    return batch


class MesmRawReader(Reader):
    """MESM's processed layout of one dataset (`layout`); subclasses fix the dataset."""

    layout: Layout = IEMOCAP
    num_folds = 0
    fixture_overrides = ("++data.text.tiny=true",)  # ++: rows of the same table may read the hcf layout (no text)
    fixture_run_overrides = ("data.num_workers=0",)
    synthetic_mark = "a SYNTHETIC.txt file in the root folder (beside <DATASET>_RAW_PROCESSED/)"
    collate = staticmethod(collate_mesm)

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures_mesm import write_fixture

        return write_fixture(folder, cls.layout.key, **options)

    def __init__(self, root: str | Path, img_interval: int = 500, sample_rate: int = SAMPLE_RATE,
                 text_model_dir: str | Path | None = None, text_tiny: bool = False, text_max_length: int = 50,
                 quirk_mosei_compound_subsampling: bool = False, quirk_fixed_crop: bool = False):
        self.root = Path(root)
        self.img_interval = int(img_interval)
        self.sample_rate = int(sample_rate)
        self.text_model_dir = text_model_dir
        self.text_tiny = bool(text_tiny)
        self.text_max_length = int(text_max_length)
        self.quirk_mosei_compound_subsampling = bool(quirk_mosei_compound_subsampling)
        self.quirk_fixed_crop = bool(quirk_fixed_crop)  # read the face cache built with the authors' fallback crop
        if self.quirk_mosei_compound_subsampling and self.layout.key != "mosei":
            raise DataError("data.reader.quirk_mosei_compound_subsampling=true applies to MOSEI only (IEMOCAP stores "
                            "every frame); fix: drop it")
        self.dropped: dict[str, list[str]] = {}  # per split, utterances without frames (dropped as the authors)

    @property
    def name(self) -> str:
        return f"{self.layout.key}_raw"

    @property
    def fix(self) -> str:
        return (f"prepare the layout with `{self.prepare_command}` and its faces with "
                f"`{self.faces_command}` "
                f"(or {self.point_at(self.root, 'the folder holding ' + self.layout.processed + '/')})")

    @property
    def prepare_command(self) -> str:
        return self.layout.prepare_command(self.root)

    @property
    def faces_command(self) -> str:
        return self.layout.faces_command(self.root, self.img_interval, self.quirk_fixed_crop)

    # -- ids, folders, labels ------------------------------------------------------------------------------------

    def folders(self) -> dict[str, Path]:
        """IEMOCAP: uttr id → folder, found as the authors' glob does (one level below the dialog folders)."""
        base = self.root / self.layout.processed
        return {p.name: p for p in base.glob("*/*") if p.is_dir()} if self.layout.key == "iemocap" else {}

    def folder_of(self, uttr_id: str, found: dict[str, Path], split_path: Path) -> Path:
        folder = found.get(uttr_id) or utterance_folder(self.root, self.layout, uttr_id)
        if not folder.is_dir():
            raise DataError(f"{split_path} lists {uttr_id}, which has no folder {folder}: expected its frames and "
                            f"wavs; fix: prepare it ({self.prepare_command}) or use the split files that "
                            f"match your release")
        return folder

    # -- modalities -------------------------------------------------------------------------------------------------

    def face_view(self, ids: list[str], index: dict) -> FaceCrops:
        cache = self.root / self.layout.faces_folder(self.quirk_fixed_crop)
        command = self.faces_command
        paths, positions = [], []
        for uttr_id in ids:
            record = index["utterances"].get(uttr_id)
            if record is None:
                raise DataError(f"the face cache {cache}/ has no crops of {uttr_id}: it was built before this "
                                f"utterance was prepared; fix: run `{command}` (it resumes)")
            wanted = frame_indices(int(record["n_images"]), self.layout.key, self.img_interval,
                                   self.quirk_mosei_compound_subsampling)
            positions.append(cached_positions(record, wanted, uttr_id, cache, command))
            paths.append(cache / f"{uttr_id}.npy")
        return FaceCrops(paths, positions, f"run `{command}` again after deleting the damaged file's .json")

    def audio_view(self, ids: list[str], folders: list[Path]) -> SpectrogramChunks:
        paths = [folder / audio_name(self.layout, uttr_id) for uttr_id, folder in zip(ids, folders, strict=True)]
        for path in paths:
            if not path.is_file():
                raise DataError(f"missing audio file {path}: expected the utterance's mono {self.sample_rate} Hz "
                                f"wav; fix: prepare the utterance again ({self.prepare_command}; delete "
                                f"its folder first)")
        return SpectrogramChunks(paths, self.layout.key, self.sample_rate,
                                 f"prepare the utterance again ({self.prepare_command})")

    def face_index(self) -> dict | None:
        """The face cache's index: required when video is read, used (when present) to drop frameless ones."""
        path = self.root / self.layout.faces_folder(self.quirk_fixed_crop)
        if self.reads("video") or path.is_dir():
            return read_face_index(self.root, self.layout, self.img_interval, self.quirk_fixed_crop)
        return None

    # -- load ---------------------------------------------------------------------------------------------------------

    def load_split(self, split: str, meta: dict, found: dict[str, Path], index: dict | None) -> MesmDataset:
        split_path = self.root / self.layout.split_dir / SPLIT_FILES[split]
        meta_path = self.root / self.layout.processed / "meta.pkl"
        ids = read_split(self.root, self.layout, split)
        missing = [u for u in ids if u not in meta]
        if missing:
            raise DataError(f"{split_path} lists {missing[0]} ({len(missing)} ids in all) that {meta_path} does not "
                            f"describe; fix: use the split files of the same release, or rerun "
                            f"{self.prepare_command}")
        if index is not None:
            no_frames = [u for u in ids if u in index["utterances"] and not index["utterances"][u]["frames"]]
            if no_frames:
                self.dropped[split] = no_frames
                ids = [u for u in ids if u not in set(no_frames)]
        folders = [self.folder_of(u, found, split_path) for u in ids]
        labels = np.stack([label_vector(self.layout, meta[u], u, meta_path) for u in ids])
        arrays: dict = {}
        if self.reads("video"):
            arrays["video"] = self.face_view(ids, index)
        if self.reads("audio"):
            arrays["audio"] = self.audio_view(ids, folders)
        if self.reads("text"):
            texts = [str(meta[u].get("text", "")) for u in ids]
            arrays["text"], arrays["text_mask"] = tokenize(texts, self.text_max_length, self.text_model_dir,
                                                           self.text_tiny)
        return MesmDataset(arrays, labels, np.array(ids), label_dtype=torch.float32)

    def load(self, fold: int | None = None) -> dict[str, MesmDataset]:
        self.check_fold(fold)
        meta = read_meta(self.root, self.layout, self.fix)
        self.synthetic = has_synthetic_mark(self.root)
        index = self.face_index()
        found = self.folders()
        self.dropped = {}
        splits = {split: self.load_split(split, meta, found, index) for split in SPLIT_FILES}
        if self.dropped:
            counts = ", ".join(f"{len(v)} {k}" for k, v in self.dropped.items())
            warnings.warn(f"{self.root / self.layout.processed}: dropped {counts} utterance(s) without any frame (as "
                          f"the authors' collate does), e.g. {next(iter(self.dropped.values()))[0]}", stacklevel=2)
        return splits


class IemocapRawReader(MesmRawReader):
    """IEMOCAP in MESM's layout: 6 classes one-hot (ang, exc, fru, hap, neu, sad)."""

    layout = IEMOCAP
    data_format = ("MESM's IEMOCAP layout: IEMOCAP_RAW_PROCESSED/meta.pkl + <Ses0xY_name>/<uttr_id>/audio_{L,R}.wav, "
                   "image_{L,R}_{i}.jpg (224²); IEMOCAP_SPLIT/{train,valid,test}_split.txt; IEMOCAP_FACES48/ "
                   "face cache (scripts/prepare_mesm.py faces)")


class MoseiRawReader(MesmRawReader):
    """CMU-MOSEI in MESM's layout: 6 emotions multi-hot (anger, disgust, fear, happiness, sadness, surprise)."""

    layout = MOSEI
    data_format = ("MESM's CMU-MOSEI layout: MOSEI_RAW_PROCESSED/meta.pkl + <id>/audio.wav, image_{i}.jpg (2 fps); "
                   "MOSEI_SPLIT/{train,valid,test}_split.txt; MOSEI_FACES48/ face cache (scripts/prepare_mesm.py "
                   "faces)")
