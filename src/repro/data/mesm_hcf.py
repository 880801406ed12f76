"""MESM's hand-crafted-feature (HCF) inputs of the baselines (Dai et al., NAACL 2021, mesm.txt §5.2 "Baselines";
IMPLEMENTATION-NOTES §5.1): GloVe words, acoustic frames and facial action units for IEMOCAP and CMU-MOSEI, on the
same utterances, labels and splits as the end-to-end readers (`repro.data.mesm`).

Layout (the authors' ``--datapath`` folder, wenliangdai/Multimodal-End2end-Sparse README "Dataset")::

    <root>/IEMOCAP_SPLIT/{train,valid,test}_split.txt         one utterance id per line (Ses03F_impro03_F018)
    <root>/IEMOCAP_RAW_PROCESSED/meta.pkl                     uttr id -> {..., 'label': 'ang'|'exc'|..., ...}
    <root>/IEMOCAP_HCF_FEATURES/{phase}_text_features.pt      pickle: uttr id -> (T, 300) GloVe vectors
    <root>/IEMOCAP_HCF_FEATURES/{phase}_audio_features.pt     pickle: uttr id -> {'L': (D, T), 'R': (D, T)}
    <root>/IEMOCAP_HCF_FEATURES/{phase}_video_features.pt     pickle: uttr id -> {'image_L_<i>': row, 'image_R_<i>': ..}
    <root>/MOSEI_SPLIT/{train,valid,test}_split.txt           <video id>_<clip>
    <root>/MOSEI_RAW_PROCESSED/meta.pkl                       id -> {'text': str, 'label': 6 ints (multi-hot)}
    <root>/MOSEI_HCF_FEATURES/mosei_senti_hcf_{phase}.pkl     {'id': (N,) str, 'text': (N, T, 300),
                                                               'audio': (N, T, D) or N x (T_i, D), 'vision': likewise}

What the authors' code does (src/datasets.py: get_dataset_iemocap / get_dataset_mosei, IEMOCAP_baseline,
MOSEI_baseline, HCFDataLoader.collate_fn_hcf, collate_fn_hcf_mosei), and this reader with it:

- Samples are the split file's ids in its order; a sample's features are looked up by id (MOSEI: by the position of
  the id in the pickle's ``id`` array, the first one when repeated). Labels come from the RAW_PROCESSED
  ``meta.pkl`` (IEMOCAP: 3-letter label -> one-hot over ang, exc, fru, hap, neu, sad; MOSEI: the 6-int multi-hot
  over anger, disgust, fear, happiness, sadness, surprise), as float32 (6,) rows for the per-emotion BCE.
- IEMOCAP speaker side: 'L' when the session's gender letter (5th character of ``Ses01F``) equals the first letter of
  the id's last token (``F018``), else 'R' (``use_left``). Audio: the side's (D, T) matrix transposed to (T, D), then
  the columns of `AUDIO_FEATURE_TYPES` (``-aft``; default ``all`` = the 144 columns of the code's hfc size 144; the
  paper's text counts 142 features, type ``disvoice_142``: the code adds columns 100 and 101, "2 empty features ...
  to make it 144", lf_transformer.py). Video: frames
  ``image_<side>_<i>`` for i in range(len(frames) // 2), skipping absent keys, in index order (``sample_by_interval``
  with full=True), each vector's last 35 entries (the OpenFace action units).
- Text: the (T, 300) GloVe rows; an utterance with no word is all padding (the authors' zeros).
- Lengths: IEMOCAP sequences are variable; MOSEI's text is a fixed-length array, and audio / vision as stored (a
  3-D array: every sample has the stored length, what the authors' model sees). Masks (``<modality>_mask``, True =
  real step): IEMOCAP every stored step; MOSEI 3-D arrays the left-padding rule of `repro.data.cmu.nonzero_mask`
  (MulT-style arrays are left zero-padded), MOSEI per-sample arrays every stored step.

Samples: ``text`` (T_t, 300), ``audio`` (T_a, D_a), ``vision`` (T_v, 35) float32, right zero-padded to the longest
sequence of that modality over the three splits (so every split has the same shapes; the default collate stacks
them), ``<modality>_mask``, ``label``, ``id``. The networks trim a batch to its own longest sequence
(`repro.models.sequence.lf_baselines.trim_to_batch`), which is the authors' pad-to-the-batch-maximum collate.
Non-finite features (none are expected) are set to 0 with one warning and counted in ``reader.nonfinite``;
``nonfinite="error"`` raises instead. Unpickling runs code from the file: load only files you trust.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from repro.data.base import DataError, Reader, require_file
from repro.data.cmu import MaskedArrayDataset, _load_pickle, count_nonfinite, nonzero_mask, zero_nonfinite_

log = logging.getLogger(__name__)

MODALITIES = ("text", "audio", "vision")
FILE_PHASES = {"train": "train", "val": "valid", "test": "test"}  # ours -> the authors' phase names
IEMOCAP_EMOTIONS = ("ang", "exc", "fru", "hap", "neu", "sad")  # getEmotionDict order
MOSEI_EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")  # the notebook's label columns
GLOVE_DIM = 300
FAU_DIM = 35  # the last 35 entries of an OpenFace row: 17 AU intensities + 18 AU presences
NONFINITE_POLICIES = ("error", "zero")


def _span(first: int, last: int, step: int = 1) -> list[int]:
    return list(range(first, last + 1, step))


def _groups(first: int, count: int, stride: int, width: int) -> list[int]:
    """`count` groups of `width` consecutive columns, one every `stride` columns from `first`."""
    return [first + g * stride + k for g in range(count) for k in range(width)]


# HCFDataLoader.FEATURE_TYPE_DICT (the authors' `-aft` codes 0..6), as column ranges of the (T, D) acoustic matrix.
# Columns 655..762 are 18 groups of 6 statistics; 0..33 the low-level block the authors keep in every type but one.
AUDIO_FEATURE_TYPES: dict[str, list[int]] = {
    "all": _span(0, 33) + _span(655, 762) + [100, 101],  # 0: 144 columns (two picked to make 144, lf_transformer.py)
    "no_bbe": _span(22, 33) + _span(655, 762),  # 1
    "no_mfcc": _span(0, 21) + _span(655, 762),  # 2
    "no_phonological": _span(0, 33),  # 3
    "mean_std_all": _span(0, 33) + _groups(655, 18, 6, 2),  # 4
    "no_min_max_all": _span(0, 33) + _groups(655, 18, 6, 4),  # 5
    "plus": (_span(0, 33) + _span(58, 103) + _span(116, 121) + _span(180, 213) + _span(238, 243)
             + _span(360, 365) + _span(424, 457) + _span(482, 487) + _span(552, 559) + _span(562, 565)
             + _span(568, 581) + _span(655, 762)),  # 6
    # mesm.txt §5.2's 142 DisVoice features (BBE + MFCC + 108 phonological statistics) without the two extra
    # columns of type 0 (datasets.py's unused module-level `audio_feature_indices`)
    "disvoice_142": _span(0, 33) + _span(655, 762),
}
AUDIO_FEATURE_CODES = tuple(AUDIO_FEATURE_TYPES)[:7]  # the authors' -aft code of each name is its position

PREPARE_HINT = ("download the authors' processed data (wenliangdai/Multimodal-End2end-Sparse README, 'Preparation') "
                "and point data.reader.root at the folder holding {dataset}_HCF_FEATURES, {dataset}_SPLIT and "
                "{dataset}_RAW_PROCESSED")


def audio_columns(feature_type: str | int) -> list[int]:
    """The acoustic columns of an audio feature type, by name (``all``) or by the authors' ``-aft`` code (0)."""
    if isinstance(feature_type, int) and not isinstance(feature_type, bool):
        if 0 <= feature_type < len(AUDIO_FEATURE_CODES):
            return AUDIO_FEATURE_TYPES[AUDIO_FEATURE_CODES[feature_type]]
    elif feature_type in AUDIO_FEATURE_TYPES:
        return AUDIO_FEATURE_TYPES[str(feature_type)]
    raise DataError(f"unknown audio feature type {feature_type!r}; expected one of {list(AUDIO_FEATURE_TYPES)} or "
                    f"the authors' code 0..{len(AUDIO_FEATURE_CODES) - 1} (data.reader.audio_features)")


