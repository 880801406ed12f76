"""Word-level alignment of CMU SDK computational sequences into MulT-style pickles (RMFN §4.2).

RMFN §4.2: "We obtain the aligned video and audio features by computing the expectation of their modality
feature values over each word utterance time interval". MFN's ``data_loader.py`` (IMPLEMENTATION-NOTES §2.1)
does the same for MOSI: GloVe per word, COVAREP (100 Hz) and FACET (30 fps) averaged over each word's span,
an empty span gives zeros, NaN/-inf become 0, the last ``max_words`` words are kept and sequences are LEFT
zero-padded (MulT's layout, `repro.data.cmu`).

Per video (one lazy read of each ``.csd``):

1. Words: the words sequence's byte-string tokens; pause tokens (``sp``, the forced aligner's silences) are
   dropped, as the SDK users' pipelines do (e.g. ``remove_pause_tokens``) and MulT's text has no pauses.
2. Text: the GloVe vector of each word = the mean of the word-vectors rows whose interval overlaps the word's
   interval (the word-vectors sequence is already word-aligned, so that is the one row with the same interval;
   matching by time also works for MOSEI's vectors file, which has no ``sp`` rows).
3. Vision / audio: the mean of the FACET / COVAREP frames whose interval overlaps the word's interval
   (strict overlap: ``frame_start < word_end`` and ``frame_end > word_start``; a zero-length word takes the
   frame that contains its time). Non-finite values (NaN, ±inf: COVAREP's log energy of silence) are set to
   0 and counted before averaging. Computed for all words of a video at once from cumulative sums over the
   time-sorted frames (no Python loop per frame; an overlap matrix when intervals are not monotone).
4. Segments: the rows of the labels sequence (opinion segments for MOSI/MOSEI, one row per video for POM). A
   word belongs to the segment that contains its midpoint, so no word is counted twice. The segment keeps its
   last ``max_words`` words, left zero-padded to ``max_words``; the id is ``[video, row index]`` (the SDK's
   ``video[k]`` naming; MulT's reader joins the parts with "_").

Splits are the SDK's standard folds (`repro.data.csd.read_std_folds`); videos of a fold that are missing from
any sequence are skipped and counted (the SDK's ``hard_unify`` drops them too). Segments whose label is not
finite are skipped and counted.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from repro.data.base import DataError
from repro.data.csd import ComputationalSequence, folds_hint, mmsdk_folds, read_csd, read_std_folds
from repro.files import atomic_write

log = logging.getLogger(__name__)

ROLES = ("words", "word_vectors", "facet", "covarep", "labels")
MODALITY_OF_ROLE = {"word_vectors": "text", "covarep": "audio", "facet": "vision"}
PAUSE_TOKENS = frozenset({"sp"})
CSD_FIX = "re-download the dataset's computational sequences with the CMU Multimodal SDK"
DEFAULT_MAX_WORDS = 50  # MulT's T_l for MOSI/MOSEI (IMPLEMENTATION-NOTES §4.1); MFN used 20
MOSEI_LABEL_COLUMNS = ("sentiment", "happy", "sad", "anger", "surprise", "disgust", "fear")  # notes §1.3
# POM_Labels.csd "dimension names" (A2Zadeh/CMU-MultimodalSDK issue #262; "humerous" spelled as the SDK does).
POM_LABEL_COLUMNS = (
    "sentiment", "confident", "passionate", "voice_pleasant", "dominant", "credible", "vivid", "expertise",
    "entertaining", "reserved", "trusting", "lazy", "relaxed", "outgoing", "thorough", "nervous", "humerous",
    "persuasion",
)


@dataclass(frozen=True)
class DatasetSpec:
    """Where one dataset's sequences and folds live in the SDK (``standard_datasets/<sdk_folder>/*.py``)."""

    pickle: str
    files: dict[str, str]  # role -> file stem (<stem>.csd); the stem is also the expected root name
    label_columns: tuple[str, ...]
    keep_columns: tuple[int, ...]  # label columns written to the pickle
    sdk_folder: str
    folds_file: str
    mmsdk_attr: str
    root_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # other accepted root names


