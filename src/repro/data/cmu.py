"""CMU-MOSI / CMU-MOSEI / IEMOCAP readers for the two preprocessed pickle releases researchers use.

Sources: MulT (Tsai et al., ACL 2019; repo yaohungt/Multimodal-Transformer, ``src/dataset.py``;
IMPLEMENTATION-NOTES §4.1) and MMSA (thuiar/MMSA, ``data_loader.py``). Both are Python pickles of nested
dicts of numpy arrays. Unpickling runs code from the file: load only files you trust.

MulT: ``{mosi,mosei_senti,iemocap}_data.pkl`` (word-aligned) and ``…_data_noalign.pkl`` (unaligned)
------------------------------------------------------------------------------------------------------
Top level ``{"train", "valid", "test"}``, each a dict with

==========  ======================  ===========================================================================
key         shape                   content
==========  ======================  ===========================================================================
``text``    (N, T_l, 300)           GloVe word vectors (T_l = 50 for MOSI/MOSEI, 20 for IEMOCAP)
``audio``   (N, T_a, D_a)           COVAREP (D_a = 5 for MOSI, 74 for MOSEI/IEMOCAP); may hold ``-inf``
``vision``  (N, T_v, D_v)           FACET (D_v = 20 for MOSI, 35 for MOSEI/IEMOCAP)
``labels``  (N, 1, 1) / (N, 4, 2)   sentiment in [-3, 3] (MOSI, MOSEI) / one-hot no-yes per emotion (IEMOCAP,
                                    order Neutral, Happy, Sad, Angry)
``id``      N entries (optional)    segment ids; MOSI's are bytes; an entry may be a row of parts (joined "_")
==========  ======================  ===========================================================================

Aligned files have T_l = T_a = T_v. MulT's loader casts to float32 and sets audio ``-inf`` to 0 (QUIRK of
the release: log-energy of silence); this reader does the same, counts the entries, logs a warning and
records the counts in ``reader.audio_neginf`` ({split: count}). Sequences are LEFT zero-padded, so the mask
rule is: the padding is the LEADING run of all-zero steps, and every step from the first one with a non-zero
feature on is real (``<modality>_mask`` True), an all-zero step among them included — a FACET frame with no
face or a silent COVAREP frame inside a segment is a real step, which MulT's code attends over (it passes no
padding mask at all), and the "last real step" readout stays at the segment's true end. An ``-inf`` entry
counts as non-zero (it was a real step; the mask is taken before the cleaning). A sample whose modality is
all zeros gets an all-False mask; models must not attend over such a row without a guard.

MMSA: ``aligned_50.pkl`` / ``unaligned_50.pkl``
-----------------------------------------------
Top level ``{"train", "valid", "test"}``, each a dict with ``text`` (N, 50, 768) BERT features and/or
``text_bert`` (N, 3, 50) (rows: token ids, attention mask, segment ids), ``audio`` (N, T_a, D_a),
``vision`` (N, T_v, D_v), ``regression_labels`` (N,), ``raw_text`` (N,), ``id`` (N,), and for unaligned
data ``audio_lengths`` / ``vision_lengths`` (N,). MMSA packs sequences with these lengths, so the real
steps come first: mask = ``t < length``. Without lengths (aligned files) the rule above is used from the
other end, as MMSA's real steps come first: the padding is the TRAILING run of all-zero steps
(``nonzero_mask(x, padding="right")``); the text mask is the ``text_bert`` attention-mask row when the file
has ``text_bert`` of matching length, else the same trailing rule on ``text``. Audio ``-inf``
is set to 0 as MMSA's loader does. ``raw_text`` is kept in ``reader.raw_text`` ({split: array}).

Both readers
------------
Split names become ``train``/``val``/``test``. A sample is ``{"text", "audio", "vision"}`` float32 tensors,
``<modality>_mask`` bool (T,), ``label`` and ``id``. Labels: MOSI/MOSEI/MMSA float32 of shape (1,) (the
regression target, matching a (B, 1) model output); IEMOCAP int64 (4,), the argmax of each emotion's
2-way one-hot (1 = emotion present), for the per-emotion binary task.

Non-finite features other than the audio ``-inf`` quirk (NaN, +inf, or -inf outside audio) are unexpected
in both releases (their own loaders would train on NaN): ``nonfinite="error"`` (default) raises
`DataError` with the count; ``nonfinite="zero"`` sets them to 0, logs a warning and records the counts in
``reader.nonfinite`` ({split: {modality: count}}).

Memory: a MOSEI-sized unaligned pickle holds 6.4 GB of float32 arrays, so the readers keep them as unpickled
(float32 arrays are not copied; unpickled arrays are writable, so the cleaning above is done in place) and scan
them in chunks of `SCAN_ROWS` samples (masks and non-finite counts without array-sized temporaries).
``scripts/bench_cmu_load.py`` measures the load time and the resident memory against the arrays' size.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from repro.data.base import ArrayDataset, DataError, Reader, require_file

log = logging.getLogger(__name__)

MODALITIES = ("text", "audio", "vision")
FILE_SPLITS = {"train": "train", "val": "valid", "test": "test"}  # ours -> the pickle's key
MULT_DATASETS = {"mosi": "mosi", "mosei": "mosei_senti", "iemocap": "iemocap"}  # dataset -> file prefix
IEMOCAP_EMOTIONS = ("neutral", "happy", "sad", "angry")
SENTIMENT_RANGE = (-3.0, 3.0)
NONFINITE_POLICIES = ("error", "zero")
MMSA_TEXT_KEYS = ("text", "text_bert")
MMSA_FILENAMES = ("aligned_50.pkl", "unaligned_50.pkl")
SCAN_ROWS = 256  # samples per chunk in the mask / non-finite scans (MOSEI unaligned audio: 256 x 500 x 74 x 4 = 38 MB)

MULT_HINT = (
    "download MulT's preprocessed pickles (yaohungt/Multimodal-Transformer README, 'Archive.zip' with "
    "{mosi,mosei_senti,iemocap}_data[_noalign].pkl) into the folder data.reader.root"
)
MMSA_HINT = (
    "download MMSA's processed features (thuiar/MMSA README: <MOSI|MOSEI>/Processed/{aligned,unaligned}_50.pkl) "
    "into the folder data.reader.root"
)


def mult_filename(dataset: str, aligned: bool = True) -> str:
    """MulT's file name: ``mosi_data.pkl``, ``mosei_senti_data_noalign.pkl``, ..."""
    if dataset not in MULT_DATASETS:
        raise DataError(f"unknown MulT dataset {dataset!r}; choose one of {list(MULT_DATASETS)}")
    return f"{MULT_DATASETS[dataset]}_data{'' if aligned else '_noalign'}.pkl"


