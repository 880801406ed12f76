"""SYNTHETIC paired MulT pickles: a word-aligned ``…_data.pkl`` and an unaligned ``…_data_noalign.pkl`` of the same
segments, for MICA's Corr. Acc ground truth (mica.txt §4.4, Table 6; IMPLEMENTATION-NOTES §4.1).

Nothing written here is real CMU-MOSI, CMU-MOSEI or IEMOCAP data and no number computed on it is a reproduction.
The two files have MulT's exact layout (`repro.data.fixtures_cmu`: key names, feature sizes, float32, LEFT
zero-padding, the top-level ``"SYNTHETIC"`` note and a ``SYNTHETIC.txt`` beside them) and are built the way the
CMU-MultimodalSDK builds word-aligned data: each word owns an ordered interval of unaligned frames and its aligned
audio/vision vector is the unweighted mean of those frames (the SDK's ``avg`` collapse). Between two words there
may be silent frames (a gap) or one shared frame (a frame straddling the word boundary intersects both words, as
in the SDK's interval intersection). Text, labels and ids are identical in both files, as in the releases.

``reprocessed_words`` breaks that rule on purpose for some words (their aligned vectors are no frame interval's
mean, as if re-extracted or re-normalised after alignment), so that a test can check that the Corr. Acc ground
truth reports the words it cannot recover (MICA Table 6's recovered / total words).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from repro.data.cmu import FILE_SPLITS, IEMOCAP_EMOTIONS, mult_filename
from repro.data.fixtures_cmu import FEATURE_DIMS, GLOVE_DIM, _signal, _write

# Frames between one word's end and the next word's start: -1 = one shared boundary frame, >0 = silent frames.
GAP_CHOICES = (-1, 0, 0, 1, 2)
MAX_LEAD = 2  # silent frames before the first / after the last word


class PairedPickles(NamedTuple):
    """Paths of the two SYNTHETIC files, the true spans and the re-processed words.

    ``spans[split][modality]`` is int64 (N, T_w, 2): the [start, end) frame interval of each word, in the
    coordinates of the unaligned (left-padded) array; padding words hold (-1, -1). Splits are ours
    (train/val/test), modalities ``audio`` and ``vision``. ``reprocessed[split]`` is bool (N, T_w): the real
    words whose aligned audio and vision vectors are NOT the mean of their frames (``reprocessed_words``); their
    ``spans`` entry still holds the frames the word owns in the unaligned file.
    """

    aligned: Path
    unaligned: Path
    spans: dict[str, dict[str, np.ndarray]]
    reprocessed: dict[str, np.ndarray]


def _frame_steps(words: int, frames_per_word: tuple[int, int]) -> int:
    """Unaligned sequence length that fits the longest possible sample (all words at the maximal span and gap)."""
    return words * frames_per_word[1] + (words - 1) * max(GAP_CHOICES) + 2 * MAX_LEAD


def _sample_spans(rng, n_words: int, frames_per_word: tuple[int, int]) -> tuple[np.ndarray, int]:
    """(n_words, 2) [start, end) spans counted from the first real frame, and the number of real frames."""
    lo, hi = frames_per_word
    spans = np.empty((n_words, 2), dtype=np.int64)
    start = int(rng.integers(0, MAX_LEAD + 1))
    for w in range(n_words):
        length = int(rng.integers(lo, hi + 1))
        spans[w] = start, start + length
        gap = int(rng.choice(GAP_CHOICES))
        if length < 2:  # a shared frame would give the next word the same start: keep starts strictly increasing
            gap = max(gap, 0)
        start = start + length + gap
    return spans, int(spans[-1, 1]) + int(rng.integers(0, MAX_LEAD + 1))


def _labels(rng, dataset: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels in MulT's layout, (count, k) target the features encode), as `write_mult_pickle` makes them."""
    if dataset == "iemocap":
        present = rng.integers(0, 2, size=(count, len(IEMOCAP_EMOTIONS)))
        return np.eye(2, dtype=np.float32)[present], 2.0 * present - 1.0
    score = np.round(rng.uniform(-3, 3, size=count), 1)
    return score.reshape(count, 1, 1).astype(np.float32), score.reshape(count, 1)


