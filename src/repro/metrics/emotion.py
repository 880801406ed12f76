"""MESM's per-emotion binary metrics and validation-tuned thresholds (Dai et al., NAACL 2021, §4 / Tables 3-5;
IMPLEMENTATION-NOTES §5.4-5.5, §6; the authors' ``src/evaluate.py`` ``eval_iemocap`` and ``weighted_acc``).

The network emits one logit per emotion, (N, E); the score of emotion e is ``sigmoid(logit)``; labels are (N, E) in
{0, 1} (IEMOCAP's 6 one-hot classes read as 6 binary tasks, MOSEI's 6 multi-hot emotions). Emotion e is predicted
present when ``score > threshold_e`` (strictly greater, as the authors' ``pred[pred > t] = 1``). With TP, FP, TN, FN
counted per emotion over all N samples, P = TP + FN, Nn = TN + FP:

- ``acc``        (TP + TN) / N, plain accuracy (the authors' IEMOCAP "Acc" since their Aug-2022 fix, issue #15).
- ``wacc``       (TP·Nn/P + TN) / (2·Nn) = (TP/P + TN/Nn) / 2, weighted accuracy (``weighted_acc``; MOSEI "WAcc").
                 With one class only in the split (P = 0 or Nn = 0) the formula divides by zero; the value is then
                 the recall of the class present, as scikit-learn's ``balanced_accuracy_score`` (with its warning).
- ``f1``         binary F1 of the positive class, 2TP / (2TP + FP + FN); 0 when that is 0/0 (scikit-learn's
                 ``f1_score`` with ``zero_division`` 0, the authors' value).
- ``precision``  TP / (TP + FP), 0 when nothing is predicted positive;  ``recall``  TP / P, 0 when P = 0.
- ``auc``        ROC-AUC of the scores (not the thresholded predictions), = the Mann-Whitney statistic with ties
                 counted half (scikit-learn's ``roc_auc_score``). Undefined with one class only: NaN with a warning
                 (the authors' call raises there), and left out of ``auc/mean``.

Each metric is reported per emotion as ``<metric>/<emotion>`` and as ``<metric>/mean``, the unweighted mean over
emotions (the authors' ``np.average``; for ``auc`` the mean over the emotions where it is defined).

Thresholds (`tune_thresholds`, option ``thresholds: tuned``): per emotion, the value of the grid 0.05, 0.10, ...,
0.95 (`THRESHOLD_GRID`; the authors' ``np.arange(0.05, 1, 0.05)``) that maximises that emotion's binary F1 on the
given split; on ties the smallest (``np.argmax`` returns the first maximum of the ascending grid). The task tunes
them on validation and applies them to test (`repro.task`); ``fixed_0.5`` uses 0.5 everywhere.

`EpochScores` is the torchmetrics state that gathers an epoch's scores and labels (``cat``-reduced, so every
process sees all samples under DDP); the metrics are then computed once, in float64, by `emotion_metrics`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata
from torchmetrics import Metric, MetricCollection
from torchmetrics.utilities import dim_zero_cat

EMOTION_BCE_METRICS = ("acc", "wacc", "f1", "precision", "recall", "auc")
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95
FIXED_THRESHOLD = 0.5
THRESHOLD_MODES = ("tuned", "fixed_0.5")


@dataclass(frozen=True)
class BinaryCounts:
    """Per-emotion confusion counts, each an (E,) float64 array (float: the ratios below are exact divisions)."""

    tp: np.ndarray
    fp: np.ndarray
    tn: np.ndarray
    fn: np.ndarray

    @property
    def positives(self) -> np.ndarray:
        return self.tp + self.fn

    @property
    def negatives(self) -> np.ndarray:
        return self.tn + self.fp


def _as_matrix(x, name: str) -> np.ndarray:
    array = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"emotion metrics expect (samples, emotions) {name}, got shape {array.shape}")
    return array


def _scores_and_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = _as_matrix(scores, "scores"), _as_matrix(labels, "labels")
    if scores.shape != labels.shape:
        raise ValueError(f"emotion metrics expect scores and labels of one shape, got {scores.shape} and "
                         f"{labels.shape}")
    return scores, labels > 0.5


def predict(scores, thresholds) -> np.ndarray:
    """(N, E) bool: emotion e present where score > thresholds[e] (strict, as the authors)."""
    scores = _as_matrix(scores, "scores")
    return scores > np.asarray(thresholds, dtype=np.float64).reshape(1, -1)


def binary_counts(pred: np.ndarray, true: np.ndarray) -> BinaryCounts:
    """Counts per column of (N, E) bool predictions and labels."""
    pred, true = np.asarray(pred, dtype=bool), np.asarray(true, dtype=bool)
    return BinaryCounts(
        tp=(pred & true).sum(axis=0).astype(np.float64),
        fp=(pred & ~true).sum(axis=0).astype(np.float64),
        tn=(~pred & ~true).sum(axis=0).astype(np.float64),
        fn=(~pred & true).sum(axis=0).astype(np.float64),
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division result)."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def accuracy(c: BinaryCounts) -> np.ndarray:
    return _ratio(c.tp + c.tn, c.positives + c.negatives)


def precision(c: BinaryCounts) -> np.ndarray:
    return _ratio(c.tp, c.tp + c.fp)


def recall(c: BinaryCounts) -> np.ndarray:
    return _ratio(c.tp, c.positives)


def f1(c: BinaryCounts) -> np.ndarray:
    # 2TP / (2TP + FP + FN) of integer counts: the same double as scikit-learn's (1 + b²)TP / (b²·P + predicted),
    # so ties between thresholds are ties here too
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def weighted_accuracy(c: BinaryCounts, warn: bool = True) -> np.ndarray:
    """(TP·N/P + TN) / 2N = mean of the recalls of the classes present in the labels."""
    tpr, tnr = _ratio(c.tp, c.positives), _ratio(c.tn, c.negatives)
    both = (c.positives > 0) & (c.negatives > 0)
    one_class = ~both & (c.positives + c.negatives > 0)
    if warn and one_class.any():
        warnings.warn(f"wacc: {int(one_class.sum())} emotion(s) with one class only in the labels; their weighted "
                      "accuracy is the recall of that class", RuntimeWarning, stacklevel=3)
    return np.where(both, (tpr + tnr) / 2, np.where(c.positives > 0, tpr, tnr))


def roc_auc(scores, labels, warn: bool = True) -> np.ndarray:
    """(E,) ROC-AUC per emotion: P(score of a positive > score of a negative) + ½ P(equal), from average ranks.
    NaN (with a warning) for an emotion whose labels have one class only."""
    scores, true = _scores_and_labels(scores, labels)
    aucs = np.full(scores.shape[1], np.nan)
    for e in range(scores.shape[1]):
        p, n = int(true[:, e].sum()), int((~true[:, e]).sum())
        if p == 0 or n == 0:
            continue
        ranks = rankdata(scores[:, e], method="average")
        aucs[e] = (ranks[true[:, e]].sum() - p * (p + 1) / 2) / (p * n)
    undefined = int(np.isnan(aucs).sum())
    if warn and undefined:
        warnings.warn(f"auc: {undefined} emotion(s) with one class only in the labels; their ROC-AUC is undefined "
                      "(NaN) and left out of auc/mean", RuntimeWarning, stacklevel=2)
    return aucs


_THRESHOLDED = {"acc": accuracy, "wacc": lambda c: weighted_accuracy(c, warn=False), "f1": f1, "precision": precision,
                "recall": recall}


def _warn_one_class(counts: BinaryCounts, emotions: Sequence[str], names: Sequence[str], split: str) -> None:
    affected = [n for n in ("auc", "wacc") if n in names]
    one_class = [e for e, p, n in zip(emotions, counts.positives, counts.negatives) if p == 0 or n == 0]
    if affected and one_class:
        warnings.warn(f"{split}: emotion(s) {one_class} have one class only; their auc is NaN (left out of "
                      "auc/mean), their wacc the recall of the class present", RuntimeWarning, stacklevel=3)


def tune_thresholds(scores, labels, grid: Sequence[float] = THRESHOLD_GRID) -> np.ndarray:
    """(E,) per emotion the grid value with the highest binary F1 on these scores; ties -> the smallest value."""
    scores, true = _scores_and_labels(scores, labels)
    grid = np.sort(np.asarray(grid, dtype=np.float64))
    f1_by_threshold = np.stack([f1(binary_counts(scores > t, true)) for t in grid])  # (G, E)
    return grid[np.argmax(f1_by_threshold, axis=0)]  # argmax: the first (smallest) of equal maxima


def check_metric_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in EMOTION_BCE_METRICS]
    if unknown:
        raise ValueError(f"unknown emotion_bce metric(s) {unknown}; choose from {list(EMOTION_BCE_METRICS)} "
                         "(set data.metrics; each is computed per emotion and as '<name>/mean')")


def emotion_metrics(scores, labels, thresholds, names: Sequence[str], emotions: Sequence[str],
                    split: str = "these labels") -> dict[str, float]:
    """``<name>/<emotion>``, ``<name>/mean`` for each metric name, and ``threshold/<emotion>``, as floats; one
    warning naming the emotions with one class only in `split` where that changes ``auc`` / ``wacc``."""
    check_metric_names(names)
    scores, true = _scores_and_labels(scores, labels)
    emotions = list(emotions)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if not len(emotions) == scores.shape[1] == thresholds.size:
        raise ValueError(f"{len(emotions)} emotions, {scores.shape[1]} score columns and {thresholds.size} "
                         "thresholds must agree (set data.emotions / data.num_classes)")
    counts = binary_counts(predict(scores, thresholds), true)
    _warn_one_class(counts, emotions, names, split)
    values: dict[str, float] = {}
    for name in names:
        per_emotion = roc_auc(scores, true, warn=False) if name == "auc" else _THRESHOLDED[name](counts)
        values.update({f"{name}/{e}": float(v) for e, v in zip(emotions, per_emotion)})
        defined = per_emotion[~np.isnan(per_emotion)]
        values[f"{name}/mean"] = float(defined.mean()) if defined.size else float("nan")
    values.update({f"threshold/{e}": float(t) for e, t in zip(emotions, thresholds)})
    return values


def check_threshold_mode(mode: str) -> str:
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"data.thresholds={mode!r}: choose {' or '.join(THRESHOLD_MODES)} (tuned: per emotion on "
                         "validation, MESM's protocol)")
    return mode


class EpochScores(Metric):
    """An epoch's (N, E) scores and labels, gathered over processes; `compute()` -> (scores, labels) float64."""

    is_differentiable = False
    full_state_update = False
    higher_is_better = True

    def __init__(self, num_labels: int, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = int(num_labels)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        if scores.dim() != 2 or scores.shape != labels.shape or scores.shape[1] != self.num_labels:
            raise ValueError(f"emotion_bce expects (batch, {self.num_labels}) logits and labels, got "
                             f"{tuple(scores.shape)} and {tuple(labels.shape)} (set data.num_classes)")
        self.scores.append(scores.detach().double())
        self.labels.append(labels.detach().double())

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.scores, list) and not self.scores:  # no batch this epoch (after a sync: a tensor)
            empty = torch.zeros((0, self.num_labels), dtype=torch.float64, device=self.device)
            return empty, empty
        return dim_zero_cat(self.scores), dim_zero_cat(self.labels)


def build_emotion_bce_metrics(names: Sequence[str], num_classes: int, emotions: Sequence[str],
                              thresholds: str = "tuned") -> MetricCollection:
    """The gathering state of one split; the task computes `emotion_metrics` from it at each epoch's end.
    Checks the names, the emotions (one logit each: `num_classes` = len(emotions)) and the threshold mode."""
    check_metric_names(names)
    check_threshold_mode(thresholds)
    if int(num_classes) != len(emotions):
        raise ValueError(f"emotion_bce has one logit per emotion: num_classes must be {len(emotions)} "
                         f"(len(data.emotions)), got {num_classes} (set data.num_classes)")
    return MetricCollection({"scores": EpochScores(len(emotions))}, compute_groups=False)