def row_chunks(x: np.ndarray):
    """Consecutive views of `SCAN_ROWS` samples: scans allocate chunk-sized temporaries, never array-sized ones."""
    for start in range(0, len(x), SCAN_ROWS):
        yield start, x[start:start + SCAN_ROWS]


PADDING_SIDES = ("left", "right")


def nonzero_mask(x: np.ndarray, padding: str = "left") -> np.ndarray:
    """(..., T) bool mask of the real steps of zero-padded sequences x (..., T, D).

    ``padding="left"`` (MulT's pickles, POM, MSAF's visual/audio: the SDK's ``get_tensors(direction=False)``):
    the padding is the leading run of all-zero steps, so a step is real iff it or an earlier step has a
    non-zero feature. ``padding="right"`` (MMSA, real steps first): the padding is the trailing run, a step is
    real iff it or a later step has a non-zero feature. An all-zero step between real ones is real either way
    (a frame with no face / a silent frame is data, not padding). A sequence with no non-zero feature is all
    False. Non-finite values (``-inf``, NaN) are non-zero. `x` of one step (ndim < 2) gives "any non-zero".
    """
    if padding not in PADDING_SIDES:
        raise ValueError(f"unknown padding side {padding!r}; choose one of {list(PADDING_SIDES)}")
    x = np.asarray(x)
    if x.ndim < 2:
        return (x != 0).any(axis=-1)
    out = np.empty(x.shape[:-1], dtype=bool)
    for start, part in row_chunks(x):  # in chunks: a full-size `x != 0` would be a quarter of a float32 copy
        np.any(part != 0, axis=-1, out=out[start:start + len(part)])
    # Extend each row's first (left) / last (right) non-zero step to the padded end, in place on the small bool
    # array (MOSEI's unaligned train audio: 16k x 500 bools, ~20 ms against seconds for the scan above).
    steps = out if padding == "left" else out[..., ::-1]
    np.logical_or.accumulate(steps, axis=-1, out=steps)
    return out


