"""Multi-label classification metrics (MM-IMDB genres; MFAS §4.3 / Table 3, Arevalo et al. 2017 §5).

The metrics read per-label *probabilities* (the task applies ``sigmoid`` to the logits first) and predict
label j for a sample when ``p_j > threshold`` (strictly greater, as the MFAS authors' ``sigmoid(out) > th``).
With TP_j, FP_j, FN_j counted over all samples and F1 = 2TP / (2TP + FP + FN):

- ``f1_micro``     F1 of the TP/FP/FN summed over all labels.
- ``f1_macro``     unweighted mean over labels of per-label F1 (every label counts, including labels absent
                   from the data; such a label's F1 is 0).
- ``f1_weighted``  per-label F1 weighted by the label's support TP_j + FN_j (the MFAS Table 3 "F1-W").
- ``f1_samples``   mean over samples of the per-sample F1 between its true and predicted label sets
                   (what the MFAS authors select on, ``f1_score(..., average='samples')``).

Zero division follows scikit-learn's default (``zero_division='warn'``, which returns 0): a label with no true
and no predicted positives has F1 0 (macro), a sample with no true and no predicted labels has F1 0 (samples),
and weighted/micro F1 with no positives at all are 0. The first three are torchmetrics' ``MultilabelF1Score``;
torchmetrics has no samples average, so ``SamplesF1`` below accumulates the per-sample F1 sum and count
(sum-reduced states, so it is exact under DDP). Tests compare all four to scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MultilabelF1Score


def binarize(preds: torch.Tensor, threshold: float) -> torch.Tensor:
    """Probabilities (or already 0/1 predictions) -> bool label sets, ``p > threshold``."""
    return preds > threshold if preds.is_floating_point() else preds.bool()


class SamplesF1(Metric):
    """Mean over samples of F1(true label set, predicted label set); 0 for a sample where both are empty."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_labels: int, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = int(num_labels)
        self.threshold = float(threshold)
        self.add_state("f1_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.shape != target.shape or preds.dim() != 2 or preds.shape[1] != self.num_labels:
            raise ValueError(f"samples-F1 expects preds and target of shape (N, {self.num_labels}), "
                             f"got {tuple(preds.shape)} and {tuple(target.shape)}")
        pred, true = binarize(preds, self.threshold), target.bool()
        tp = (pred & true).sum(dim=1).double()
        denominator = pred.sum(dim=1).double() + true.sum(dim=1).double()  # 2TP + FP + FN
        f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))
        self.f1_sum += f1.sum()
        self.count += pred.shape[0]

    def compute(self) -> torch.Tensor:
        return (self.f1_sum / self.count.clamp(min=1)).float()


def _factories(num_labels: int, threshold: float) -> dict:
    def f1(average: str):
        return lambda: MultilabelF1Score(num_labels=num_labels, threshold=threshold, average=average, zero_division=0)

    return {
        "f1_micro": f1("micro"),
        "f1_macro": f1("macro"),
        "f1_weighted": f1("weighted"),
        "f1_samples": lambda: SamplesF1(num_labels=num_labels, threshold=threshold),
    }


MULTILABEL_METRICS = tuple(_factories(2, 0.5))


def build_multilabel_metrics(names: Sequence[str], num_classes: int, threshold: float = 0.5) -> MetricCollection:
    """The named metrics over `num_classes` labels at `threshold` (on probabilities)."""
    factories = _factories(int(num_classes), float(threshold))
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown multilabel metric(s) {unknown}; choose from {sorted(factories)} (set data.metrics)")
    return MetricCollection({n: factories[n]() for n in names})
