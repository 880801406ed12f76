"""Task kinds (repro.task): the multilabel loss with pos_weight against a hand computation, `auto` weights,
and metrics reading probabilities, not logits."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from repro.models.fusion.unimodal import UnimodalNet
from repro.task import TASK_KINDS, FusionTask, auto_pos_weight


def task(kind: str = "multilabel", num_classes: int = 2, **kw) -> FusionTask:
    net = UnimodalNet({"x": nn.Linear(3, num_classes)}, num_classes, "x")
    metrics = ["f1_macro", "f1_samples"] if kind == "multilabel" else ["acc"]
    return FusionTask(net, task=kind, num_classes=num_classes, metrics=metrics, **kw)


def test_kinds_table():
    assert {"classification", "multilabel"} <= set(TASK_KINDS)


def test_multilabel_loss_with_pos_weight_is_the_hand_computation():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    target = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    w = [3.0, 0.5]

    def term(x, y, weight):  # -(w y log s(x) + (1 - y) log(1 - s(x)))
        s = 1 / (1 + math.exp(-x))
        return -(weight * y * math.log(s) + (1 - y) * math.log(1 - s))

    by_hand = sum(term(logits[i, j].item(), target[i, j].item(), w[j]) for i in range(2) for j in range(2)) / 4
    loss = task(pos_weight=w).criterion(logits, target)
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    unweighted = sum(term(logits[i, j].item(), target[i, j].item(), 1.0) for i in range(2) for j in range(2)) / 4
    assert task().criterion(logits, target).item() == pytest.approx(unweighted, rel=1e-6)


def test_pos_weight_moves_with_the_task_and_is_checked():
    t = task(pos_weight=[2.0, 1.0])
    assert "criterion.pos_weight" in t.state_dict()  # a buffer: follows .to(device) and checkpoints
    with pytest.raises(ValueError, match="pos_weight must be 2 positive finite numbers"):
        task(pos_weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="does not use \\['threshold'\\]"):
        task("classification", threshold=0.5)


def test_auto_pos_weight_is_negatives_over_positives():
    labels = [[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]]
    # positives 3, 1, 0; negatives 1, 3, 4; a label never positive gets 1 (its positive term never occurs).
    assert auto_pos_weight(labels) == pytest.approx([1 / 3, 3.0, 1.0])


def test_multilabel_metrics_threshold_probabilities_not_logits():
    # Logits inside [0, 1] would be taken as probabilities by torchmetrics; the task applies sigmoid first.
    t = task(threshold=0.5)
    logits = torch.tensor([[0.3, 0.3], [0.3, 0.3]])  # sigmoid(0.3) = 0.574 > 0.5: every label predicted
    target = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    metrics = t.metrics["val_metrics"]
    metrics.update(t.kind.preds(logits), t.kind.metric_target(target))
    assert float(metrics.compute()["val/f1_samples"]) == pytest.approx(1.0)