# File names from the SDK's standard_datasets/{CMU_MOSI/cmu_mosi.py, CMU_MOSEI/cmu_mosei.py, POM/pom.py} URLs.
DATASETS: dict[str, DatasetSpec] = {
    "mosi": DatasetSpec(
        pickle="mosi_data.pkl",
        files={"words": "CMU_MOSI_TimestampedWords", "word_vectors": "CMU_MOSI_TimestampedWordVectors",
               "facet": "CMU_MOSI_Visual_Facet_42", "covarep": "CMU_MOSI_COVAREP",
               "labels": "CMU_MOSI_Opinion_Labels"},
        label_columns=("sentiment",), keep_columns=(0,),
        sdk_folder="CMU_MOSI", folds_file="cmu_mosi_std_folds.py", mmsdk_attr="cmu_mosi",
    ),
    "mosei": DatasetSpec(
        pickle="mosei_senti_data.pkl",
        files={"words": "CMU_MOSEI_TimestampedWords", "word_vectors": "CMU_MOSEI_TimestampedWordVectors",
               "facet": "CMU_MOSEI_VisualFacet42", "covarep": "CMU_MOSEI_COVAREP", "labels": "CMU_MOSEI_Labels"},
        label_columns=MOSEI_LABEL_COLUMNS, keep_columns=(0,),  # MulT's mosei_senti: sentiment only
        sdk_folder="CMU_MOSEI", folds_file="cmu_mosei_std_folds.py", mmsdk_attr="cmu_mosei",
    ),
    "pom": DatasetSpec(
        pickle="pom_data.pkl",
        files={"words": "POM_TimestampedWords", "word_vectors": "POM_TimestampedWordVectors",
               "facet": "POM_Facet_42", "covarep": "POM_COVAREP", "labels": "POM_Labels"},
        label_columns=POM_LABEL_COLUMNS, keep_columns=tuple(range(len(POM_LABEL_COLUMNS))),
        sdk_folder="POM", folds_file="pom_std_folds.py", mmsdk_attr="pom",
    ),
}


# -- small array helpers -------------------------------------------------------------------------------
def decode_words(features: np.ndarray) -> list[str]:
    """(n, 1) byte strings (the words sequence) -> list of str."""
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in np.asarray(features)[:, 0]]


