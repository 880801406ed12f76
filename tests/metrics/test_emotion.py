"""MESM's per-emotion metrics and threshold search (repro.metrics.emotion): hand-computed values, equality with
scikit-learn on random data (the authors' `eval_iemocap` calls), the edge cases (no positives, one class only), and
the search's grid and tie rule."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from repro.metrics import METRIC_BUILDERS
from repro.metrics.emotion import (
    EMOTION_BCE_METRICS,
    THRESHOLD_GRID,
    EpochScores,
    build_emotion_bce_metrics,
    emotion_metrics,
    roc_auc,
    tune_thresholds,
)

ALL = list(EMOTION_BCE_METRICS)


def test_hand_computed_values_of_one_emotion():
    # threshold 0.5, predicted positive where score > 0.5: rows 0, 2, 4 (0.5 itself is NOT above)
    scores = [0.9, 0.2, 0.6, 0.5, 0.7, 0.1]
    labels = [1, 1, 0, 1, 1, 0]
    # TP = 2 (rows 0, 4), FP = 1 (row 2), FN = 2 (rows 1, 3), TN = 1 (row 5); P = 4, N = 2
    values = emotion_metrics(scores, labels, [0.5], ALL, ["joy"])
    assert values["acc/joy"] == pytest.approx(3 / 6)
    assert values["wacc/joy"] == pytest.approx((2 * 2 / 4 + 1) / (2 * 2))  # (TP·N/P + TN) / 2N = 0.5
    assert values["precision/joy"] == pytest.approx(2 / 3)
    assert values["recall/joy"] == pytest.approx(2 / 4)
    assert values["f1/joy"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    # positives 0.9, 0.2, 0.5, 0.7 vs negatives 0.6, 0.1: pairs won 2 + 1 + 1 + 2 = 6 of 8
    assert values["auc/joy"] == pytest.approx(6 / 8)
    assert values["threshold/joy"] == 0.5
    assert values["f1/mean"] == values["f1/joy"]


def test_wacc_differs_from_acc_on_imbalanced_labels():
    # 1 positive, 3 negatives, everything predicted negative: acc 3/4, wacc (0 + 3) / 6 = 1/2
    values = emotion_metrics([0.1, 0.2, 0.3, 0.4], [1, 0, 0, 0], [0.5], ["acc", "wacc"], ["e"])
    assert values["acc/e"] == pytest.approx(0.75) and values["wacc/e"] == pytest.approx(0.5)


def test_means_are_unweighted_over_emotions():
    scores = np.array([[0.9, 0.9], [0.1, 0.9], [0.8, 0.1], [0.2, 0.2]])
    labels = np.array([[1, 1], [0, 0], [1, 0], [0, 1]])
    values = emotion_metrics(scores, labels, [0.5, 0.5], ["acc", "f1"], ["a", "b"])
    # b predicted [1, 1, 0, 0] for labels [1, 0, 0, 1]: TP 1, FP 1, TN 1, FN 1
    assert values["acc/a"] == 1.0 and values["acc/b"] == pytest.approx(0.5)
    assert values["acc/mean"] == pytest.approx((1.0 + 0.5) / 2)
    assert values["f1/b"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert values["f1/mean"] == pytest.approx((1.0 + 0.5) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n, e = 57, 6
    labels = (rng.random((n, e)) < rng.uniform(0.1, 0.6, e)).astype(np.float64)
    scores = np.clip(labels * 0.3 + rng.random((n, e)) * 0.7, 0, 1).astype(np.float32).astype(np.float64)
    scores[:5, 0] = scores[5, 0]  # ties, for the AUC's half credit
    thresholds = rng.choice(THRESHOLD_GRID, e)
    thresholds[0] = 0.95  # few or no predicted positives: sklearn's zero-division cases
    names = [f"e{k}" for k in range(e)]
    values = emotion_metrics(scores, labels, thresholds, ALL, names)
    warnings.simplefilter("ignore", UndefinedMetricWarning)
    pred = scores > thresholds
    reference = {
        "acc": accuracy_score, "wacc": balanced_accuracy_score, "f1": f1_score,
        "precision": precision_score, "recall": recall_score,
    }
    for k in range(e):
        for name, fn in reference.items():
            assert values[f"{name}/e{k}"] == pytest.approx(fn(labels[:, k], pred[:, k]), abs=1e-12), (name, k)
        assert values[f"auc/e{k}"] == pytest.approx(roc_auc_score(labels[:, k], scores[:, k]), abs=1e-12)
    sklearn_aucs = roc_auc_score(labels, scores, average=None)  # the authors' call, all emotions at once
    assert values["auc/mean"] == pytest.approx(float(np.mean(sklearn_aucs)), abs=1e-12)


def test_no_positives_is_zero_as_sklearn_and_auc_is_nan_with_a_warning():
    scores = np.array([[0.9, 0.8], [0.1, 0.3], [0.7, 0.6], [0.2, 0.4]])
    labels = np.array([[0, 1], [0, 0], [0, 1], [0, 0]])  # emotion "none" never present
    with pytest.warns(RuntimeWarning) as caught:
        values = emotion_metrics(scores, labels, [0.5, 0.5], ALL, ["none", "some"])
    assert [str(w.message) for w in caught] == [
        "these labels: emotion(s) ['none'] have one class only; their auc is NaN (left out of auc/mean), their wacc "
        "the recall of the class present"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's own zero-division / single-class warnings
        pred = scores[:, 0] > 0.5
        for name, fn in (("f1", f1_score), ("precision", precision_score), ("recall", recall_score),
                         ("wacc", balanced_accuracy_score)):
            assert values[f"{name}/none"] == pytest.approx(fn(labels[:, 0], pred)), name
    assert values["f1/none"] == 0.0 and values["recall/none"] == 0.0 and values["acc/none"] == 0.5
    assert values["wacc/none"] == 0.5  # recall of the only class present (the negatives): 2 of 4
    assert np.isnan(values["auc/none"]) and values["auc/some"] == 1.0
    assert values["auc/mean"] == 1.0  # the undefined emotion is left out of the mean
    with pytest.warns(RuntimeWarning, match="auc: 1 emotion"):
        assert np.isnan(roc_auc([[0.2], [0.3]], [[1], [1]])).all()


def test_nothing_predicted_positive_has_precision_zero():
    values = emotion_metrics([0.1, 0.2, 0.3], [1, 0, 1], [0.95], ["precision", "recall", "f1"], ["e"])
    assert values == {"precision/e": 0.0, "recall/e": 0.0, "f1/e": 0.0, "precision/mean": 0.0, "recall/mean": 0.0,
                      "f1/mean": 0.0, "threshold/e": 0.95}


def test_threshold_grid_is_the_authors():
    assert THRESHOLD_GRID == tuple(np.round(np.arange(0.05, 1, 0.05), 2))  # np.arange(0.05, 1, 0.05): 19 values
    assert len(THRESHOLD_GRID) == 19 and THRESHOLD_GRID[0] == 0.05 and THRESHOLD_GRID[-1] == 0.95


def authors_search(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The search of the authors' `eval_iemocap`, restated: F1 per emotion for every grid value, argmax per column
    (first maximum), threshold = (index + 1) * 0.05."""
    table = np.array([[f1_score(labels[:, k], scores[:, k] > t, zero_division=0) for k in range(labels.shape[1])]
                      for t in np.arange(0.05, 1, 0.05)])
    return (np.argmax(table, axis=0) + 1) * 0.05


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tuned_thresholds_equal_the_authors_search(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random((40, 6)) < 0.3).astype(float)
    scores = np.round(np.clip(labels * 0.25 + rng.random((40, 6)) * 0.75, 0, 1), 2)  # coarse: many F1 ties
    tuned = tune_thresholds(scores, labels)
    assert tuned == pytest.approx(authors_search(scores, labels), abs=1e-9)
    assert set(tuned) <= set(THRESHOLD_GRID)