def count_nonfinite(x: np.ndarray, count_neginf: bool = False) -> tuple[int, int]:
    """(number of -inf entries, number of other non-finite entries) of `x`, scanned in chunks.

    Without `count_neginf` every non-finite entry (-inf included) is in the second number.
    """
    neginf = other = 0
    for _, part in row_chunks(x):
        bad = part.size - int(np.count_nonzero(np.isfinite(part)))
        if bad:  # rare: only then pay for the -inf test
            n = int(np.count_nonzero(np.isneginf(part))) if count_neginf else 0
            neginf, other = neginf + n, other + bad - n
    return neginf, other


def zero_nonfinite_(x: np.ndarray) -> np.ndarray:
    """Set NaN/±inf entries of the writable array `x` to 0 in place (in chunks); returns `x`."""
    for _, part in row_chunks(x):
        bad = np.logical_not(np.isfinite(part), out=np.empty(part.shape, dtype=bool))
        if bad.any():
            part[bad] = 0.0
    return x


def length_mask(lengths: np.ndarray, steps: int) -> np.ndarray:
    """(N, T) bool: True for the first ``lengths[i]`` steps (real steps first, as MMSA packs them)."""
    return np.arange(steps)[None, :] < np.asarray(lengths).reshape(-1, 1)


class MaskedArrayDataset(ArrayDataset):
    """`ArrayDataset` plus per-modality (N, T) bool masks, returned per sample as ``<modality>_mask``."""

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        labels: np.ndarray,
        ids: np.ndarray | None = None,
        masks: Mapping[str, np.ndarray] | None = None,
        label_dtype: torch.dtype = torch.long,
    ):
        super().__init__(arrays, labels, ids, label_dtype=label_dtype)
        self.masks = dict(masks or {})
        for m, a in self.masks.items():
            if len(a) != len(labels):
                raise DataError(f"mask {m!r} has {len(a)} samples but there are {len(labels)} labels")

    def __getitem__(self, i: int) -> dict:
        sample = super().__getitem__(i)
        for m, a in self.masks.items():
            sample[f"{m}_mask"] = torch.from_numpy(np.array(a[i], dtype=bool))
        return sample

    def subset(self, index: np.ndarray) -> MaskedArrayDataset:
        return MaskedArrayDataset(
            {m: a[index] for m, a in self.arrays.items()},
            self.labels[index],
            self.ids[index],
            {m: a[index] for m, a in self.masks.items()},
            self.label_dtype,
        )


# -- shared checks ---------------------------------------------------------------------------------------
def _load_pickle(path: Path, hint: str, what: str) -> dict:
    require_file(path, hint)
    try:
        with open(path, "rb") as f:
            try:
                data = pickle.load(f)
            except UnicodeDecodeError:  # a Python 2 pickle of numpy arrays
                f.seek(0)
                data = pickle.load(f, encoding="latin1")
    except Exception as err:  # unpickling raises many types (UnpicklingError, EOFError, ValueError, ...)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"cannot read {path} as a pickle ({type(err).__name__}: {reason}); expected {what}; "
                        f"fix: {hint}") from None
    if not isinstance(data, Mapping):
        raise DataError(f"{path} holds a {type(data).__name__}, expected {what} (a dict of splits); fix: {hint}")
    return data


def _split(data: Mapping, path: Path, key: str, hint: str, what: str) -> Mapping:
    if key not in data:
        raise DataError(f"{path} has no split {key!r} (present: {sorted(map(str, data))}); expected {what}; "
                        f"fix: {hint}")
    split = data[key]
    if not isinstance(split, Mapping):
        raise DataError(f"{path}[{key!r}] is a {type(split).__name__}, expected a dict of arrays; fix: {hint}")
    return split


def _key(split: Mapping, path: Path, skey: str, key: str, hint: str, what: str):
    if key not in split:
        raise DataError(f"{path}[{skey!r}] has no key {key!r} (present: {sorted(map(str, split))}); expected "
                        f"{what}; fix: {hint}")
    return split[key]


def _features(x, where: str, hint: str, dim1: int | None = None) -> np.ndarray:
    """A (N, A, B) numeric array as float32 (no copy when it already is)."""
    x = np.asarray(x)
    if x.ndim != 3 or (dim1 is not None and x.shape[1] != dim1):
        want = f"(N, {dim1}, T)" if dim1 is not None else "(N, T, D)"
        raise DataError(f"{where} has shape {tuple(x.shape)}, expected {want}; fix: {hint}")
    if x.dtype.kind not in "uifb":
        raise DataError(f"{where} has dtype {x.dtype}, expected a numeric array; fix: {hint}")
    return x.astype(np.float32, copy=False)


