"""POM speaker-trait recognition reader (Park et al. 2014; RMFN §4.1 and Table 3).

POM: 903 movie-review videos, each annotated for speaker traits. RMFN evaluates 12 of them (Table 3: con,
pas, voi, cre, viv, exp, res, rel, tho, ner, per, hum) with accuracy over A7 / A5 / A6 classes. The prepared
pickle (``scripts/prepare_cmu.py --dataset pom``, MulT layout, one segment per video) holds the 18 columns
of the SDK's ``POM_Labels.csd`` in this order (its "dimension names" metadata, A2Zadeh/CMU-MultimodalSDK
issue #262): sentiment, confident, passionate, voice_pleasant, dominant, credible, vivid, expertise,
entertaining, reserved, trusting, lazy, relaxed, outgoing, thorough, nervous, humerous, persuasion.

Ranges (`TRAITS`): the maintainer's answer in issue #262 is "their range is identical to the original paper".
Park et al. 2014 rate persuasiveness and the high-level attributes on 7-point scales (1..7) and the Big-Five
items (BFI-10: reserved, trusting, lazy, relaxed, outgoing, thorough, nervous) on 5-point scales (1..5);
labels are averages over annotators, so they need not be integers. The humorous scale is not stated in the
sources reachable here (ASSUMPTION: 1..7 for the range check; RMFN's Table 3 uses 6 classes for it).

Class counts (`trait_classes`): RMFN's A7 / A5 / A6 are the number of integer values between the rounded
minimum and the rounded maximum of a trait's labels over all splits: ``round(max) - round(min) + 1`` (numpy
round, half to even). On labels that span a 1..7 scale this is 7, on 1..5 it is 5; humorous gives 6 when its
labels span 1..6 (what Table 3 implies). The table keeps RMFN's count per trait (``table3_classes``) so a run
can check the derived counts against the paper.

Samples: ``{"text", "audio", "vision"}`` float32 tensors, ``<modality>_mask`` by the left-padding rule of
`repro.data.cmu.nonzero_mask` (the prepared pickle is LEFT zero-padded: only the leading run of all-zero steps
is padding; an all-zero step inside a segment, e.g. a FACET frame with no face, is real), ``label`` float32
(len(traits),) for multi-output regression, ``id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from repro.data.base import DataError, Reader
from repro.data.cmu import (
    FILE_SPLITS,
    MODALITIES,
    MaskedArrayDataset,
    _counts_equal,
    _features,
    _ids,
    _key,
    _load_pickle,
    _split,
    nonzero_mask,
)
from repro.data.csd_word_alignment import POM_LABEL_COLUMNS


@dataclass(frozen=True)
class Trait:
    column: str  # name in POM_Labels.csd's "dimension names"
    abbreviation: str  # RMFN's Table 3 header
    scale: tuple[float, float]  # valid label range
    table3_classes: int | None  # RMFN Table 3 metric (A7 -> 7, A5 -> 5, A6 -> 6); None: not in Table 3


SEVEN, FIVE = (1.0, 7.0), (1.0, 5.0)
TRAITS: dict[str, Trait] = {
    "sentiment": Trait("sentiment", "sen", SEVEN, None),
    "confident": Trait("confident", "con", SEVEN, 7),
    "passionate": Trait("passionate", "pas", SEVEN, 7),
    "voice_pleasant": Trait("voice_pleasant", "voi", SEVEN, 7),
    "dominant": Trait("dominant", "dom", SEVEN, None),
    "credible": Trait("credible", "cre", SEVEN, 7),
    "vivid": Trait("vivid", "viv", SEVEN, 7),
    "expertise": Trait("expertise", "exp", SEVEN, 7),
    "entertaining": Trait("entertaining", "ent", SEVEN, None),
    "reserved": Trait("reserved", "res", FIVE, 5),
    "trusting": Trait("trusting", "tru", FIVE, None),
    "lazy": Trait("lazy", "laz", FIVE, None),
    "relaxed": Trait("relaxed", "rel", FIVE, 5),
    "outgoing": Trait("outgoing", "out", FIVE, None),
    "thorough": Trait("thorough", "tho", FIVE, 5),
    "nervous": Trait("nervous", "ner", FIVE, 5),
    "humorous": Trait("humerous", "hum", SEVEN, 6),  # scale ASSUMED (see module docstring)
    "persuasive": Trait("persuasion", "per", SEVEN, 7),
}
# RMFN Table 3, left to right.
TABLE3_TRAITS = ("confident", "passionate", "voice_pleasant", "credible", "vivid", "expertise", "reserved",
                 "relaxed", "thorough", "nervous", "persuasive", "humorous")
POM_HINT = ("build pom_data.pkl with scripts/prepare_cmu.py --dataset pom --csd-dir <POM .csd folder> --folds "
            "<pom_std_folds.py> --out <data.reader.root>")


def trait_classes(labels: np.ndarray | Sequence[np.ndarray], traits: Sequence[str] = TABLE3_TRAITS) -> dict[str, int]:
    """RMFN's class count per trait: ``round(max) - round(min) + 1`` over all rows of `labels` ((N, K) or a
    list of such arrays, e.g. the three splits), column k belonging to ``traits[k]``."""
    y = np.concatenate([np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in
                        (labels if isinstance(labels, (list, tuple)) else [labels])])
    if y.ndim != 2 or y.shape[1] != len(traits):
        raise DataError(f"labels have shape {y.shape}, expected (N, {len(traits)}) for traits {list(traits)}")
    if len(y) == 0:
        raise DataError("no labels to count classes from; expected at least one row")
    lo, hi = np.round(y.min(axis=0)), np.round(y.max(axis=0))
    return {t: int(h - lo_) + 1 for t, lo_, h in zip(traits, lo, hi)}


class POMReader(Reader):
    """Reads ``<root>/pom_data.pkl`` (MulT layout from scripts/prepare_cmu.py); labels = the chosen traits."""

    num_folds = 0
    prepare_hint = POM_HINT
    data_format = ("pom_data.pkl (scripts/prepare_cmu.py, MulT layout): {train,valid,test: {text, audio, vision "
                   "(N,T,D), labels (N,1,18) traits, id}}, label_names")
    synthetic_mark = "a top-level 'SYNTHETIC' key in the pickle"
    # as for the other CMU fixtures, whose sequences are shorter than the release's (tables' SMOKE runs read it so)
    fixture_overrides = ("data.check_steps=false",)

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures_csd import write_pom

        return write_pom(folder, **options)

    def __init__(self, root: str | Path, filename: str = "pom_data.pkl", traits: Sequence[str] = TABLE3_TRAITS,
                 label_columns: Sequence[str] | None = None):
        unknown = [t for t in traits if t not in TRAITS]
        if unknown or not traits:
            raise DataError(f"unknown POM trait(s) {unknown or '(none given)'}; choose from {list(TRAITS)}")
        self.path = Path(root) / filename
        self.traits = tuple(traits)
        self.label_columns = tuple(label_columns) if label_columns is not None else None
        self.name = "pom"
        self.what = "pom_data.pkl (dict of splits train/valid/test with text/audio/vision/labels, MulT layout)"
        self.synthetic = False
        self.labels: dict[str, np.ndarray] = {}

    def _columns(self, data: Mapping) -> tuple[str, ...]:
        if self.label_columns is not None:
            return self.label_columns
        names = data.get("label_names")
        return tuple(str(n) for n in names) if names is not None else POM_LABEL_COLUMNS

    def _labels(self, raw, where: str, columns: tuple[str, ...]) -> np.ndarray:
        y = np.asarray(raw)
        if y.ndim == 3 and y.shape[1] == 1:
            y = y[:, 0, :]
        if y.ndim != 2 or y.dtype.kind not in "uif":
            raise DataError(f"{where} has {y.dtype} {tuple(y.shape)}, expected float (N, 1, K) or (N, K) trait "
                            f"labels; fix: {POM_HINT}")
        if y.shape[1] != len(columns):
            raise DataError(f"{where} has {y.shape[1]} label columns but {len(columns)} names {list(columns)}; "
                            f"expected one name per column; fix: {POM_HINT} (or set data.reader.label_columns)")
        missing = [TRAITS[t].column for t in self.traits if TRAITS[t].column not in columns]
        if missing:
            raise DataError(f"{where} has no label column(s) {missing} (present: {list(columns)}); expected the "
                            f"POM_Labels.csd dimensions; fix: {POM_HINT} (or choose other data.reader.traits)")
        out = np.stack([y[:, columns.index(TRAITS[t].column)] for t in self.traits], axis=1).astype(np.float32)
        for k, t in enumerate(self.traits):
            lo, hi = TRAITS[t].scale
            bad = ~np.isfinite(out[:, k]) | (out[:, k] < lo) | (out[:, k] > hi)
            if bad.any():
                raise DataError(f"{where}: trait {t!r} has {int(bad.sum())} labels outside [{lo:g}, {hi:g}] "
                                f"(e.g. {out[bad, k][:3].tolist()}); expected POM's rating scale; fix: {POM_HINT}")
        return out

    def load(self, fold: int | None = None) -> dict[str, MaskedArrayDataset]:
        self.check_fold(fold)
        data = _load_pickle(self.path, POM_HINT, self.what)
        self.synthetic = "SYNTHETIC" in data
        columns = self._columns(data)
        out, self.labels = {}, {}
        for split, skey in FILE_SPLITS.items():
            d = _split(data, self.path, skey, POM_HINT, self.what)
            where = f"{self.path}[{skey!r}]"
            arrays, masks = {}, {}
            for m in MODALITIES:
                x = _features(_key(d, self.path, skey, m, POM_HINT, self.what), f"{where}[{m!r}]", POM_HINT)
                if not np.all(np.isfinite(x)):
                    raise DataError(f"{where}[{m!r}] has {int((~np.isfinite(x)).sum())} non-finite values; expected "
                                    f"finite features (prepare_cmu.py zeroes them); fix: {POM_HINT}")
                arrays[m], masks[m] = x, nonzero_mask(x, padding="left")  # prepare_cmu.py left-pads
            labels = self._labels(_key(d, self.path, skey, "labels", POM_HINT, self.what), f"{where}['labels']",
                                  columns)
            raw_ids = d.get("id")
            counts = {m: len(a) for m, a in arrays.items()} | {"labels": len(labels)}
            if raw_ids is not None:
                counts["id"] = len(raw_ids)
            n = _counts_equal(counts, where, POM_HINT)
            self.labels[split] = labels
            out[split] = MaskedArrayDataset(arrays, labels, _ids(raw_ids, n, split), masks,
                                            label_dtype=torch.float32)
        return out

    def trait_classes(self) -> dict[str, int]:
        """`trait_classes` over all splits of the last `load()`."""
        if not self.labels:
            self.load()
        return trait_classes(list(self.labels.values()), self.traits)
