"""CMU-MOSEI in MSAF's .npy layout (Su et al. / anita-hu/MSAF ``cmu_mosei/``; IMPLEMENTATION-NOTES §1.3).

``<root>/{train,val,test}/`` holds (MSAF's docstring sizes: train 16322, val 1871, test 4659)

================  ==============  ===================================================================
file              shape           content
================  ==============  ===================================================================
``visual50.npy``  (N, 50, 35)     FACET frames, the LAST 50 of each segment, LEFT zero-padded
``audio50.npy``   (N, 50, 74)     COVAREP frames, the same
``bert50.npy``    (N, 50, 768)    last BERT encoder layer over [CLS] wordpieces [SEP], RIGHT-padded
``label50.npy``   (N, 1, 7)       [sentiment in [-3, 3], happy, sad, anger, surprise, disgust, fear]
================  ==============  ===================================================================

Samples: ``vision`` (visual50), ``audio``, ``text`` (bert50) as float32 (T, D) tensors, ``<modality>_mask``
bool (T,), ``label`` = the sentiment column ``label50[:, :, 0]`` as float32 (1,) (checked in [-3, 3]) and ``id``
(``<split>_<row>``: the layout stores no segment ids).

Masks. visual/audio follow the left-padding rule of `repro.data.cmu.nonzero_mask` (the SDK's
``get_tensors(direction=False)`` left-pads: only the leading run of all-zero steps is padding, an all-zero frame
after the first real one — a FACET frame with no face, a silent COVAREP frame — is real; ±inf and NaN count as
non-zero, the mask is taken before they are zeroed). QUIRK of MSAF's text features: bert50 is padded on the
RIGHT with BERT's outputs at [PAD] tokens, which are never zero, so no zero rule can find the padding; the
text mask is all True (what MSAF's LSTMs effectively see) unless ``<split>/bert50_mask.npy`` (N, 50) — BERT's
attention mask, written by ``scripts/extract_bert.py`` — exists, in which case it is used. Note that MSAF's
LSTMs read the last time step, which for text is a [PAD] position of most segments.

Non-finite values. MSAF's dataset sets ±inf to 0 per item (``value[torch.isinf(value)] = 0``). With
``nonfinite="zero"`` (default) this reader does the same when a sample is read, after counting the entries
once at load (one warning line; counts in ``reader.nonfinite`` = {split: {modality: {"inf": n, "nan": n}}}).
NaN is zeroed too (MSAF would keep NaN and train on it; counted separately). ``nonfinite="error"`` raises
`DataError` with the counts instead. The arrays are memory-mapped (``np.load(mmap_mode="r")``) and never
materialised: the full train bert50 is 16322 x 50 x 768 float32 = 2.5 GB.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from repro.data.base import DataError, Reader, check_array, load_npy
from repro.data.cmu import (
    SENTIMENT_RANGE,
    MaskedArrayDataset,
    _counts_equal,
    _sentiment,
    nonzero_mask,
    row_chunks,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# modality -> (file stem, feature size)
FILES = {"vision": ("visual50", 35), "audio": ("audio50", 74), "text": ("bert50", 768)}
LABEL_FILE = "label50"
TEXT_MASK_FILE = "bert50_mask"
LABEL_COLUMNS = ("sentiment", "happy", "sad", "anger", "surprise", "disgust", "fear")
NONFINITE_POLICIES = ("error", "zero")

PREPARE_HINT = ("build MSAF's CMU-MOSEI folders with MSAF's cmu_mosei/dataset_prep.py (or scripts/prepare_cmu.py) "
                "into data.reader.root/<split>/")
BERT_HINT = ("write <split>/bert50.npy with scripts/extract_bert.py --texts <texts.jsonl> --out data.reader.root "
             "(or MSAF's cmu_mosei/dataset_prep.py)")


def _hint(stem: str) -> str:
    return BERT_HINT if stem.startswith("bert50") else PREPARE_HINT


def count_inf_nan(x: np.ndarray) -> tuple[int, int]:
    """(±inf count, NaN count) of `x`, scanned in chunks so a memory-mapped file is never loaded whole."""
    inf = nan = 0
    for _, part in row_chunks(x):
        finite = int(np.count_nonzero(np.isfinite(part)))
        if finite != part.size:  # rare: only then tell NaN from inf
            n = int(np.count_nonzero(np.isnan(part)))
            inf, nan = inf + part.size - finite - n, nan + n
    return inf, nan


class FiniteMaskedDataset(MaskedArrayDataset):
    """`MaskedArrayDataset` that sets the non-finite entries of the listed modalities to 0 per sample (as MSAF)."""

    def __init__(self, *args, zero_nonfinite: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.zero_nonfinite = tuple(zero_nonfinite)

    def __getitem__(self, i: int) -> dict:
        sample = super().__getitem__(i)
        for m in self.zero_nonfinite:  # the sample is a fresh copy (ArrayDataset._tensor), so editing it is safe
            x = sample[m]
            x[~torch.isfinite(x)] = 0.0
        return sample

    def subset(self, index: np.ndarray) -> FiniteMaskedDataset:
        return FiniteMaskedDataset(
            {m: a[index] for m, a in self.arrays.items()},
            self.labels[index],
            self.ids[index],
            {m: a[index] for m, a in self.masks.items()},
            self.label_dtype,
            zero_nonfinite=self.zero_nonfinite,
        )


class MSAFMoseiReader(Reader):
    """Reads MSAF's ``<root>/{train,val,test}/{visual50,audio50,bert50,label50}.npy`` (fixed splits, no folds)."""

    name = "msaf_mosei"
    num_folds = 0
    prepare_hint = PREPARE_HINT
    data_format = ("{train,val,test}/{visual50 (N,50,35), audio50 (N,50,74), bert50 (N,50,768), label50 (N,1,7)}.npy: "
                   "MSAF's CMU-MOSEI folders")
    # as for the other CMU fixtures (whose sequences are shorter than the release's); this one has MSAF's 50 steps,
    # but tables' SMOKE runs have always read it so, and their records' identities include it
    fixture_overrides = ("data.check_steps=false",)

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures_cmu import write_msaf_mosei

        return write_msaf_mosei(folder, **options)

    def __init__(self, root: str | Path, nonfinite: str = "zero",
                 label_range: tuple[float, float] = SENTIMENT_RANGE):
        if nonfinite not in NONFINITE_POLICIES:
            raise DataError(f"unknown nonfinite policy {nonfinite!r}; choose one of {list(NONFINITE_POLICIES)}")
        self.root = Path(root)
        self.nonfinite_policy = nonfinite
        self.label_range = (float(label_range[0]), float(label_range[1]))
        self.nonfinite: dict[str, dict[str, dict[str, int]]] = {}
        self.text_mask_source: dict[str, str] = {}  # split -> "bert50_mask.npy" or "all-true"
        self.synthetic = (self.root / "SYNTHETIC.txt").is_file()

    def _npy(self, folder: Path, stem: str) -> np.ndarray:
        return load_npy(folder / f"{stem}.npy", _hint(stem))

    def _text_mask(self, folder: Path, split: str, n: int, steps: int) -> np.ndarray:
        path = folder / f"{TEXT_MASK_FILE}.npy"
        if not path.is_file():
            self.text_mask_source[split] = "all-true"
            return np.ones((n, steps), dtype=bool)  # QUIRK: padding unknown (BERT's [PAD] outputs are not zero)
        mask = check_array(self._npy(folder, TEXT_MASK_FILE), path, (n, steps), BERT_HINT)
        if not np.isin(mask, (0, 1)).all():
            raise DataError(f"{path} has values other than 0/1, expected BERT's attention mask; fix: {BERT_HINT}")
        self.text_mask_source[split] = path.name
        return np.asarray(mask, dtype=bool)

    def _check_finite(self, split: str, arrays: dict[str, np.ndarray], folder: Path) -> dict[str, dict[str, int]]:
        counts = {m: dict(zip(("inf", "nan"), count_inf_nan(a))) for m, a in arrays.items()}
        bad = {m: c for m, c in counts.items() if c["inf"] or c["nan"]}
        if bad and self.nonfinite_policy == "error":
            files = ", ".join(f"{FILES[m][0]}.npy: {c['inf']} inf, {c['nan']} NaN" for m, c in bad.items())
            raise DataError(f"{folder} has non-finite features ({files}); expected finite values; fix: "
                            f"{PREPARE_HINT}, or set data.reader.nonfinite=zero to set them to 0 per item as MSAF does")
        return counts

    def _load_split(self, split: str) -> FiniteMaskedDataset:
        folder = self.root / split
        if not folder.is_dir():
            raise DataError(f"missing folder {folder}: expected MSAF's CMU-MOSEI split with "
                            f"{', '.join(s for s, _ in FILES.values())}, {LABEL_FILE} .npy files; fix: {PREPARE_HINT}")
        arrays = {}
        for m, (stem, dim) in FILES.items():
            arrays[m] = check_array(self._npy(folder, stem), folder / f"{stem}.npy", (None, None, dim), _hint(stem))
        raw_labels = check_array(self._npy(folder, LABEL_FILE), folder / f"{LABEL_FILE}.npy",
                                 (None, 1, len(LABEL_COLUMNS)), PREPARE_HINT)
        counts = {f"{FILES[m][0]}.npy": len(a) for m, a in arrays.items()} | {f"{LABEL_FILE}.npy": len(raw_labels)}
        n = _counts_equal(counts, folder, PREPARE_HINT)
        labels = _sentiment(np.array(raw_labels[:, :, 0]), folder / f"{LABEL_FILE}.npy", PREPARE_HINT,
                            self.label_range)
        self.nonfinite[split] = self._check_finite(split, arrays, folder)
        # left-padded; ±inf is non-zero: a real step
        masks = {m: nonzero_mask(arrays[m], padding="left") for m in ("vision", "audio")}
        masks["text"] = self._text_mask(folder, split, n, arrays["text"].shape[1])
        dirty = tuple(m for m, c in self.nonfinite[split].items() if c["inf"] or c["nan"])
        ids = np.array([f"{split}_{i}" for i in range(n)])
        return FiniteMaskedDataset(arrays, labels, ids, masks, label_dtype=torch.float32, zero_nonfinite=dirty)

    def load(self, fold: int | None = None) -> dict[str, FiniteMaskedDataset]:
        self.check_fold(fold)
        self.nonfinite, self.text_mask_source = {}, {}
        out = {split: self._load_split(split) for split in SPLITS}
        dirty = {f"{s}/{m}": c for s, mods in self.nonfinite.items() for m, c in mods.items() if c["inf"] or c["nan"]}
        if dirty:
            inf, nan = sum(c["inf"] for c in dirty.values()), sum(c["nan"] for c in dirty.values())
            detail = ", ".join(f"{k} {c['inf']}/{c['nan']}" for k, c in dirty.items())
            log.warning("%s: %d ±inf and %d NaN feature values are set to 0 per item as MSAF's loader does "
                        "(inf/NaN per split/modality: %s)", self.root, inf, nan, detail)
        return out
