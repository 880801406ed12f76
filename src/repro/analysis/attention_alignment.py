"""MICA's cross-modal alignment analyses (mica.txt §4.4, Table 6 and Fig. 4; attention of §3.4).

* `proxy_a_distance`: the A-distance between the queries and the keys of a cross-modal attention unit (Table 6,
  "A-distance"), estimated as the proxy A-distance of Ben-David et al.: 2 (1 - 2 ε) with ε the test error of a
  linear classifier that tells queries from keys.
* `word_frame_spans` / `spans_from_datasets`: the "manual element-level alignment" the paper uses as ground
  truth, recovered from MulT's two pickles (IMPLEMENTATION-NOTES §4.1): the word-aligned file's audio/vision
  vector of a word is the mean of the unaligned file's frames in the word's interval (the CMU-MultimodalSDK's
  word-level ``avg`` collapse), so each word's [start, end) frame span can be found by matching means.
* `correlation_accuracy` / `correlation_counts` / `reverse_correlation_counts`: Table 6's "Corr. Acc", the
  fraction of words whose most-attended frame lies inside the word's span (and the frame -> word direction).
* `attention_figure`: Fig. 4, one attention map (words × frames) with the ground-truth spans outlined.

Everything works on plain numpy arrays or torch tensors (converted with `to_numpy`), not on model internals:
the caller extracts queries, keys and (head-averaged) attention weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from repro.data.base import DataError
from repro.results import save_figure

log = logging.getLogger(__name__)


def to_numpy(x) -> np.ndarray:
    """A numpy array from an array-like or a (CUDA, grad-tracking, half) torch tensor (floats become float32)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = x.float() if x.is_floating_point() else x
        return x.numpy()
    return np.asarray(x)


# -- proxy A-distance (Table 6) ---------------------------------------------------------------------------
def _balanced(queries: np.ndarray, keys: np.ndarray, rng, max_samples: int | None):
    """Subsample the larger set (and both to `max_samples`) so that chance error is exactly 0.5."""
    size = min(len(queries), len(keys), max_samples or len(queries))
    pick_q = rng.choice(len(queries), size=size, replace=False)
    pick_k = rng.choice(len(keys), size=size, replace=False)
    x = np.concatenate([queries[pick_q], keys[pick_k]]).astype(np.float64)
    y = np.repeat([0, 1], size)
    return x, y