def speaker_side(utterance_id: str) -> str:
    """'L' or 'R': the half of the IEMOCAP dialog frame (and the channel) of the utterance's speaker (use_left)."""
    parts = str(utterance_id).split("_")
    return "L" if parts[0][-1:] == parts[-1][:1] else "R"


class PaddedRows:
    """An array-like of per-sample (T_i, D) float32 sequences, each read right zero-padded to `steps`.

    `ArrayDataset` needs only ``len``, ``a[i]`` and ``a[index]`` (a sub-view); ``shape`` is what the datamodule's
    shape check reads. `items` is a 3-D array (rows of it are taken, never copied whole) or a list of 2-D arrays;
    `rows` picks and orders the samples of this split among them.
    """

    def __init__(self, items, rows: Sequence[int], steps: int, dim: int):
        self.items, self.rows, self.steps, self.dim = items, np.asarray(rows, dtype=np.int64), int(steps), int(dim)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.rows), self.steps, self.dim)

    ndim = 3
    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if np.ndim(index) == 0:
            x = np.asarray(self.items[int(self.rows[int(index)])], dtype=np.float32).reshape(-1, self.dim)
            out = np.zeros((self.steps, self.dim), dtype=np.float32)
            out[: len(x)] = x[: self.steps]
            return out
        return PaddedRows(self.items, self.rows[index], self.steps, self.dim)


