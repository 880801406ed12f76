"""Sentiment-regression metrics of the CMU-MOSI / CMU-MOSEI papers (IMPLEMENTATION-NOTES §6; DESIGN.md,
"Task, protocol, metrics").

Predictions p and labels y are real sentiment scores on the [-3, 3] scale; every metric accumulates all
predictions and labels of an epoch (``cat``-reduced states, exact under DDP) and is computed once at the end,
in float64. With ``round`` = round half to even (``torch.round`` = ``np.round``: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2):

- ``acc2_nonzero``         samples with y == 0 dropped, accuracy of (p > 0) vs (y > 0). MulT / MICA
                           (``eval_mosei_senti``: ``non_zeros``, ``>0``); MSAF compares signs, the same once zeros
                           are dropped. The post-2019 "negative/positive" binary of the CMU SDK README.
- ``f1_weighted_nonzero``  scikit-learn ``f1_score(average='weighted')`` of that same binary on that same subset
                           (MulT / MICA / MSAF "F1").
- ``acc2_nonneg``          all samples, accuracy of (p >= 0) vs (y >= 0) (MFN / RMFN era; the pre-2019
                           "negative/non-negative" binary of the CMU SDK README).
- ``f1_weighted_nonneg``   weighted F1 of that binary. (The MFN-era code's printed F1 is the weighted F1 of the
                           rounded 7-class values, §6; this is the binary one, as later papers report.)
- ``acc7``                 both clipped to [-3, 3], then rounded: accuracy over the 7 classes -3..3 (MulT
                           ``round(clip(x, -3, 3))``; MSAF ``clip(rint(x), -3, 3)`` is the same value).
- ``acc7_noclip``          both rounded without clipping (MFN era), so a prediction of 3.7 is class 4.
- ``acc5``                 both clipped to [-2, 2], then rounded: 5 classes (MulT's ``mult_a5``).
- ``mae``                  mean over all samples of |p - y| (MulT, MFN; MSAF averages per-batch L1 means, which
                           differs only by the last batch's weight).
- ``corr``                 Pearson correlation of p and y over all samples, as ``np.corrcoef`` (MulT, MFN;
                           MSAF's ``scipy.stats.pearsonr`` is the same value); NaN when either is constant.

Predictions and labels of shape (N,) or (N, 1) are flattened. A metric over an empty set (no samples, or no
non-zero label for the ``_nonzero`` ones) is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.utilities import dim_zero_cat


def _weighted_binary_f1(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """scikit-learn's ``f1_score(true, pred, average='weighted')`` for bool vectors: per-class F1 weighted by the
    class's support in `true` (a class absent from `true` weighs 0)."""
    total = torch.zeros((), dtype=torch.float64, device=pred.device)
    for positive in (True, False):
        p, t = pred == positive, true == positive
        tp = (p & t).sum().double()
        denominator = p.sum().double() + t.sum().double()  # 2TP + FP + FN
        f1 = 2 * tp / denominator if denominator > 0 else torch.zeros_like(tp)
        total = total + f1 * t.sum().double()
    return total / true.numel() if true.numel() else total


class SentimentMetric(Metric):
    """Accumulates an epoch's predictions and labels (flattened by `rows`); subclasses define
    `value(preds, target)` (float64), computed once at the end."""

    is_differentiable = False
    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def rows(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch as stored: flattened (one score per sample); subclasses keep other shapes."""
        preds, target = preds.reshape(-1), target.reshape(-1)
        if preds.numel() != target.numel():
            raise ValueError(f"{type(self).__name__} expects one prediction per label, got {preds.numel()} "
                             f"predictions and {target.numel()} labels")
        return preds, target

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        preds, target = self.rows(preds, target)
        self.preds.append(preds.detach().double())
        self.target.append(target.detach().double())

    def compute(self) -> torch.Tensor:
        preds, target = dim_zero_cat(self.preds), dim_zero_cat(self.target)
        if preds.numel() == 0:
            return torch.tensor(0.0)
        return self.value(preds, target).float()

    def value(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _accuracy(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return (pred == true).double().mean() if true.numel() else torch.zeros((), dtype=torch.float64)


class Acc2NonZero(SentimentMetric):
    def value(self, preds, target):
        keep = target != 0
        return _accuracy(preds[keep] > 0, target[keep] > 0)


class F1WeightedNonZero(SentimentMetric):
    def value(self, preds, target):
        keep = target != 0
        return _weighted_binary_f1(preds[keep] > 0, target[keep] > 0)


class Acc2NonNeg(SentimentMetric):
    def value(self, preds, target):
        return _accuracy(preds >= 0, target >= 0)


class F1WeightedNonNeg(SentimentMetric):
    def value(self, preds, target):
        return _weighted_binary_f1(preds >= 0, target >= 0)


class RoundedAccuracy(SentimentMetric):
    """Accuracy of round(clip(p, -bound, bound)) vs round(clip(y, -bound, bound)); no clipping when bound is None."""

    def __init__(self, bound: float | None, **kwargs):
        super().__init__(**kwargs)
        self.bound = bound

    def value(self, preds, target):
        if self.bound is not None:
            preds, target = preds.clamp(-self.bound, self.bound), target.clamp(-self.bound, self.bound)
        return _accuracy(torch.round(preds), torch.round(target))


class MeanAbsoluteError(SentimentMetric):
    higher_is_better = False

    def value(self, preds, target):
        return (preds - target).abs().mean()


class PearsonCorr(SentimentMetric):
    def value(self, preds, target):
        p, t = preds - preds.mean(), target - target.mean()
        return (p * t).sum() / torch.sqrt((p * p).sum() * (t * t).sum())


_FACTORIES = {
    "acc2_nonzero": Acc2NonZero,
    "f1_weighted_nonzero": F1WeightedNonZero,
    "acc2_nonneg": Acc2NonNeg,
    "f1_weighted_nonneg": F1WeightedNonNeg,
    "acc7": lambda: RoundedAccuracy(bound=3.0),
    "acc7_noclip": lambda: RoundedAccuracy(bound=None),
    "acc5": lambda: RoundedAccuracy(bound=2.0),
    "mae": MeanAbsoluteError,
    "corr": PearsonCorr,
}

SENTIMENT_METRICS = tuple(_FACTORIES)


def build_sentiment_metrics(names: Sequence[str], num_classes: int = 1) -> MetricCollection:
    """The named metrics; `num_classes` (the output width, 1) is accepted for the common builder signature."""
    unknown = [n for n in names if n not in _FACTORIES]
    if unknown:
        raise ValueError(f"unknown sentiment metric(s) {unknown}; choose from {sorted(_FACTORIES)} (set data.metrics)")
    return MetricCollection({n: _FACTORIES[n]() for n in names})