def _counts_equal(counts: dict[str, int], where: str, hint: str) -> int:
    if len(set(counts.values())) != 1:
        raise DataError(f"{where} has unequal sample counts {counts}; expected one row per segment in every "
                        f"array; fix: {hint}")
    return next(iter(counts.values()))


def _ids(raw, n: int, split: str) -> np.ndarray:
    if raw is None:
        return np.array([f"{split}_{i}" for i in range(n)])

    def text(v) -> str:
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

    out = []
    for v in raw:
        parts = np.asarray(v, dtype=object).ravel()
        out.append(text(parts[0]) if parts.size == 1 else "_".join(text(p) for p in parts))
    return np.array(out)


def _sentiment(labels, where: str, hint: str, label_range: tuple[float, float]) -> np.ndarray:
    """Sentiment scores (N,), (N,1) or (N,1,1) -> float32 (N, 1), checked against `label_range`."""
    y = np.asarray(labels)
    if y.dtype.kind not in "uif" or y.ndim == 0 or y.size != len(y):
        raise DataError(f"{where} has {y.dtype} {tuple(y.shape)}, expected one sentiment score per segment "
                        f"((N,), (N,1) or (N,1,1)); fix: {hint}")
    y = y.reshape(len(y), 1).astype(np.float32)
    lo, hi = label_range
    bad = ~np.isfinite(y) | (y < lo) | (y > hi)
    if bad.any():
        raise DataError(f"{where} has {int(bad.sum())} labels outside [{lo}, {hi}] (e.g. {y[bad][:3].tolist()}); "
                        f"expected sentiment scores in [{lo}, {hi}]; fix: {hint} (or set data.reader.label_range)")
    return y


def _emotions(labels, where: str, hint: str) -> np.ndarray:
    """IEMOCAP (N, 4, 2) one-hot [no, yes] per emotion -> int64 (N, 4), 1 = emotion present."""
    y = np.asarray(labels)
    k = len(IEMOCAP_EMOTIONS)
    if y.ndim != 3 or y.shape[1:] != (k, 2) or y.dtype.kind not in "uifb":
        raise DataError(f"{where} has {y.dtype} {tuple(y.shape)}, expected numeric (N, {k}, 2): a one-hot [no, yes] "
                        f"pair per emotion {list(IEMOCAP_EMOTIONS)}; fix: {hint}")
    bad = ~(np.isin(y, (0, 1)).all(axis=-1) & (y.sum(axis=-1) == 1))
    if bad.any():
        raise DataError(f"{where} has {int(bad.sum())} emotion pairs that are not one-hot (values must be 0/1 with "
                        f"exactly one 1 per pair); fix: {hint}")
    return y.argmax(axis=-1).astype(np.int64)


class _PickleReader(Reader):
    """Common loading and non-finite handling of the two pickle formats."""

    num_folds = 0
    what = "a pickle"

    def __init__(self, path: Path, nonfinite: str, label_range: tuple[float, float]):
        if nonfinite not in NONFINITE_POLICIES:
            raise DataError(f"unknown nonfinite policy {nonfinite!r}; choose one of {list(NONFINITE_POLICIES)}")
        self.path = path
        self.nonfinite_policy = nonfinite
        self.label_range = (float(label_range[0]), float(label_range[1]))
        self.audio_neginf: dict[str, int] = {}
        self.nonfinite: dict[str, dict[str, int]] = {}
        self.synthetic = False

    def _clean(self, x: np.ndarray, modality: str, split: str, where: str) -> np.ndarray:
        """Audio -inf -> 0 (the releases' quirk, counted); other non-finite values per `nonfinite`.

        Scans in chunks and replaces in place: unpickled arrays are writable, so a MOSEI-sized file is never
        copied (a read-only array, e.g. a memmap, is copied once, and only when something must be replaced).
        """
        neginf, other = count_nonfinite(x, count_neginf=modality == "audio")
        if modality == "audio":
            self.audio_neginf[split] = self.audio_neginf.get(split, 0) + neginf
            if neginf:
                log.warning("%s: %d audio values are -inf; set to 0 as the release's own loader does", where, neginf)
        if other:
            if self.nonfinite_policy == "error":
                raise DataError(f"{where} has {other} non-finite values (NaN/inf); expected finite features; fix: "
                                f"{self.prepare_hint}, or set data.reader.nonfinite=zero to replace them by 0")
            log.warning("%s: %d non-finite feature values set to 0 (nonfinite=zero)", where, other)
        if neginf or other:
            x = zero_nonfinite_(x if x.flags.writeable else x.copy())
        self.nonfinite.setdefault(split, {})[modality] = other
        return x

    def _read(self) -> dict:
        data = _load_pickle(self.path, self.prepare_hint, self.what)
        self.synthetic = "SYNTHETIC" in data
        self.audio_neginf, self.nonfinite = {}, {}
        return data