def _lengths_mask(lengths: Sequence[int], steps: int) -> np.ndarray:
    return np.arange(steps)[None, :] < np.asarray(lengths, dtype=np.int64).reshape(-1, 1)


class _HCFReader(Reader):
    """The parts both datasets share: split files, meta.pkl labels, non-finite handling, padding across splits."""

    num_folds = 0
    dataset = ""  # IEMOCAP | MOSEI: the folder prefix
    emotions: tuple[str, ...] = ()
    synthetic_mark = "a SYNTHETIC.txt file in the data folder (beside the <DATASET>_HCF_FEATURES folder)"

    def __init__(self, root: str | Path, nonfinite: str = "zero"):
        if nonfinite not in NONFINITE_POLICIES:
            raise DataError(f"unknown nonfinite policy {nonfinite!r}; choose one of {list(NONFINITE_POLICIES)}")
        self.root = Path(root)
        self.nonfinite_policy = nonfinite
        self.nonfinite: dict[str, dict[str, int]] = {}
        self.prepare_hint = PREPARE_HINT.format(dataset=self.dataset)
        self.synthetic = False

    # -- shared files -------------------------------------------------------------------------------------------
    def split_ids(self, phase: str) -> list[str]:
        path = require_file(self.root / f"{self.dataset}_SPLIT" / f"{phase}_split.txt", self.prepare_hint)
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not ids:
            raise DataError(f"{path} lists no utterance id: expected one id per line; fix: {self.prepare_hint}")
        return ids

    def meta(self) -> Mapping:
        path = self.root / f"{self.dataset}_RAW_PROCESSED" / "meta.pkl"
        return _load_pickle(path, self.prepare_hint, "the authors' meta.pkl (a dict: utterance id -> {'label': ...})")

    def labels(self, meta: Mapping, ids: Sequence[str], phase: str) -> np.ndarray:
        where = self.root / f"{self.dataset}_RAW_PROCESSED" / "meta.pkl"
        missing = [i for i in ids if i not in meta]
        if missing:
            raise DataError(f"{where} has no entry for {len(missing)} id(s) of {phase}_split.txt (e.g. {missing[:3]}); "
                            f"expected every split id; fix: {self.prepare_hint}")
        return np.stack([self.label_row(meta[i], i, where) for i in ids]).astype(np.float32)

    def label_row(self, entry, uid: str, where: Path) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def clean(self, x: np.ndarray, phase: str, modality: str, where: str) -> np.ndarray:
        count = sum(count_nonfinite(x))  # in chunks: a MOSEI-sized array is never copied
        self.nonfinite.setdefault(phase, {})[modality] = self.nonfinite.get(phase, {}).get(modality, 0) + count
        if count and self.nonfinite_policy == "error":
            raise DataError(f"{where} has {count} non-finite values (NaN/inf); expected finite features; fix: "
                            f"{self.prepare_hint}, or set data.reader.nonfinite=zero to replace them by 0")
        if count:
            x = zero_nonfinite_(x if x.flags.writeable else x.copy())
        return x

    # -- assembling the splits ----------------------------------------------------------------------------------
    def read_phase(self, phase: str, ids: list[str]) -> dict[str, tuple[object, list[int], np.ndarray, int]]:
        """modality -> (items, rows, mask-or-lengths, feature size) of one phase."""
        raise NotImplementedError  # pragma: no cover - abstract

    def load(self, fold: int | None = None) -> dict[str, MaskedArrayDataset]:
        self.check_fold(fold)
        self.synthetic = (self.root / "SYNTHETIC.txt").is_file()
        self.nonfinite = {}
        meta = self.meta()
        phases = {}
        for split, phase in FILE_PHASES.items():
            ids = self.split_ids(phase)
            phases[split] = (ids, self.labels(meta, ids, phase), self.read_phase(phase, ids))
        steps = {m: max([1] + [masks.shape[1] for _, _, parts in phases.values()
                               for mm, (_, _, masks, _) in parts.items() if mm == m])
                 for m in self.wanted()}
        out = {}
        for split, (ids, labels, parts) in phases.items():
            arrays, masks = {}, {}
            for m, (items, rows, mask, dim) in parts.items():
                arrays[m] = PaddedRows(items, rows, steps[m], dim)
                masks[m] = np.pad(mask, ((0, 0), (0, steps[m] - mask.shape[1])))
            out[split] = MaskedArrayDataset(arrays, labels, np.array(ids), masks, label_dtype=torch.float32)
        dirty = {f"{p}/{m}": c for p, mods in self.nonfinite.items() for m, c in mods.items() if c}
        if dirty:
            log.warning("%s: %d non-finite feature values set to 0 (per phase/modality: %s)", self.root,
                        sum(dirty.values()), dirty)
        return out

    def wanted(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if self.reads(m))


