"""Multi-label F1 variants (MM-IMDB, MFAS Table 3) against scikit-learn and a hand-computed case."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from repro.metrics import METRIC_BUILDERS, MULTILABEL_METRICS, build_multilabel_metrics

AVERAGE = {"f1_micro": "micro", "f1_macro": "macro", "f1_weighted": "weighted", "f1_samples": "samples"}


def sklearn_f1(y: np.ndarray, pred: np.ndarray, average: str) -> float:
    with warnings.catch_warnings():  # ill-defined labels/samples: scikit-learn warns and uses 0 (its default)
        warnings.simplefilter("ignore")
        return float(f1_score(y, pred, average=average))


def computed(names, probs, target, threshold, batches: int = 1) -> dict[str, float]:
    metrics = build_multilabel_metrics(names, target.shape[1], threshold)
    for p, t in zip(torch.tensor_split(probs, batches), torch.tensor_split(target, batches)):
        metrics.update(p, t)
    return {k: float(v) for k, v in metrics.compute().items()}


def test_names():
    assert set(MULTILABEL_METRICS) == set(AVERAGE)
    assert set(METRIC_BUILDERS) >= {"classification", "multilabel"}


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_variant_equals_scikit_learn(threshold, seed):
    rng = np.random.default_rng(seed)
    n, c = 60, 9
    y = (rng.uniform(size=(n, c)) < 0.25).astype(np.int64)
    y[:, 0] = 0                      # a label never present ...
    y[:5] = 0                        # ... and samples without any label (both zero-division conventions)
    probs = rng.uniform(size=(n, c)).astype(np.float32)
    probs[:3] = 0.0                  # samples with neither true nor predicted labels
    probs[:, 1] = 0.0                # a label never predicted
    ours = computed(list(AVERAGE), torch.from_numpy(probs), torch.from_numpy(y), threshold, batches=4)
    pred = (probs > threshold).astype(np.int64)
    for name, average in AVERAGE.items():
        assert ours[name] == pytest.approx(sklearn_f1(y, pred, average), abs=1e-6), name


def test_hand_computed_tiny_case():
    # 3 samples x 3 labels; predictions p > 0.5 (0.5 itself is not positive).
    target = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 1, 0]])
    probs = torch.tensor([[0.9, 0.2, 0.1], [0.4, 0.5, 0.0], [0.1, 0.3, 0.2]])
    got = computed(list(AVERAGE), probs, target, 0.5)
    # TP/FP/FN per label: label0 1/0/0 (F1 1), label1 0/0/1 (F1 0), label2 0/0/0 (F1 0 by convention).
    assert got["f1_micro"] == pytest.approx(2 * 1 / (2 * 1 + 0 + 1))              # 2/3
    assert got["f1_macro"] == pytest.approx((1 + 0 + 0) / 3)
    assert got["f1_weighted"] == pytest.approx((1 * 1 + 0 * 1 + 0 * 0) / 2)        # supports 1, 1, 0
    # Per sample: {0} vs {0} -> 1; {} vs {} -> 0 (scikit-learn's default); {1} vs {} -> 0.
    assert got["f1_samples"] == pytest.approx(1 / 3)


def test_unknown_name_is_one_line():
    with pytest.raises(ValueError, match=r"unknown multilabel metric\(s\) \['acc'\]"):
        build_multilabel_metrics(["acc"], 23)