class MulTPickleReader(_PickleReader):
    """Reads MulT's ``<root>/{mosi,mosei_senti,iemocap}_data[_noalign].pkl`` (fixed splits, no folds)."""

    prepare_hint = MULT_HINT
    data_format = ("MulT's {mosi,mosei_senti,iemocap}_data[_noalign].pkl: {train,valid,test: {text, audio, vision "
                   "(N,T,D) float32, labels, id}}")
    synthetic_mark = "a top-level 'SYNTHETIC' key in the pickle"
    # the SYNTHETIC fixture's sequences are shorter than the release's: check the feature sizes only
    fixture_overrides = ("data.check_steps=false",)

    fixture_options = ("dataset", "aligned")

    @classmethod
    def write_fixture(cls, folder: Path, dataset: str = "mosi", aligned: bool = True, **options) -> Path:
        """Aligned: one MulT pickle. Unaligned: both pickles of the same segments (the aligned word vectors are
        means of their frames), so the alignment analyses (MICA T6) have their ground truth."""
        from repro.data.fixtures_cmu import write_mult_pickle
        from repro.data.fixtures_paired import write_paired_mult_pickles

        if aligned:
            write_mult_pickle(root=folder, dataset=dataset, **options)
        else:
            write_paired_mult_pickles(folder, dataset=dataset, **({"n": (16, 8, 8)} | options))
        return Path(folder)

    def __init__(
        self,
        root: str | Path,
        filename: str | None = None,
        dataset: str = "mosi",
        aligned: bool = True,
        nonfinite: str = "error",
        label_range: tuple[float, float] = SENTIMENT_RANGE,
    ):
        default = mult_filename(dataset, aligned)  # validates `dataset`
        super().__init__(Path(root) / (filename or default), nonfinite, label_range)
        self.dataset = dataset
        self.aligned = bool(aligned)
        self.name = f"mult_{dataset}"
        self.what = f"MulT's {default} layout (dict of splits train/valid/test with text/audio/vision/labels)"

    def load(self, fold: int | None = None) -> dict[str, MaskedArrayDataset]:
        self.check_fold(fold)
        data = self._read()
        out = {}
        for split, skey in FILE_SPLITS.items():
            d = _split(data, self.path, skey, self.prepare_hint, self.what)
            where = f"{self.path}[{skey!r}]"
            arrays, masks = {}, {}
            for m in MODALITIES:
                x = _features(_key(d, self.path, skey, m, self.prepare_hint, self.what), f"{where}[{m!r}]",
                              self.prepare_hint)
                masks[m] = nonzero_mask(x)  # left-padded; before cleaning: a step whose only values are -inf is real
                arrays[m] = self._clean(x, m, split, f"{where}[{m!r}]")
            raw_labels = np.asarray(_key(d, self.path, skey, "labels", self.prepare_hint, self.what))
            raw_ids = d.get("id")
            counts = {m: len(a) for m, a in arrays.items()} | {"labels": len(raw_labels)}
            if raw_ids is not None:
                counts["id"] = len(raw_ids)
            if self.aligned:
                steps = {m: a.shape[1] for m, a in arrays.items()}
                if len(set(steps.values())) != 1:
                    raise DataError(f"{where} has sequence lengths {steps} but aligned=True expects one length; fix: "
                                    f"set data.reader.aligned=false for a _noalign file, or {self.prepare_hint}")
            n = _counts_equal(counts, where, self.prepare_hint)
            if self.dataset == "iemocap":
                labels, dtype = _emotions(raw_labels, f"{where}['labels']", self.prepare_hint), torch.long
            else:
                labels = _sentiment(raw_labels, f"{where}['labels']", self.prepare_hint, self.label_range)
                dtype = torch.float32
            out[split] = MaskedArrayDataset(arrays, labels, _ids(raw_ids, n, split), masks, label_dtype=dtype)
        return out