def proxy_a_distance(queries, keys, seed: int = 0, max_samples: int | None = None, C: float = 1.0) -> float:
    """Proxy A-distance 2 (1 - 2 ε) between two sets of vectors, in [0, 2].

    queries (N_q, d) and keys (N_k, d) (numpy or torch; flatten over samples and time and keep only real steps
    first). The larger set is subsampled to the smaller's size (and both to ``max_samples`` if given), the
    pooled set is split half/half into train/test (stratified, seeded), standardised with the train statistics,
    and an L2 logistic regression (inverse strength ``C``) is fitted to tell queries (0) from keys (1). ε is its
    test error, clipped to <= 0.5: a classifier worse than chance says the sets are indistinguishable, so the
    distance is 0, not negative. The paper (Table 6) gives no classifier; Ben-David et al. and DANN use a linear
    SVM, any linear classifier estimates the same quantity.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    queries, keys = to_numpy(queries), to_numpy(keys)
    if queries.ndim != 2 or keys.ndim != 2 or queries.shape[1] != keys.shape[1]:
        raise ValueError(f"proxy_a_distance needs queries (N_q, d) and keys (N_k, d) with one d, got "
                         f"{tuple(queries.shape)} and {tuple(keys.shape)}; flatten the real steps to rows first")
    if min(len(queries), len(keys)) < 2:
        raise ValueError(f"proxy_a_distance needs at least 2 queries and 2 keys (one each for train and test), "
                         f"got {len(queries)} and {len(keys)}")
    x, y = _balanced(queries, keys, np.random.default_rng(seed), max_samples)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(x_train)
    classifier = LogisticRegression(C=C, max_iter=1000).fit(scaler.transform(x_train), y_train)
    error = float(np.mean(classifier.predict(scaler.transform(x_test)) != y_test))
    return 2.0 * (1.0 - 2.0 * min(error, 0.5))


# -- ground-truth word <-> frame spans from the two MulT pickles ----------------------------------------------
QUICK_STARTS = 8  # starts tried one by one before the all-pairs search (words usually follow within a few frames)


def _first_match(intervals, target: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[int, int, bool]:
    """(s, e, unique) of the first candidate pair (in the given order) whose mean matches on all features."""
    prefix = intervals.prefix
    means = (prefix[ends] - prefix[starts]) / (ends - starts)[:, None].astype(np.float64)
    hit = np.all(np.abs(means - target) <= intervals.tol, axis=1)
    if not hit.any():
        return -1, -1, False
    first = starts[hit][0]
    at_first = ends[hit & (starts == first)]
    return int(first), int(at_first[0]), len(at_first) == 1


class _Intervals:
    """Interval means of one segment's real frames from prefix sums P: mean of [s, e) = (P[e] - P[s]) / (e - s)."""

    def __init__(self, frames: np.ndarray, rtol: float):
        self.count = len(frames)
        self.prefix = np.concatenate([np.zeros((1, frames.shape[1])), np.cumsum(frames, axis=0)])
        self.tol = rtol * np.maximum(np.abs(frames).max(axis=0), np.finfo(np.float32).tiny)
        self.probe = int(np.argmax(frames.std(axis=0)))  # screening on a near-constant feature keeps every pair
        self._sorted_means = self._order = None

    def probe_candidates(self, value: float, min_start: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of the intervals with s >= min_start whose `probe` mean is within tolerance of `value`.

        Ordered by start, then end. The (T_f, T_f) table of probe means is built and sorted once per segment, when
        first needed; each word then costs a binary search.
        """
        if self._order is None:
            p = self.prefix[:, self.probe]
            lengths = np.arange(1, self.count + 1)[None, :] - np.arange(self.count)[:, None]  # [s, e = col + 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                means = np.where(lengths > 0, (p[None, 1:] - p[:-1, None]) / lengths, np.nan).ravel()
            self._order = np.argsort(means)  # NaN (e <= s) sorts last and never matches
            self._sorted_means = means[self._order]
        tol = self.tol[self.probe]
        lo = np.searchsorted(self._sorted_means, value - tol, side="left")
        hi = np.searchsorted(self._sorted_means, value + tol, side="right")
        starts, cols = np.divmod(np.sort(self._order[lo:hi]), self.count)
        keep = starts >= min_start
        return starts[keep], cols[keep] + 1


def _match_word(intervals: _Intervals, target: np.ndarray, lo: int) -> tuple[int, int, bool]:
    """First start s >= lo (and its end e) whose frames [s, e) average to `target` within the tolerance.

    Returns (s, e, unique) or (-1, -1, False); unique is False when several ends match at s (repeated frames make
    the span ambiguous). The first `QUICK_STARTS` starts are tried one by one, all ends at once; after that every
    (s, e) pair is screened at once on the single feature ``probe`` (the most variable one; a sorted table of
    its interval means) and only survivors are checked on all features, so a word with no match costs a
    binary search, not T_f passes over (T_f, D).
    """
    frames = intervals.count
    quick_end = min(lo + QUICK_STARTS, frames)
    for start in range(lo, quick_end):
        ends = np.arange(start + 1, frames + 1)
        found = _first_match(intervals, target, np.full(len(ends), start), ends)
        if found[0] >= 0:
            return found
    if quick_end >= frames:
        return -1, -1, False
    starts, ends = intervals.probe_candidates(float(target[intervals.probe]), quick_end)
    if not len(starts):
        return -1, -1, False
    return _first_match(intervals, target, starts, ends)


def word_frame_spans(
    aligned_feats,
    unaligned_feats,
    word_mask,
    frame_mask,
    rtol: float = 1e-4,
    max_overlap: int = 1,
) -> np.ndarray:
    """(T_w, 2) int64 [start, end) frame span of each real word; (-1, -1) for padding and unrecovered words.

    aligned_feats (T_w, D): the word-aligned file's audio or vision of one segment; unaligned_feats (T_f, D): the
    unaligned file's same modality of the same segment; word_mask (T_w,) / frame_mask (T_f,) bool: real steps.
    The frames searched are all those from the first real one on (MulT's files are LEFT-padded; an all-zero frame
    inside the sequence is kept, as the SDK averaged it into its word). Spans index the unaligned array as given
    (padding included), i.e. the key positions of the attention maps.

    Method: the frames' prefix sums P (float64) give any interval mean in O(D). Words are matched in order,
    each to the first interval [s, e) whose mean equals its aligned vector within ``rtol`` × (the largest |value|
    of that feature over the segment's frames), scanning s upwards from the previous word's end minus
    ``max_overlap`` (never at or before the previous start) and testing all ends e at once.
    Assumptions (the SDK's alignment): spans are ordered and non-overlapping except for up to ``max_overlap``
    shared boundary frames (a frame straddling a word boundary intersects both words); gaps (silence) are allowed;
    the mean is unweighted; both files hold the same un-normalised features. A word is left unrecovered (-1, -1)
    when no interval matches (e.g. its frames were cut off by the unaligned file's length limit, an audio ``-inf``
    was zeroed differently in the two files, or the word had no frames) or when several ends match at the
    chosen start (repeated frames). An unrecovered word does not move the search start. The greedy first match is
    exact for continuous features; counts of unrecovered words come from `spans_from_datasets`.
    """
    aligned, frames_all = to_numpy(aligned_feats).astype(np.float64), to_numpy(unaligned_feats).astype(np.float64)
    word_mask, frame_mask = to_numpy(word_mask).astype(bool), to_numpy(frame_mask).astype(bool)
    if aligned.ndim != 2 or frames_all.ndim != 2 or aligned.shape[1] != frames_all.shape[1]:
        raise ValueError(f"word_frame_spans needs aligned (T_w, D) and unaligned (T_f, D) features with one D, got "
                         f"{tuple(aligned.shape)} and {tuple(frames_all.shape)}; pass one segment and one modality")
    if word_mask.shape != aligned.shape[:1] or frame_mask.shape != frames_all.shape[:1]:
        raise ValueError(f"word_frame_spans masks {tuple(word_mask.shape)} / {tuple(frame_mask.shape)} do not match "
                         f"the features' steps {aligned.shape[0]} / {frames_all.shape[0]}")
    spans = np.full((len(aligned), 2), -1, dtype=np.int64)
    if not frame_mask.any():
        return spans
    # Left padding ends at the first real frame; later all-zero frames stay (the SDK averaged them into words).
    first_frame = int(np.argmax(frame_mask))
    frames = frames_all[first_frame:]
    intervals = _Intervals(frames, rtol)
    prev_start, prev_end = -1, 0
    for w in np.flatnonzero(word_mask):
        lo = max(prev_start + 1, prev_end - max_overlap, 0)
        start, end, unique = _match_word(intervals, aligned[w], lo)
        if start >= 0 and unique:
            spans[w] = first_frame + start, first_frame + end
            prev_start, prev_end = start, end
    return spans


def _check_same_segments(aligned, unaligned) -> None:
    """The two files must hold the same segments in the same order (MulT's releases do)."""
    if len(aligned) != len(unaligned) or not np.array_equal(aligned.ids, unaligned.ids):
        raise DataError(f"the aligned and unaligned splits hold different segments ({len(aligned)} vs "
                        f"{len(unaligned)} samples, or different ids/order); expected MulT's paired "
                        f"<prefix>_data.pkl and <prefix>_data_noalign.pkl of one dataset; fix: load the two "
                        f"files of the same release")
    if aligned.arrays["text"].shape != unaligned.arrays["text"].shape:
        raise DataError(f"aligned text {aligned.arrays['text'].shape} and unaligned text "
                        f"{unaligned.arrays['text'].shape} differ; expected the same words in both files; fix: "
                        f"load the two files of the same release")


def spans_from_datasets(aligned, unaligned, modality: str = "vision", **options) -> tuple[np.ndarray, dict]:
    """Spans (N, T_w, 2) of every segment of one split, and {"words", "recovered"} counts.

    aligned / unaligned: the same split of `MulTPickleReader(aligned=True)` and `(aligned=False)` (datasets with
    ``arrays``, ``masks`` and ``ids``). Words are the aligned file's real text steps. ``modality`` is ``vision``
    or ``audio``; vision is the safer ground truth: audio may hold ``-inf`` that both readers set to 0, which
    breaks the means of the words around it. ``options`` go to `word_frame_spans`. Logs the unrecovered count.
    """
    if modality not in ("audio", "vision"):
        raise ValueError(f"spans_from_datasets modality must be 'audio' or 'vision', got {modality!r}")
    _check_same_segments(aligned, unaligned)
    word_masks, spans = aligned.masks["text"], []
    for i in range(len(aligned)):
        spans.append(word_frame_spans(aligned.arrays[modality][i], unaligned.arrays[modality][i], word_masks[i],
                                      unaligned.masks[modality][i], **options))
    spans = np.stack(spans) if spans else np.zeros((0, word_masks.shape[1], 2), dtype=np.int64)
    counts = {"words": int(word_masks.sum()), "recovered": int((spans[..., 0] >= 0).sum())}
    if counts["recovered"] < counts["words"]:
        log.warning("%s spans: %d of %d real words unrecovered (no unique matching frame interval); they are "
                    "excluded from Corr. Acc", modality, counts["words"] - counts["recovered"], counts["words"])
    return spans, counts


# -- Corr. Acc (Table 6) -----------------------------------------------------------------------------------
def _argmax_keys(attention: np.ndarray, key_mask) -> np.ndarray:
    """Argmax over the last axis; keys outside ``key_mask`` (broadcast to the keys axis) never win."""
    if key_mask is not None:
        attention = np.where(to_numpy(key_mask).astype(bool)[..., None, :], attention, -np.inf)
    return attention.argmax(axis=-1)


def _check_attention(attention: np.ndarray, spans: np.ndarray, word_axis: int) -> None:
    if attention.ndim != 3 or spans.shape != (attention.shape[0], attention.shape[word_axis], 2):
        raise ValueError(f"attention {tuple(attention.shape)} and spans {tuple(spans.shape)} do not match; expected "
                         f"(N, T_t, T_s) text<-frames (or (N, T_s, T_t) for the reverse) and spans (N, T_t, 2)")


def correlation_counts(attention, spans, key_mask=None) -> tuple[int, int]:
    """(correct, total) over samples: words with a span whose most-attended frame lies in the span.

    attention (N, T_t, T_s): the (head-averaged) weights of a text <- vision or text <- audio unit, words as
    queries; spans (N, T_t, 2) from `spans_from_datasets`; key_mask (N, T_s) optional: frames allowed to win the
    argmax (default all, as MulT attends over padding too). Ties go to the first frame.
    """
    attention, spans = to_numpy(attention), to_numpy(spans)
    _check_attention(attention, spans, word_axis=1)
    best = _argmax_keys(attention, key_mask)
    valid = spans[..., 0] >= 0
    inside = (best >= spans[..., 0]) & (best < spans[..., 1])
    return int((inside & valid).sum()), int(valid.sum())


def correlation_accuracy(attention, spans, key_mask=None) -> float:
    """Corr. Acc of one sample: attention (T_t, T_s), spans (T_t, 2); NaN when no word has a span."""
    attention, spans = to_numpy(attention), to_numpy(spans)
    mask = None if key_mask is None else to_numpy(key_mask)[None]
    correct, total = correlation_counts(attention[None], spans[None], mask)
    return correct / total if total else float("nan")


def reverse_correlation_counts(attention, spans, key_mask=None) -> tuple[int, int]:
    """(correct, total) for frames attending to words: attention (N, T_s, T_t), spans (N, T_t, 2).

    Counted frames are those inside at least one recovered span; a frame is correct when its most-attended word
    is one whose span contains it (a shared boundary frame has two such words). key_mask (N, T_t): words allowed
    to win the argmax.
    """
    attention, spans = to_numpy(attention), to_numpy(spans)
    _check_attention(attention, spans, word_axis=2)
    frame = np.arange(attention.shape[1])[None, :, None]
    owns = (frame >= spans[:, None, :, 0]) & (frame < spans[:, None, :, 1])  # (N, T_s, T_t): word n holds frame m
    best = _argmax_keys(attention, key_mask)
    counted = owns.any(axis=-1)
    correct = np.take_along_axis(owns, best[..., None], axis=-1)[..., 0]
    return int((correct & counted).sum()), int(counted.sum())


# -- Fig. 4 ----------------------------------------------------------------------------------------------
def attention_figure(
    attention,
    words: Sequence[str] | None,
    out_path: str | Path,
    title: str,
    synthetic: bool,
    spans=None,
) -> Path:
    """Draw one attention map (T_t words × T_s frames) as Fig. 4 does and save it as a PNG (atomically).

    words: a label per row (None: word indices); spans (T_t, 2) optional: ground-truth frame spans drawn as
    outlines. "SYNTHETIC" is put in the title when ``synthetic``. Returns the written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    attention = to_numpy(attention).astype(np.float64)
    if attention.ndim != 2:
        raise ValueError(f"attention_figure needs one (T_t, T_s) map, got shape {tuple(attention.shape)}")
    rows, cols = attention.shape
    if words is not None and len(words) != rows:
        raise ValueError(f"attention_figure got {len(words)} words for {rows} attention rows")
    fig, ax = plt.subplots(figsize=(min(16.0, 3.0 + 0.12 * cols), min(12.0, 1.5 + 0.3 * rows)))
    image = ax.imshow(attention, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02, label="attention weight")
    ax.set_yticks(range(rows))
    ax.set_yticklabels(list(words) if words is not None else [str(i) for i in range(rows)], fontsize=7)
    ax.set_xlabel("frame (unaligned sequence position)")
    ax.set_ylabel("word")
    if spans is not None:
        for n, (start, end) in enumerate(to_numpy(spans).astype(int)):
            if start >= 0:
                ax.add_patch(Rectangle((start - 0.5, n - 0.5), end - start, 1.0, fill=False, edgecolor="red", lw=1))
    ax.set_title(("SYNTHETIC fixture data, not a reproduction — " if synthetic else "") + title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_path)


def main(argv: list[str] | None = None) -> int:
    """`python -m repro.analysis.attention_alignment <run dir>`: MICA Table 6 / Fig. 4 of a trained run
    (attention_alignment_run.py)."""
    from repro.analysis.attention_alignment_run import main as run_main

    return run_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
