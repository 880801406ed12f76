"""Per-emotion and per-trait metrics: IEMOCAP emotions (RMFN T2, MulT/MICA) and POM speaker traits (RMFN T3).

Both tasks predict several labels per sample; each metric is computed per label and named ``<family>/<label>``
(``acc/happy``, ``mae/confident``), plus ``<family>/mean`` (unweighted mean over the labels). States are the
epoch's predictions and labels (``cat``-reduced: exact under DDP), evaluated once at the end in float64.

Per-emotion binary (task kind ``per_emotion``; IMPLEMENTATION-NOTES §4.1 MulT ``eval_iemocap``, rmfn.txt Table 2):
the network emits 2 logits per emotion, (B, 2E) read as (B, E, 2) [absent, present]; prediction = argmax of the pair.

- ``acc/<e>``          accuracy of that binary decision (RMFN "A2", MulT "Acc").
- ``f1_weighted/<e>``  scikit-learn ``f1_score(average='weighted')`` of it (MulT's F1, RMFN "F1").
- ``f1_binary/<e>``    F1 of the positive class only (``average='binary'``; MESM's per-emotion F1).
- ``wacc/<e>``         (TP·N/P + TN) / 2N, balanced accuracy (MulT defines it; MESM reports it on MOSEI).

Per-trait regression (task kind ``multitrait``; rmfn.txt Table 3 and §4.4): one real output per trait; trait k has
the label range [lo_k, hi_k] (`trait_ranges`), so its classes are the integers lo_k..hi_k (POM: 7, 5 or 6).

- ``acc/<t>``   accuracy over those classes: round(clip(p, lo, hi)) == round(y) (round half to even). RMFN's
                "A7/A5/A6" columns are this metric with c = hi - lo + 1.
- ``mae/<t>``   mean |p - y|;  ``corr/<t>``  Pearson correlation of p and y (NaN when either is constant).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import MetricCollection

from repro.metrics.sentiment import SentimentMetric, _weighted_binary_f1

EMOTION_METRICS = ("acc", "f1_weighted", "f1_binary", "wacc")
TRAIT_METRICS = ("acc", "mae", "corr")


class PerLabelMetric(SentimentMetric):
    """Accumulates (N, K) predictions and labels; `per_label(preds, target)` maps (N, K) float64 to (K,) values.

    `index` picks one label (its value) or None (the mean over labels).
    """

    def __init__(self, num_labels: int, index: int | None, **kwargs):
        super().__init__(**kwargs)
        self.num_labels, self.index = int(num_labels), index

    def rows(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        preds, target = preds.reshape(len(preds), -1), target.reshape(len(target), -1)
        if preds.shape != target.shape or preds.shape[1] != self.num_labels:
            raise ValueError(f"{type(self).__name__} expects ({len(target)}, {self.num_labels}) predictions and "
                             f"labels, got {tuple(preds.shape)} and {tuple(target.shape)}")
        return preds, target

    def value(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        values = self.per_label(preds.reshape(-1, self.num_labels), target.reshape(-1, self.num_labels))
        return values.mean() if self.index is None else values[self.index]

    def per_label(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _per_column(fn, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.stack([fn(preds[:, k], target[:, k]) for k in range(preds.shape[1])])


def _f1_positive(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    tp = (pred & true).sum().double()
    denominator = pred.sum().double() + true.sum().double()
    return 2 * tp / denominator if denominator > 0 else torch.zeros_like(tp)


def _balanced_accuracy(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    p, n = true.sum().double(), (~true).sum().double()
    tp, tn = (pred & true).sum().double(), (~pred & ~true).sum().double()
    if p == 0 or n == 0:
        return (pred == true).double().mean()
    return (tp * n / p + tn) / (2 * n)


def _pearson(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p, y = p - p.mean(), y - y.mean()
    return (p * y).sum() / torch.sqrt((p * p).sum() * (y * y).sum())


_EMOTION_FNS = {
    "acc": lambda p, t: (p == t).double().mean(),
    "f1_weighted": _weighted_binary_f1,
    "f1_binary": _f1_positive,
    "wacc": _balanced_accuracy,
}


class EmotionMetric(PerLabelMetric):
    """One `EMOTION_METRICS` family on argmax-ed (N, E) binary decisions (1 = emotion present)."""

    def __init__(self, family: str, num_labels: int, index: int | None, **kwargs):
        super().__init__(num_labels, index, **kwargs)
        self.family = family

    def per_label(self, preds, target):
        return _per_column(_EMOTION_FNS[self.family], preds > 0.5, target > 0.5)


class TraitMetric(PerLabelMetric):
    """One `TRAIT_METRICS` family on (N, K) real predictions of traits with label ranges `ranges`."""

    def __init__(self, family: str, ranges: Sequence[Sequence[float]], index: int | None, **kwargs):
        super().__init__(len(ranges), index, **kwargs)
        self.family = family
        self.lo = torch.tensor([float(r[0]) for r in ranges], dtype=torch.float64)
        self.hi = torch.tensor([float(r[1]) for r in ranges], dtype=torch.float64)

    def per_label(self, preds, target):
        if self.family == "acc":
            clipped = torch.minimum(torch.maximum(preds, self.lo.to(preds.device)), self.hi.to(preds.device))
            return (torch.round(clipped) == torch.round(target)).double().mean(dim=0)
        if self.family == "mae":
            return (preds - target).abs().mean(dim=0)
        return _per_column(_pearson, preds, target)


class TraitErrorMetric(TraitMetric):
    """`TraitMetric` for an error (``mae``): lower is better."""

    higher_is_better = False


def _check_families(names: Sequence[str], known: Sequence[str], what: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} metric(s) {unknown}; choose from {list(known)} (set data.metrics; each is "
                         "computed per label and as '<name>/mean')")


def build_emotion_metrics(names: Sequence[str], num_classes: int, emotions: Sequence[str]) -> MetricCollection:
    """``<family>/<emotion>`` and ``<family>/mean`` for each family in `names`; `num_classes` must be 2·E."""
    _check_families(names, EMOTION_METRICS, "per-emotion")
    emotions = list(emotions)
    if int(num_classes) != 2 * len(emotions):
        raise ValueError(f"per-emotion binary needs num_classes = 2 x {len(emotions)} emotions = {2 * len(emotions)}, "
                         f"got {num_classes} (set data.num_classes)")
    metrics = {}
    for family in names:
        for k, emotion in enumerate([*emotions, None]):
            metrics[f"{family}/{emotion or 'mean'}"] = EmotionMetric(family, len(emotions), k if emotion else None)
    return MetricCollection(metrics)


def build_trait_metrics(
    names: Sequence[str], num_classes: int, traits: Sequence[str], trait_ranges: Sequence[Sequence[float]]
) -> MetricCollection:
    """``<family>/<trait>`` and ``<family>/mean``; one output per trait (`num_classes` = len(traits))."""
    _check_families(names, TRAIT_METRICS, "per-trait")
    traits = list(traits)
    if len(trait_ranges) != len(traits) or int(num_classes) != len(traits):
        raise ValueError(f"{len(traits)} traits need {len(traits)} trait_ranges and num_classes={len(traits)}; got "
                         f"{len(trait_ranges)} ranges, num_classes={num_classes} (set data.traits / data.trait_ranges)")
    metrics = {}
    for family in names:
        for k, trait in enumerate([*traits, None]):
            cls = TraitErrorMetric if family == "mae" else TraitMetric
            metrics[f"{family}/{trait or 'mean'}"] = cls(family, trait_ranges, k if trait else None)
    return MetricCollection(metrics)
