"""Sentiment-regression metrics of the CMU-MOSI / CMU-MOSEI papers (IMPLEMENTATION-NOTES §6; DESIGN.md,
"Task, protocol, metrics").

Predictions p and labels y are real sentiment scores on the [-3, 3] scale; every metric accumulates all
predictions and labels of an epoch (``cat``-reduced states, exact under DDP) and is computed once at the end,
in float64. With ``round`` = round half to even (``torch.round`` = ``np.round``: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2):

- ``acc2_nonzero``         samples with y == 0 dropped, accuracy of (p > 0) vs (y > 0). MulT / MICA
                           (``eval_mosei_senti``: ``non_zeros``, ``>0``). The post-2019 "negative/positive"
                           binary of the CMU SDK README.
- ``f1_weighted_nonzero``  scikit-learn ``f1_score(y > 0, p > 0, average='weighted')`` on that same subset: per-class
                           F1 weighted by the TRUE support (MMSA's ``Non0_F1_score``).
- ``f1_weighted_nonzero_predsupport``
                           ``f1_score(p > 0, y > 0, average='weighted')`` on that subset — the arguments in the
                           order of MulT's ``eval_mosei_senti`` / ``eval_mosi`` (yaohungt/Multimodal-Transformer,
                           ``src/eval_metrics.py``: predictions in the y_true slot), so each class's F1 (the same
                           per class in either order) is weighted by its PREDICTED support. MulT's and MICA's "F1"
                           (MICA Tables 2, 3, 5, Fig. 3). Differs from ``f1_weighted_nonzero`` whenever the
                           predicted and true class counts differ.
- ``acc2_nonzero_sign``    MSAF's MOSEI Acc-2 (anita-hu/MSAF ``cmu_mosei/main_utils.py``, ``acc_2_f_score``): on the
                           y != 0 subset, sign(p) vs sign(y) through ``confusion_matrix(labels=[-1, 1])``, whose
                           trace / sum is the accuracy. A prediction of exactly 0 has sign 0, outside the labels,
                           so the confusion matrix drops that sample: it counts neither right nor wrong (accuracy
                           over the samples with p != 0). Equals ``acc2_nonzero`` when no prediction is exactly 0.
- ``f1_weighted_nonzero_sign``
                           MSAF's MOSEI F1: ``f1_score(sign(y), sign(p), labels=[-1, 1], average='weighted')`` on
                           the y != 0 subset. Unlike the Acc-2 above, scikit-learn keeps a sample predicted 0: it is
                           a miss (false negative) of its true class and a false positive of neither, and its true
                           class's support (the weight) counts it. Equals ``f1_weighted_nonzero`` when no
                           prediction is exactly 0 (``msaf_t2``).
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
non-zero label for the ``_nonzero`` ones, or every prediction exactly 0 for ``acc2_nonzero_sign``, where MSAF's
code divides 0 by 0) is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.utilities import dim_zero_cat


def _weighted_f1(pred: torch.Tensor, true: torch.Tensor, labels: Sequence = (True, False)) -> torch.Tensor:
    """scikit-learn's ``f1_score(true, pred, labels=labels, average='weighted')``: the F1 of each class in `labels`
    weighted by the class's support in `true` (a class absent from `true` weighs 0). A value of `pred` outside
    `labels` is a false positive of no class (it still is a false negative of its true class)."""
    total = support = torch.zeros((), dtype=torch.float64, device=pred.device)
    for label in labels:
        p, t = pred == label, true == label
        tp = (p & t).sum().double()
        denominator = p.sum().double() + t.sum().double()  # 2TP + FP + FN
        f1 = 2 * tp / denominator if denominator > 0 else torch.zeros_like(tp)
        total, support = total + f1 * t.sum().double(), support + t.sum().double()
    return total / support if support > 0 else total


def _weighted_binary_f1(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``f1_score(true, pred, average='weighted')`` of two bool vectors (used by `repro.metrics.per_label` too)."""
    return _weighted_f1(pred, true)


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


class F1WeightedNonZeroPredSupport(SentimentMetric):
    """MulT's call order ``f1_score(preds > 0, truths > 0)``: the predictions take scikit-learn's y_true role, so
    they give the weights (per-class F1 itself is symmetric in the two arguments)."""

    def value(self, preds, target):
        keep = target != 0
        return _weighted_binary_f1(target[keep] > 0, preds[keep] > 0)


def _sign_classes(preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MSAF's ``convert2class`` (-1 / 0 / 1) of the predictions and labels on the y != 0 subset. A NaN prediction
    is class 0 there (neither ``< 0`` nor ``> 0``), hence ``nan_to_num``."""
    keep = target != 0
    return torch.sign(preds[keep]).nan_to_num(0.0), torch.sign(target[keep])


class Acc2NonZeroSign(SentimentMetric):
    """MSAF's trace / sum of ``confusion_matrix(sign(y), sign(p), labels=[-1, 1])``: a prediction of exactly 0 is
    in no row/column of that 2x2 matrix, so it leaves the denominator too."""

    def value(self, preds, target):
        pred, true = _sign_classes(preds, target)
        counted = pred != 0  # true is +-1 on this subset; sign 0 predictions drop out of the 2x2 matrix
        return _accuracy(pred[counted], true[counted])


class F1WeightedNonZeroSign(SentimentMetric):
    """MSAF's ``f1_score(sign(y), sign(p), labels=[-1, 1], average='weighted')`` (a 0 prediction still counts)."""

    def value(self, preds, target):
        pred, true = _sign_classes(preds, target)
        return _weighted_f1(pred, true, labels=(-1.0, 1.0))


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
    "f1_weighted_nonzero_predsupport": F1WeightedNonZeroPredSupport,
    "acc2_nonzero_sign": Acc2NonZeroSign,
    "f1_weighted_nonzero_sign": F1WeightedNonZeroSign,
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