def _paired_split(rng, dataset: str, count: int, words: int, frames_per_word: tuple[int, int], skey: str):
    """(aligned split dict, unaligned split dict, {modality: (count, words, 2) true spans}) of one split."""
    labels, target = _labels(rng, dataset, count)
    n_words = rng.integers(max(1, words // 2), words + 1, size=count)
    text = _signal(rng, target, count, words, GLOVE_DIM, n_words, left=True)
    ids = [f"synthetic{skey}{i:04d}_{i % 3}" for i in range(count)]
    id_array = np.array([s.encode() for s in ids]) if dataset == "mosi" else np.array(ids, dtype=object)
    aligned = {"text": text, "labels": labels, "id": id_array}
    unaligned = {"text": text.copy(), "labels": labels.copy(), "id": id_array.copy()}
    steps = _frame_steps(words, frames_per_word)
    spans = {}
    for modality, dim in zip(("audio", "vision"), FEATURE_DIMS[dataset]):
        per_sample = [_sample_spans(rng, int(k), frames_per_word) for k in n_words]
        lengths = np.array([real for _, real in per_sample])
        frames = _signal(rng, target, count, steps, dim, lengths, left=True)
        word_vectors = np.zeros((count, words, dim), dtype=np.float32)
        true = np.full((count, words, 2), -1, dtype=np.int64)
        for i, (local, real) in enumerate(per_sample):
            first_word, first_frame = words - len(local), steps - real  # left padding of both sequences
            true[i, first_word:] = local + first_frame
            for w, (start, end) in enumerate(true[i, first_word:]):
                # float64 mean, stored float32: the SDK averages numpy float64 features
                word_vectors[i, first_word + w] = frames[i, start:end].astype(np.float64).mean(axis=0)
        aligned[modality], unaligned[modality], spans[modality] = word_vectors, frames, true
    return aligned, unaligned, spans


def _reprocess(rng, aligned: dict, unaligned: dict, count: int) -> np.ndarray:
    """Re-process `count` random real words of one split in place; returns the (N, T_w) bool mask of them.

    The word's aligned audio and vision vectors are shifted, per feature, by the range of that feature over the
    segment's frames plus one: the result lies outside [min, max] of the frames, where no interval mean can be.
    """
    real = np.flatnonzero(np.any(aligned["text"] != 0, axis=-1).ravel())
    if count > len(real):
        raise ValueError(f"reprocessed_words={count} exceeds the {len(real)} real words of a split")
    mask = np.zeros(aligned["text"].shape[:2], dtype=bool)
    mask.ravel()[rng.choice(real, size=count, replace=False)] = True
    for modality in ("audio", "vision"):
        frames = unaligned[modality].astype(np.float64)
        shift = frames.max(axis=1) - frames.min(axis=1) + 1.0  # (N, D): per segment and feature
        for i, w in zip(*np.nonzero(mask)):
            aligned[modality][i, w] = (aligned[modality][i, w] + shift[i]).astype(np.float32)
    return mask


def write_paired_mult_pickles(
    root: str | Path,
    dataset: str = "mosi",
    n: tuple[int, int, int] = (8, 4, 4),
    words: int = 6,
    frames_per_word: tuple[int, int] = (2, 9),
    seed: int = 0,
    reprocessed_words: int = 0,
) -> PairedPickles:
    """Write SYNTHETIC ``<root>/<prefix>_data.pkl`` and ``<prefix>_data_noalign.pkl`` of the same segments.

    Each sample has between ``words // 2`` and ``words`` real words (T_w = ``words`` steps, left-padded) and each
    word a span of ``frames_per_word`` = (min, max) unaligned frames (inclusive), separated by a gap from
    `GAP_CHOICES`, with up to `MAX_LEAD` silent frames before the first and after the last word. Audio and vision
    get independent spans (their frame rates differ in the releases). No audio ``-inf`` is written: the
    aligned means must stay exact. ``reprocessed_words`` > 0: in every split, that many randomly chosen real words
    get aligned audio and vision vectors that are no frame interval's mean (see `_reprocess`); everything else is
    the same as with 0 (same seed, same files otherwise). Returns the two paths, the true spans and the mask of
    re-processed words (see `PairedPickles`).
    """
    lo, hi = frames_per_word
    if not 1 <= lo <= hi or words < 1:
        raise ValueError(f"need words >= 1 and 1 <= frames_per_word[0] <= frames_per_word[1], got words={words}, "
                         f"frames_per_word={frames_per_word}")
    root = Path(root)
    aligned_path, unaligned_path = root / mult_filename(dataset, True), root / mult_filename(dataset, False)
    rng = np.random.default_rng(seed)
    note = "SYNTHETIC paired fixture written by repro.data.fixtures_paired - not a real dataset"
    aligned_data: dict = {"SYNTHETIC": note}
    unaligned_data: dict = {"SYNTHETIC": note}
    spans: dict[str, dict[str, np.ndarray]] = {}
    for (split, skey), count in zip(FILE_SPLITS.items(), n):
        aligned_data[skey], unaligned_data[skey], spans[split] = _paired_split(
            rng, dataset, count, words, (lo, hi), skey)
    # a separate stream: the data of every other word is the same as without re-processing
    reprocess_rng = np.random.default_rng([seed, 1])
    reprocessed = {split: _reprocess(reprocess_rng, aligned_data[skey], unaligned_data[skey], reprocessed_words)
                   for split, skey in FILE_SPLITS.items()}
    return PairedPickles(_write(aligned_path, aligned_data), _write(unaligned_path, unaligned_data), spans,
                         reprocessed)