class IemocapHCFReader(_HCFReader):
    """IEMOCAP_HCF_FEATURES/{phase}_{text,audio,video}_features.pt + IEMOCAP_SPLIT + IEMOCAP_RAW_PROCESSED/meta.pkl."""

    name = "iemocap_hcf"
    dataset = "IEMOCAP"
    emotions = IEMOCAP_EMOTIONS
    data_format = ("IEMOCAP_HCF_FEATURES/{train,valid,test}_{text,audio,video}_features.pt (pickled dicts: GloVe "
                   "(T,300), {'L','R'} -> (D,T) acoustic, frame -> OpenFace row), IEMOCAP_SPLIT/*_split.txt, "
                   "IEMOCAP_RAW_PROCESSED/meta.pkl labels (MESM's baselines)")
    FILES = {"text": "text", "audio": "audio", "vision": "video"}  # modality -> file infix

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures_mesm_hcf import write_iemocap_hcf

        return write_iemocap_hcf(folder, **options)

    def __init__(self, root: str | Path, audio_features: str | int = "all", nonfinite: str = "zero"):
        super().__init__(root, nonfinite)
        self.audio_columns = audio_columns(audio_features)
        self.audio_features = audio_features

    def label_row(self, entry, uid: str, where: Path) -> np.ndarray:
        label = entry.get("label") if isinstance(entry, Mapping) else None
        if label not in IEMOCAP_EMOTIONS:
            raise DataError(f"{where}[{uid!r}] has label {label!r}, expected one of {list(IEMOCAP_EMOTIONS)} (the 6 "
                            f"classes of MESM); fix: drop the id from the split file or {self.prepare_hint}")
        row = np.zeros(len(IEMOCAP_EMOTIONS), dtype=np.float32)
        row[IEMOCAP_EMOTIONS.index(label)] = 1.0
        return row

    def features_file(self, phase: str, modality: str) -> tuple[Path, Mapping]:
        path = self.root / f"{self.dataset}_HCF_FEATURES" / f"{phase}_{self.FILES[modality]}_features.pt"
        what = f"the authors' {path.name} (a pickled dict: utterance id -> features)"
        return path, _load_pickle(path, self.prepare_hint, what)

    def entry(self, features: Mapping, path: Path, uid: str):
        if uid not in features:
            raise DataError(f"{path} has no features for utterance {uid!r} of the split file; expected every split id; "
                            f"fix: {self.prepare_hint}")
        return features[uid]

    def sequence(self, x, where: str, dim: int | None, phase: str, modality: str) -> np.ndarray:
        """A (T, D) float32 matrix; an empty one (no words / frames) as (0, dim)."""
        x = np.asarray(x, dtype=np.float32)
        if x.size == 0:
            return np.zeros((0, dim or 1), dtype=np.float32)
        if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
            want = f"(T, {dim})" if dim is not None else "(T, D)"
            raise DataError(f"{where} has shape {tuple(x.shape)}, expected {want}; fix: {self.prepare_hint}")
        return self.clean(x, phase, modality, where)

    def text(self, features: Mapping, path: Path, uid: str, phase: str) -> np.ndarray:
        return self.sequence(self.entry(features, path, uid), f"{path}[{uid!r}]", GLOVE_DIM, phase, "text")

    def audio(self, features: Mapping, path: Path, uid: str, phase: str) -> np.ndarray:
        sides, side = self.entry(features, path, uid), speaker_side(uid)
        if not isinstance(sides, Mapping) or side not in sides:
            have = sorted(sides) if isinstance(sides, Mapping) else type(sides).__name__
            raise DataError(f"{path}[{uid!r}] has {have}, expected a dict with the speaker's side {side!r} (a (D, T) "
                            f"matrix per side 'L'/'R'); fix: {self.prepare_hint}")
        where = f"{path}[{uid!r}][{side!r}]"
        x = np.asarray(sides[side], dtype=np.float32)
        need = max(self.audio_columns) + 1
        if x.ndim != 2 or x.shape[0] < need:
            raise DataError(f"{where} has shape {tuple(x.shape)}, expected (D, T) with D >= {need} acoustic features "
                            f"(audio feature type {self.audio_features!r} reads columns up to {need - 1}); fix: "
                            f"{self.prepare_hint}")
        return self.sequence(x.T[:, self.audio_columns], where, len(self.audio_columns), phase, "audio")

    def vision(self, features: Mapping, path: Path, uid: str, phase: str) -> np.ndarray:
        frames, side = self.entry(features, path, uid), speaker_side(uid)
        if not isinstance(frames, Mapping):
            raise DataError(f"{path}[{uid!r}] is a {type(frames).__name__}, expected a dict frame name "
                            f"('image_{side}_<i>') -> feature vector; fix: {self.prepare_hint}")
        # sample_by_interval(full=True): indices 0 .. len(frames)//2 - 1 of the speaker's side, absent ones skipped
        names = [f"image_{side}_{i}" for i in range(len(frames) // 2) if f"image_{side}_{i}" in frames]
        rows = [np.asarray(frames[n], dtype=np.float32).reshape(-1) for n in names]
        short = [n for n, r in zip(names, rows) if r.size < FAU_DIM]
        if short:
            raise DataError(f"{path}[{uid!r}][{short[0]!r}] has {rows[names.index(short[0])].size} values, expected at "
                            f"least {FAU_DIM} (its last {FAU_DIM} are the action units); fix: {self.prepare_hint}")
        x = np.stack([r[-FAU_DIM:] for r in rows]) if rows else np.zeros((0, FAU_DIM), dtype=np.float32)
        return self.sequence(x, f"{path}[{uid!r}]", FAU_DIM, phase, "vision")

    def read_phase(self, phase: str, ids: list[str]):
        parts = {}
        dims = {"text": GLOVE_DIM, "audio": len(self.audio_columns), "vision": FAU_DIM}
        for m in self.wanted():
            path, features = self.features_file(phase, m)
            read = getattr(self, m)
            seqs = [read(features, path, uid, phase) for uid in ids]
            lengths = [len(s) for s in seqs]
            parts[m] = (seqs, range(len(ids)), _lengths_mask(lengths, max([1, *lengths])), dims[m])
        return parts


class MoseiHCFReader(_HCFReader):
    """MOSEI_HCF_FEATURES/mosei_senti_hcf_{phase}.pkl + MOSEI_SPLIT + MOSEI_RAW_PROCESSED/meta.pkl."""

    name = "mosei_hcf"
    dataset = "MOSEI"
    emotions = MOSEI_EMOTIONS
    data_format = ("MOSEI_HCF_FEATURES/mosei_senti_hcf_{train,valid,test}.pkl ({'id', 'text' (N,T,300), "
                   "'audio', 'vision' (N,T,D)}), MOSEI_SPLIT/*_split.txt, MOSEI_RAW_PROCESSED/meta.pkl labels "
                   "(MESM's baselines)")
    DIMS = {"text": GLOVE_DIM, "audio": None, "vision": FAU_DIM}  # audio: as stored (COVAREP 74 in MulT's files)

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures_mesm_hcf import write_mosei_hcf

        return write_mosei_hcf(folder, **options)

    def label_row(self, entry, uid: str, where: Path) -> np.ndarray:
        label = entry.get("label") if isinstance(entry, Mapping) else None
        row = np.asarray(label if label is not None else [], dtype=np.float64).reshape(-1)
        if row.shape != (len(MOSEI_EMOTIONS),) or not np.isin(row, (0, 1)).all():
            raise DataError(f"{where}[{uid!r}] has label {label!r}, expected 6 values 0/1 (multi-hot over "
                            f"{list(MOSEI_EMOTIONS)}); fix: {self.prepare_hint}")
        return row.astype(np.float32)

    def read_phase(self, phase: str, ids: list[str]):
        path = self.root / f"{self.dataset}_HCF_FEATURES" / f"mosei_senti_hcf_{phase}.pkl"
        what = "the authors' mosei_senti_hcf pickle (a dict with 'id', 'text', 'audio', 'vision')"
        hcf = _load_pickle(path, self.prepare_hint, what)
        rows = self.rows(hcf, path, ids)
        parts = {}
        for m in self.wanted():
            if m not in hcf:
                raise DataError(f"{path} has no key {m!r} (present: {sorted(map(str, hcf))}); expected {what}; "
                                f"fix: {self.prepare_hint}")
            parts[m] = self.modality(hcf[m], f"{path}[{m!r}]", rows, phase, m)
        return parts

    def rows(self, hcf: Mapping, path: Path, ids: list[str]) -> list[int]:
        if "id" not in hcf:
            raise DataError(f"{path} has no key 'id' (present: {sorted(map(str, hcf))}); expected the utterance ids "
                            f"('<video id>_<clip>') of its rows; fix: {self.prepare_hint}")
        position: dict[str, int] = {}
        for k, v in enumerate(np.asarray(hcf["id"]).reshape(-1).tolist()):
            position.setdefault(v.decode("utf-8") if isinstance(v, bytes) else str(v), k)  # first, as list.index
        missing = [i for i in ids if i not in position]
        if missing:
            raise DataError(f"{path} has no row for {len(missing)} id(s) of the split file (e.g. {missing[:3]}); "
                            f"expected every split id in its 'id' array; fix: {self.prepare_hint}")
        return [position[i] for i in ids]

    def modality(self, raw, where: str, rows: list[int], phase: str, m: str):
        dim = self.DIMS[m]
        if isinstance(raw, np.ndarray) and raw.dtype != object:
            x = raw
            if x.ndim != 3 or (dim is not None and x.shape[2] != dim):
                raise DataError(f"{where} has shape {tuple(x.shape)}, expected (N, T, {dim or 'D'}); fix: "
                                f"{self.prepare_hint}")
            x = self.clean(x.astype(np.float32, copy=False), phase, m, where)
            mask = nonzero_mask(x, padding="left")[rows]  # MulT-style arrays: the leading all-zero steps are padding
            return x, rows, mask, x.shape[2]
        seqs = [np.asarray(s, dtype=np.float32) for s in raw]
        seqs = [s.reshape(0, dim or 1) if s.size == 0 else s for s in seqs]
        dims = {s.shape[1] for s in seqs if s.ndim == 2}
        if any(s.ndim != 2 for s in seqs) or len(dims) > 1 or (dim is not None and dims - {dim}):
            raise DataError(f"{where} holds sequences of shapes e.g. {[tuple(s.shape) for s in seqs[:3]]}, expected "
                            f"(T, {dim or 'D'}) per sample; fix: {self.prepare_hint}")
        seqs = [self.clean(s, phase, m, where) for s in seqs]
        lengths = [len(seqs[r]) for r in rows]
        return seqs, rows, _lengths_mask(lengths, max([1, *lengths])), dims.pop() if dims else (dim or 1)
