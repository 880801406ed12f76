"""Sentiment metrics (repro.metrics.sentiment) against hand computations on one tiny example, scikit-learn for the
F1 variants (both argument orders: MMSA's usual one and MulT's predictions-first one), MSAF's sign-based Acc-2 / F1
against its confusion_matrix / f1_score calls with exact-zero predictions, batch accumulation, and the `regression`
task kind's loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score
from torch import nn

from repro.metrics import METRIC_BUILDERS, SENTIMENT_METRICS, build_sentiment_metrics
from repro.models.fusion.unimodal import UnimodalNet
from repro.task import TASK_KINDS, FusionTask

# i:        0     1     2    3     4    5    6    7     8
PREDS = [-2.6, -0.4, 0.0, 0.49, 0.5, 1.5, 2.5, 3.7, -2.7]
TRUTH = [-3.0, 0.0, 0.5, 1.0, 0.3, 2.0, 2.4, 2.6, -2.0]

# By hand (see each line):
EXPECTED = {
    # truth 0 dropped (i=1); (p > 0) vs (y > 0) wrong only at i=2 (p = 0.0 is not > 0): 7/8.
    "acc2_nonzero": 7 / 8,
    # on those 8: class + tp 5 fp 0 fn 1 -> F1 10/11, support 6; class - tp 2 fp 1 fn 0 -> F1 4/5, support 2.
    "f1_weighted_nonzero": (6 * 10 / 11 + 2 * 4 / 5) / 8,
    # MulT's argument order: same per-class F1, weighted by the PREDICTED supports, + 5 (i=3..7) and - 3 (i=0, 2, 8).
    "f1_weighted_nonzero_predsupport": (5 * 10 / 11 + 3 * 4 / 5) / 8,
    # MSAF: sign(p) at i=2 is 0 -> out of the 2x2 confusion matrix; the other 7 are all right: 7/7.
    "acc2_nonzero_sign": 7 / 7,
    # MSAF F1, labels [-1, 1]: class + tp 5 fn 1 (i=2, predicted 0) -> 10/11, support 6; class - tp 2, no fp (the 0
    # prediction is nobody's fp) -> 1, support 2.
    "f1_weighted_nonzero_sign": (6 * 10 / 11 + 2 * 1) / 8,
    # all 9; (p >= 0) vs (y >= 0) wrong only at i=1 (p -0.4 < 0, y 0 >= 0): 8/9.
    "acc2_nonneg": 8 / 9,
    # class + tp 6 fp 0 fn 1 -> 12/13, support 7; class - tp 2 fp 1 fn 0 -> 4/5, support 2.
    "f1_weighted_nonneg": (7 * 12 / 13 + 2 * 4 / 5) / 9,
    # clip ±3, round half to even: p -> [-3, 0, 0, 0, 0, 2, 2, 3, -3], y -> [-3, 0, 0, 1, 0, 2, 2, 3, -2]:
    # wrong at i=3 and i=8.
    "acc7": 7 / 9,
    # no clip: 3.7 -> 4 vs 3 is wrong too.
    "acc7_noclip": 6 / 9,
    # clip ±2: p -> [-2, 0, 0, 0, 0, 2, 2, 2, -2], y -> [-2, 0, 0, 1, 0, 2, 2, 2, -2]: wrong only at i=3.
    "acc5": 8 / 9,
    # |p - y| = .4 .4 .5 .51 .2 .5 .1 1.1 .7, sum 4.41.
    "mae": 4.41 / 9,
    "corr": float(np.corrcoef(PREDS, TRUTH)[0, 1]),
}


def compute(names, batches) -> dict[str, float]:
    metrics = build_sentiment_metrics(names)
    for p, t in batches:
        metrics.update(torch.tensor(p), torch.tensor(t))
    return {k: float(v) for k, v in metrics.compute().items()}


def test_every_metric_is_the_hand_computation():
    assert set(EXPECTED) == set(SENTIMENT_METRICS)
    got = compute(SENTIMENT_METRICS, [(PREDS, TRUTH)])
    for name, value in EXPECTED.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name


def test_round_half_to_even_and_pearson_by_hand():
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0: acc7 counts all four as equal to these integers.
    assert compute(["acc7"], [([0.5, 1.5, 2.5, -0.5], [0.0, 2.0, 2.0, 0.0])])["acc7"] == 1.0
    assert compute(["acc7"], [([0.5, 1.5, 2.5, -0.5], [1.0, 1.0, 3.0, -1.0])])["acc7"] == 0.0
    # Pearson: x = [1, 2, 3], y = [1, 3, 2]; centred [-1, 0, 1], [-1, 1, 0]: 1 / sqrt(2 * 2) = 0.5.
    assert compute(["corr"], [([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])])["corr"] == pytest.approx(0.5)


def test_f1_variants_equal_scikit_learn():
    p, y = np.array(PREDS), np.array(TRUTH)
    keep = y != 0
    sk_nonzero = f1_score(y[keep] > 0, p[keep] > 0, average="weighted")
    sk_nonneg = f1_score(y >= 0, p >= 0, average="weighted")
    got = compute(["f1_weighted_nonzero", "f1_weighted_nonneg"], [(PREDS, TRUTH)])
    assert got["f1_weighted_nonzero"] == pytest.approx(sk_nonzero, abs=1e-6)
    assert got["f1_weighted_nonneg"] == pytest.approx(sk_nonneg, abs=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = rng.uniform(-3.5, 3.5, 40).round(1)
        y = rng.integers(-6, 7, 40) / 2.0  # many exact zeros
        got = compute(["f1_weighted_nonzero", "f1_weighted_nonneg"], [(p.tolist(), y.tolist())])
        keep = y != 0
        assert got["f1_weighted_nonzero"] == pytest.approx(
            f1_score(y[keep] > 0, p[keep] > 0, average="weighted"), abs=1e-6)
        assert got["f1_weighted_nonneg"] == pytest.approx(f1_score(y >= 0, p >= 0, average="weighted"), abs=1e-6)


def test_mult_f1_weights_by_predicted_support_unlike_the_usual_order():
    # Non-zero labels: 6 positive, 2 negative; predictions: 3 positive, 5 negative -> the supports differ.
    p = np.array([1.2, 0.4, 2.0, -0.3, -1.0, -0.2, -2.0, -0.1, 0.0])
    y = np.array([1.0, 2.0, 0.6, 1.4, 0.2, 3.0, -1.0, -2.2, 0.0])
    keep = y != 0
    mult = f1_score(p[keep] > 0, y[keep] > 0, average="weighted")  # eval_mosei_senti's order
    usual = f1_score(y[keep] > 0, p[keep] > 0, average="weighted")
    # class +: tp 3 fp 0 fn 3 -> 2/3; class -: tp 2 fp 3 fn 0 -> 4/7. Weights 3/5 (predicted) vs 6/2 (true).
    assert mult == pytest.approx((3 * 2 / 3 + 5 * 4 / 7) / 8) and usual == pytest.approx((6 * 2 / 3 + 2 * 4 / 7) / 8)
    got = compute(["f1_weighted_nonzero_predsupport", "f1_weighted_nonzero"], [(p.tolist(), y.tolist())])
    assert got["f1_weighted_nonzero_predsupport"] == pytest.approx(mult, abs=1e-6)
    assert got["f1_weighted_nonzero"] == pytest.approx(usual, abs=1e-6)
    assert abs(got["f1_weighted_nonzero_predsupport"] - got["f1_weighted_nonzero"]) > 0.01
    rng = np.random.default_rng(1)
    for _ in range(5):
        p = rng.uniform(-1.5, 3.5, 40).round(1)  # skewed to positive predictions
        y = rng.integers(-6, 7, 40) / 2.0
        keep = y != 0
        got = compute(["f1_weighted_nonzero_predsupport", "f1_weighted_nonzero"], [(p.tolist(), y.tolist())])
        assert got["f1_weighted_nonzero_predsupport"] == pytest.approx(
            f1_score(p[keep] > 0, y[keep] > 0, average="weighted"), abs=1e-6)
        assert got["f1_weighted_nonzero"] == pytest.approx(f1_score(y[keep] > 0, p[keep] > 0, average="weighted"),
                                                           abs=1e-6)
    # one predicted class only: the predicted support puts all weight on it
    got = compute(["f1_weighted_nonzero_predsupport"], [([1.0, 2.0, 0.5], [1.0, -1.0, 2.0])])
    assert got["f1_weighted_nonzero_predsupport"] == pytest.approx(f1_score([1, 1, 1], [1, 0, 1], average="weighted"))


def msaf_sklearn(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """MSAF's MOSEI Acc-2 and F1 written with the scikit-learn calls of cmu_mosei/main_utils.py (acc_2_f_score):
    signs on the y != 0 subset, 2x2 confusion matrix over labels [-1, 1], weighted F1 with the same labels."""
    keep = y != 0
    true_cls, pred_cls = np.sign(y[keep]).astype(int), np.sign(p[keep]).astype(int)
    cm = confusion_matrix(true_cls, pred_cls, labels=[-1, 1])
    return np.trace(cm) / cm.sum(), f1_score(true_cls, pred_cls, labels=[-1, 1], average="weighted")


def test_msaf_sign_metrics_equal_its_sklearn_calls_with_exact_zero_predictions():
    # i=1, 4, 6: predictions of exactly 0 (true +, true -, true +); i=7: a zero label (dropped by every variant)
    p = np.array([1.0, 0.0, -0.5, 0.7, 0.0, -2.0, 0.0, 1.5, 0.3, -0.4])
    y = np.array([2.0, 1.0, -1.0, 0.4, -0.6, -3.0, 2.2, 0.0, -1.2, 0.8])
    acc, f1 = msaf_sklearn(p, y)
    # by hand: 6 counted samples (i=0, 2, 3, 5, 8, 9), right at 0, 2, 3, 5 -> 4/6. F1 over labels [-1, 1]:
    # class +1: true 0, 1, 3, 6, 9 (5), tp 2 (0, 3), predicted + at 0, 3, 8 -> F1 4/8; class -1: true 2, 4, 5, 8 (4),
    # tp 2 (2, 5), predicted - at 2, 5, 9 -> F1 4/7; weights 5 and 4 (the 0 predictions keep their true class's).
    assert acc == pytest.approx(4 / 6) and f1 == pytest.approx((5 * 4 / 8 + 4 * 4 / 7) / 9)
    names = ["acc2_nonzero_sign", "f1_weighted_nonzero_sign", "acc2_nonzero", "f1_weighted_nonzero"]
    got = compute(names, [(p.tolist(), y.tolist())])
    assert got["acc2_nonzero_sign"] == pytest.approx(acc, abs=1e-6)
    assert got["f1_weighted_nonzero_sign"] == pytest.approx(f1, abs=1e-6)
    # (p > 0) makes the 0 predictions negative: right at i=4, wrong at i=1, 6 -> 5/9, not MSAF's 4/6
    assert got["acc2_nonzero"] == pytest.approx(5 / 9) and abs(got["f1_weighted_nonzero"] - f1) > 0.01
    rng = np.random.default_rng(2)
    for _ in range(5):
        p = rng.integers(-4, 5, 40) / 2.0  # many exact zeros
        y = rng.integers(-6, 7, 40) / 2.0
        got = compute(names, [(p.tolist(), y.tolist())])
        acc, f1 = msaf_sklearn(p, y)
        assert got["acc2_nonzero_sign"] == pytest.approx(acc, abs=1e-6)
        assert got["f1_weighted_nonzero_sign"] == pytest.approx(f1, abs=1e-6)
    # without an exact-zero prediction the sign variants are the (> 0) ones
    p = rng.uniform(-3, 3, 40)
    y = rng.integers(-6, 7, 40) / 2.0
    got = compute(names, [(p.tolist(), y.tolist())])
    assert got["acc2_nonzero_sign"] == pytest.approx(got["acc2_nonzero"], abs=1e-6)
    assert got["f1_weighted_nonzero_sign"] == pytest.approx(got["f1_weighted_nonzero"], abs=1e-6)
    # every prediction 0: MSAF's trace/sum is 0/0; ours is 0 (the module's empty-set rule), F1 is 0 as scikit-learn's
    got = compute(names[:2], [([0.0, 0.0], [1.0, -2.0])])
    assert got == {"acc2_nonzero_sign": 0.0, "f1_weighted_nonzero_sign": 0.0}
    assert f1_score([1, -1], [0, 0], labels=[-1, 1], average="weighted", zero_division=0) == 0.0


def test_batches_accumulate_to_the_one_batch_result():
    batches = [(PREDS[:2], TRUTH[:2]), (PREDS[2:3], TRUTH[2:3]), (PREDS[3:], TRUTH[3:])]
    assert compute(SENTIMENT_METRICS, batches) == pytest.approx(compute(SENTIMENT_METRICS, [(PREDS, TRUTH)]))
    # (B, 1) predictions are flattened.
    metrics = build_sentiment_metrics(["mae"])
    metrics.update(torch.tensor(PREDS)[:, None], torch.tensor(TRUTH))
    assert float(metrics.compute()["mae"]) == pytest.approx(EXPECTED["mae"], abs=1e-6)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown sentiment metric\\(s\\) \\['acc2'\\]; choose from .*acc2_nonzero"):
        build_sentiment_metrics(["acc2"])
    assert METRIC_BUILDERS["regression"] is build_sentiment_metrics


def regression_task(**kw) -> FusionTask:
    torch.manual_seed(0)
    net = UnimodalNet({"x": nn.Linear(3, 1)}, 1, "x")
    return FusionTask(net, task="regression", num_classes=1, metrics=["mae", "acc2_nonzero"], **kw)


def test_regression_loss_is_the_hand_l1_and_mse():
    assert "regression" in TASK_KINDS
    out = torch.tensor([[0.5], [-1.0], [2.0]])  # (B, 1) network output
    for target in (torch.tensor([1.0, 0.0, -1.0]), torch.tensor([[1.0], [0.0], [-1.0]]), torch.tensor([1, 0, -1])):
        assert regression_task().criterion(out, target).item() == pytest.approx((0.5 + 1.0 + 3.0) / 3)
        assert regression_task(loss="mse").criterion(out, target).item() == pytest.approx((0.25 + 1.0 + 9.0) / 3)
    with pytest.raises(ValueError, match="unknown regression loss 'huber'"):
        regression_task(loss="huber")
    with pytest.raises(ValueError, match="does not use \\['loss'\\]"):
        FusionTask(UnimodalNet({"x": nn.Linear(3, 2)}, 2, "x"), task="classification", num_classes=2, loss="l1")
    with pytest.raises(ValueError, match="num_classes: 1"):
        FusionTask(UnimodalNet({"x": nn.Linear(3, 2)}, 2, "x"), task="regression", num_classes=2, metrics=["mae"])


def test_regression_step_on_a_tiny_net_is_the_hand_l1():
    t = regression_task()
    linear = t.net.encoders["x"]
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        linear.bias.fill_(0.25)
    x = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    label = torch.tensor([1.5, -2.0])
    # outputs: 0.5 - 2 + 0.25 = -1.25 and 0.25 - 2 + 0.25 = -1.5; L1 = (|-1.25 - 1.5| + |-1.5 + 2|) / 2 = 1.625.
    out = t.net({"x": x, "label": label})
    assert out.logits.shape == (2, 1)
    loss, _ = t.net.compute_loss(out, t.kind.target(label), t.criterion)
    assert loss.item() == pytest.approx(1.625)
    loss.backward()  # d/db mean|o - y| = (sign(-2.75) + sign(0.5)) / 2 = 0
    assert linear.bias.grad.item() == pytest.approx(0.0)
    metrics = t.metrics["val_metrics"]
    metrics.update(t.kind.preds(out.logits.detach()), t.kind.metric_target(label))
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got == pytest.approx({"val/mae": 1.625, "val/acc2_nonzero": 0.5})
