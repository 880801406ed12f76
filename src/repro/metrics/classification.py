"""Single-label classification metrics, via torchmetrics (equal to scikit-learn's to the last digit).

Names and definitions:
- ``acc``         top-1 accuracy over all samples (micro average) — MSAF/MFAS "accuracy".
- ``acc_top2``,``acc_top4``   top-k accuracy (MSAF's RAVDESS code also prints these).
- ``f1_macro``    unweighted mean of per-class F1.
- ``f1_weighted`` per-class F1 weighted by class support.
- ``wacc``        mean per-class recall (balanced accuracy); for binary tasks = (TP·N/P + TN)/(2N).
"""

from __future__ import annotations

from collections.abc import Sequence

from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score


def _factories(num_classes: int) -> dict[str, Metric]:
    return {
        "acc": lambda: MulticlassAccuracy(num_classes=num_classes, average="micro"),
        "acc_top2": lambda: MulticlassAccuracy(num_classes=num_classes, average="micro", top_k=2),
        "acc_top4": lambda: MulticlassAccuracy(num_classes=num_classes, average="micro", top_k=4),
        "f1_macro": lambda: MulticlassF1Score(num_classes=num_classes, average="macro"),
        "f1_weighted": lambda: MulticlassF1Score(num_classes=num_classes, average="weighted"),
        "wacc": lambda: MulticlassAccuracy(num_classes=num_classes, average="macro"),
    }


CLASSIFICATION_METRICS = tuple(_factories(2))


def build_classification_metrics(names: Sequence[str], num_classes: int) -> MetricCollection:
    factories = _factories(num_classes)
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown classification metric(s) {unknown}; choose from {sorted(factories)} "
                         "(set data.metrics)")
    return MetricCollection({n: factories[n]() for n in names})