def test_ties_go_to_the_smallest_threshold_and_the_best_f1_wins():
    # emotion a: every threshold below 0.6 gives the same predictions {0.6, 0.9} -> F1 = 1 from 0.05 to 0.55: 0.05
    # emotion b: one positive at 0.42, negatives at 0.3, 0.5, 0.01: t < 0.30 predicts {0.3, 0.42, 0.5} (F1 1/2),
    #   0.30 <= t <= 0.40 predicts {0.42, 0.5} (F1 2/3), t >= 0.45 misses the positive (F1 0) -> 0.30, the smallest
    #   of the three ties; it is 0.30 only because the rule is strict (0.3 > 0.3 is false; with >= it would be 0.35)
    scores = np.array([[0.6, 0.3], [0.9, 0.42], [0.02, 0.5], [0.01, 0.01]])
    labels = np.array([[1, 0], [1, 1], [0, 0], [0, 0]])
    assert tune_thresholds(scores, labels).tolist() == [0.05, 0.3]
    # no positive at all: F1 is 0 at every threshold -> the first, 0.05 (the authors' argmax of all-zero F1s)
    assert tune_thresholds([[0.7], [0.2]], [[0], [0]]).tolist() == [0.05]


def test_epoch_scores_gather_batches_and_the_builder_checks_its_options():
    metric = EpochScores(2)
    metric.update(torch.tensor([[0.1, 0.9]]), torch.tensor([[0.0, 1.0]]))
    metric.update(torch.tensor([[0.8, 0.3], [0.5, 0.5]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    scores, labels = metric.compute()
    assert scores.dtype == torch.float64 and scores.shape == (3, 2)
    assert labels[:, 0].tolist() == [0.0, 1.0, 0.0]
    metric.reset()
    with pytest.warns(UserWarning, match="called before the ``update``"):  # torchmetrics' own: an empty epoch
        assert metric.compute()[0].shape == (0, 2)
    with pytest.raises(ValueError, match=r"expects \(batch, 2\) logits and labels"):
        metric.update(torch.zeros(3, 4), torch.zeros(3, 4))
    assert METRIC_BUILDERS["emotion_bce"] is build_emotion_bce_metrics
    with pytest.raises(ValueError, match=r"unknown emotion_bce metric\(s\) \['f1_weighted'\]"):
        build_emotion_bce_metrics(["f1_weighted"], 2, ["a", "b"])
    with pytest.raises(ValueError, match="num_classes must be 2"):
        build_emotion_bce_metrics(["f1"], 4, ["a", "b"])
    with pytest.raises(ValueError, match="data.thresholds='best': choose tuned or fixed_0.5"):
        build_emotion_bce_metrics(["f1"], 2, ["a", "b"], thresholds="best")