def zero_nonfinite(x: np.ndarray) -> tuple[np.ndarray, int]:
    """float64 copy of `x` with NaN/±inf set to 0, and how many there were."""
    x = np.array(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    n = int(bad.sum())
    if n:
        x[bad] = 0.0
    return x, n


def overlap_mean(features: np.ndarray, frames: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """(W, D) mean of the `features` rows (F, D) whose interval `frames` (F, 2) overlaps each span (W, 2).

    Overlap is strict (frame_start < span_end and frame_end > span_start); a zero-length span takes the frames
    with frame_start <= t < frame_end. A span without frames gets zeros (MFN's rule).
    """
    features = np.asarray(features, dtype=np.float64)
    w, d = len(spans), features.shape[1]
    if w == 0 or len(frames) == 0:
        return np.zeros((w, d))
    order = np.argsort(frames[:, 0], kind="stable")
    starts, ends, feats = frames[order, 0], frames[order, 1], features[order]
    lo_t, hi_t = spans[:, 0], spans[:, 1]
    point = hi_t <= lo_t
    if np.all(np.diff(ends) >= 0):  # sorted starts and ends: the overlapping frames are one contiguous run
        first = np.searchsorted(ends, lo_t, side="right")  # first frame ending after the span starts
        last = np.where(point, np.searchsorted(starts, lo_t, side="right"),  # frames starting at or before t
                        np.searchsorted(starts, hi_t, side="left"))  # frames starting before the span ends
        count = np.maximum(last - first, 0)
        csum = np.vstack([np.zeros((1, d)), np.cumsum(feats, axis=0)])
        total = csum[np.maximum(last, first)] - csum[first]
    else:  # overlapping/unsorted frames: explicit (W, F) membership matrix
        member = (starts[None, :] < hi_t[:, None]) & (ends[None, :] > lo_t[:, None])
        at_point = (starts[None, :] <= lo_t[:, None]) & (ends[None, :] > lo_t[:, None])
        member = np.where(point[:, None], at_point, member)
        count = member.sum(axis=1)
        total = member.astype(np.float64) @ feats
    out = np.zeros((w, d))
    has = count > 0
    out[has] = total[has] / count[has, None]
    return out


def segment_members(word_spans: np.ndarray, segments: np.ndarray) -> list[np.ndarray]:
    """For each segment (S, 2), the indices of the words (time-sorted) whose midpoint lies in [start, end)."""
    mid = word_spans.mean(axis=1) if len(word_spans) else np.zeros(0)
    order = np.argsort(mid, kind="stable")
    sorted_mid = mid[order]
    first = np.searchsorted(sorted_mid, segments[:, 0], side="left")
    last = np.searchsorted(sorted_mid, segments[:, 1], side="left")
    return [order[a:b] for a, b in zip(first, last)]


def left_pad(x: np.ndarray, steps: int) -> tuple[np.ndarray, int]:
    """Keep the last `steps` rows of `x` (T, D), LEFT zero-pad to `steps`; also return how many were cut."""
    cut = max(0, len(x) - steps)
    kept = x[cut:]
    out = np.zeros((steps, x.shape[1]), dtype=np.float32)
    if len(kept):
        out[steps - len(kept):] = kept
    return out, cut


# -- one video -----------------------------------------------------------------------------------------
@dataclass
class Summary:
    segments: dict[str, int] = field(default_factory=lambda: {"train": 0, "valid": 0, "test": 0})
    videos: dict[str, int] = field(default_factory=lambda: {"train": 0, "valid": 0, "test": 0})
    videos_missing: dict[str, int] = field(default_factory=dict)  # role -> videos of the folds it lacks
    segments_truncated: int = 0
    words_truncated: int = 0
    pause_tokens_dropped: int = 0
    segments_without_words: int = 0
    segments_bad_label: int = 0
    nonfinite_replaced: dict[str, int] = field(default_factory=lambda: {m: 0 for m in MODALITY_OF_ROLE.values()})

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


def align_video(seqs: Mapping[str, ComputationalSequence], vid: str, max_words: int, summary: Summary,
                keep_columns: tuple[int, ...], n_label_columns: int) -> list[dict]:
    """Word-aligned, left-padded segments of one video: a list of {text, audio, vision, labels, words, row}."""
    tokens, word_spans = seqs["words"].entry(vid)
    words = decode_words(tokens)
    keep = np.array([w.strip().lower() not in PAUSE_TOKENS and w.strip() != "" for w in words], dtype=bool)
    summary.pause_tokens_dropped += int((~keep).sum())
    words = [w for w, k in zip(words, keep) if k]
    word_spans = word_spans[keep]

    per_word = {}
    for role, modality in MODALITY_OF_ROLE.items():
        feats, frames = seqs[role].entry(vid)
        if feats.dtype.kind not in "uifb":
            raise DataError(f"{seqs[role].path}[{vid}] features are {feats.dtype}, expected numbers; fix: pass "
                            f"the {role} sequence for this role")
        clean, n_bad = zero_nonfinite(feats)
        summary.nonfinite_replaced[modality] += n_bad
        per_word[modality] = overlap_mean(clean, frames, word_spans)

    label_rows, segments = seqs["labels"].entry(vid)
    label_rows = np.asarray(label_rows, dtype=np.float64)
    if label_rows.shape[1] != n_label_columns:
        raise DataError(f"{seqs['labels'].path}[{vid}] has {label_rows.shape[1]} label columns, expected "
                        f"{n_label_columns}; fix: pass the dataset's own labels sequence")
    out = []
    for row, members in enumerate(segment_members(word_spans, segments)):
        label = label_rows[row, list(keep_columns)]
        if not np.all(np.isfinite(label)):
            summary.segments_bad_label += 1
            continue
        members = np.sort(members)  # time order
        if len(members) == 0:
            summary.segments_without_words += 1
        seg = {"row": row, "labels": label.astype(np.float32), "words": [words[i] for i in members]}
        for modality, x in per_word.items():
            seg[modality], cut = left_pad(x[members], max_words)
        if cut:
            summary.segments_truncated += 1
            summary.words_truncated += cut
        out.append(seg)
    return out


# -- whole dataset -------------------------------------------------------------------------------------
def load_folds(spec: DatasetSpec, folds_path: str | Path | None) -> dict[str, list[str]]:
    """The SDK's standard folds: from `folds_path`, else an installed mmsdk, else a one-line `DataError`."""
    hint = folds_hint(spec.sdk_folder, spec.folds_file)
    if folds_path is not None:
        return read_std_folds(folds_path, hint)
    folds = mmsdk_folds(spec.mmsdk_attr)
    if folds is None:
        raise DataError(f"no standard folds for {spec.sdk_folder}: --folds not given and mmsdk is not installed; "
                        f"splits are never invented; fix: {hint}")
    return folds


def open_sequences(spec: DatasetSpec, csd_dir: Path, files: Mapping[str, str] | None = None,
                   root_names: Mapping[str, str] | None = None) -> dict[str, ComputationalSequence]:
    """Open the five sequences of `spec` (file stems and expected root names overridable per role)."""
    files = {**spec.files, **(files or {})}
    seqs: dict[str, ComputationalSequence] = {}
    try:
        for role in ROLES:
            expected = (root_names or {}).get(role) or (files[role], *spec.root_aliases.get(role, ()))
            name = files[role] if files[role].endswith(".csd") else f"{files[role]}.csd"
            seqs[role] = read_csd(csd_dir / name, expected_name=None if expected == "*" else expected)
    except BaseException:
        for s in seqs.values():
            s.close()
        raise
    return seqs


def _stack(segments: list[dict], max_words: int, dims: dict[str, int], n_labels: int) -> dict:
    n = len(segments)
    split = {m: np.zeros((n, max_words, d), dtype=np.float32) for m, d in dims.items()}
    for i, seg in enumerate(segments):
        for m in dims:
            split[m][i] = seg[m]
    split["labels"] = np.array([s["labels"] for s in segments], dtype=np.float32).reshape(n, 1, n_labels)
    split["id"] = np.array([[s["vid"], str(s["row"])] for s in segments], dtype=object).reshape(n, 2)
    return split


def prepare(dataset: str, csd_dir: str | Path, out_dir: str | Path, folds_path: str | Path | None = None,
            max_words: int = DEFAULT_MAX_WORDS, texts_out: str | Path | None = None,
            files: Mapping[str, str] | None = None, root_names: Mapping[str, str] | None = None,
            progress: bool = True) -> dict:
    """Build ``<out_dir>/<spec.pickle>`` (MulT layout) from the SDK sequences in `csd_dir`; returns a summary."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
    if max_words < 1:
        raise DataError(f"--max-words must be >= 1, got {max_words}")
    spec = DATASETS[dataset]
    folds = load_folds(spec, folds_path)
    summary = Summary()
    seqs = open_sequences(spec, Path(csd_dir), files, root_names)
    synthetic = any("SYNTHETIC" in json.dumps(s.metadata, default=str) for s in seqs.values())
    by_split: dict[str, list[dict]] = {split: [] for split in folds}
    dims: dict[str, int] = {}
    try:
        total = sum(len(v) for v in folds.values())
        bar = _progress(total, progress, f"{dataset}: videos")
        for split, vids in folds.items():
            for vid in vids:
                bar.update(1)
                missing = [role for role, s in seqs.items() if vid not in s]
                for role in missing:
                    summary.videos_missing[role] = summary.videos_missing.get(role, 0) + 1
                if missing:
                    continue
                segs = align_video(seqs, vid, max_words, summary, spec.keep_columns, len(spec.label_columns))
                for seg in segs:
                    seg["vid"] = vid
                    for m in MODALITY_OF_ROLE.values():
                        d = dims.setdefault(m, seg[m].shape[1])
                        if seg[m].shape[1] != d:
                            raise DataError(f"{vid}: {m} has {seg[m].shape[1]} features but earlier videos have {d}; "
                                            f"expected one feature size per sequence; fix: {CSD_FIX}")
                by_split[split].extend(segs)
                summary.videos[split] += 1
                summary.segments[split] += len(segs)
        bar.close()
    finally:
        for s in seqs.values():
            s.close()
    empty = [split for split, segs in by_split.items() if not segs]
    if empty:
        raise DataError(f"{csd_dir}: no labelled segment for split(s) {empty} (videos missing per sequence: "
                        f"{summary.videos_missing}); expected the folds' videos in every sequence; fix: {CSD_FIX}")
    n_labels = len(spec.keep_columns)
    data: dict = {split: _stack(segs, max_words, dims, n_labels) for split, segs in by_split.items()}
    data["label_names"] = [spec.label_columns[i] for i in spec.keep_columns]
    data["prepare_summary"] = summary.as_dict()
    if synthetic:
        data["SYNTHETIC"] = "built from SYNTHETIC computational sequences - not a real dataset"
    out = Path(out_dir) / spec.pickle
    atomic_write(out, lambda f: pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL), binary=True)
    if texts_out is not None:
        lines = [json.dumps({"split": split, "id": f"{s['vid']}_{s['row']}", "text": " ".join(s["words"])})
                 for split, segs in by_split.items() for s in segs]
        atomic_write(Path(texts_out), lambda f: f.write(("\n".join(lines) + "\n").encode("utf-8")), binary=True)
    result = summary.as_dict() | {"path": str(out), "dims": dims, "max_words": max_words, "synthetic": synthetic}
    log.info("wrote %s: %s", out, result)
    return result



class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm  # noqa: PLC0415  (optional: only for the progress bar)
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="video")