class MMSAPickleReader(_PickleReader):
    """Reads MMSA's ``<root>/aligned_50.pkl`` or ``unaligned_50.pkl`` (MOSI/MOSEI; fixed splits, no folds)."""

    prepare_hint = MMSA_HINT

    def __init__(
        self,
        root: str | Path,
        filename: str = "aligned_50.pkl",
        text: str = "text",
        nonfinite: str = "error",
        label_range: tuple[float, float] = SENTIMENT_RANGE,
    ):
        if text not in MMSA_TEXT_KEYS:
            raise DataError(f"unknown MMSA text key {text!r}; choose one of {list(MMSA_TEXT_KEYS)}")
        super().__init__(Path(root) / filename, nonfinite, label_range)
        self.text_key = text
        self.name = "mmsa"
        self.what = (f"MMSA's {filename} layout (dict of splits train/valid/test with {text}/audio/vision/"
                     f"regression_labels/id)")
        self.raw_text: dict[str, np.ndarray] = {}

    def _lengths(self, d: Mapping, key: str, n: int, steps: int, where: str) -> np.ndarray | None:
        if key not in d:
            return None
        lengths = np.asarray(d[key])
        if lengths.ndim != 1 or len(lengths) != n or lengths.dtype.kind not in "uif":
            raise DataError(f"{where}[{key!r}] has {lengths.dtype} {tuple(lengths.shape)}, expected ({n},) integer "
                            f"lengths; fix: {self.prepare_hint}")
        if lengths.size and (lengths.min() < 0 or lengths.max() > steps or np.any(lengths != np.round(lengths))):
            raise DataError(f"{where}[{key!r}] has lengths in [{lengths.min()}, {lengths.max()}], expected integers "
                            f"in [0, {steps}]; fix: {self.prepare_hint}")
        return lengths.astype(np.int64)

    def load(self, fold: int | None = None) -> dict[str, MaskedArrayDataset]:
        self.check_fold(fold)
        data = self._read()
        self.raw_text = {}
        out = {}
        for split, skey in FILE_SPLITS.items():
            d = _split(data, self.path, skey, self.prepare_hint, self.what)
            where = f"{self.path}[{skey!r}]"

            def get(key, d=d, skey=skey):
                return _key(d, self.path, skey, key, self.prepare_hint, self.what)

            bert = None
            if "text_bert" in d:
                bert = _features(d["text_bert"], f"{where}['text_bert']", self.prepare_hint, dim1=3)
            if self.text_key == "text_bert":
                get("text_bert")  # names the key when it is missing
                raw = {"text": bert}
            else:
                raw = {"text": _features(get("text"), f"{where}['text']", self.prepare_hint)}
            for m in ("audio", "vision"):
                raw[m] = _features(get(m), f"{where}[{m!r}]", self.prepare_hint)
            raw_labels = np.asarray(get("regression_labels"))
            raw_ids = get("id")
            counts = {m: len(a) for m, a in raw.items()} | {"regression_labels": len(raw_labels), "id": len(raw_ids)}
            if bert is not None:
                counts["text_bert"] = len(bert)
            n = _counts_equal(counts, where, self.prepare_hint)

            masks = {}
            text_steps = raw["text"].shape[2] if self.text_key == "text_bert" else raw["text"].shape[1]
            if bert is not None and bert.shape[2] == text_steps:
                masks["text"] = bert[:, 1, :] > 0  # BERT attention-mask row
            else:
                masks["text"] = nonzero_mask(raw["text"], padding="right")  # MMSA: real steps first
            for m in ("audio", "vision"):
                lengths = self._lengths(d, f"{m}_lengths", n, raw[m].shape[1], where)
                masks[m] = (length_mask(lengths, raw[m].shape[1]) if lengths is not None
                            else nonzero_mask(raw[m], padding="right"))
            arrays = {m: self._clean(x, m, split, f"{where}[{m!r}]") for m, x in raw.items()}
            labels = _sentiment(raw_labels, f"{where}['regression_labels']", self.prepare_hint, self.label_range)
            if "raw_text" in d:
                self.raw_text[split] = np.asarray(d["raw_text"])
            out[split] = MaskedArrayDataset(arrays, labels, _ids(raw_ids, n, split), masks, label_dtype=torch.float32)
        return out
