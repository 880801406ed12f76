"""Per-emotion (IEMOCAP) and per-trait (POM) metrics and task kinds against hand-computed / scikit-learn values."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from repro.metrics.per_label import build_emotion_metrics, build_trait_metrics
from repro.task import TASK_KINDS, FusionTask

EMOTIONS = ["neutral", "happy", "sad", "angry"]


def _emotion_batch(seed=0, n=40):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 8, generator=g)
    labels = torch.randint(0, 2, (n, 4), generator=g)
    return logits, labels


def test_per_emotion_metrics_match_sklearn():
    logits, labels = _emotion_batch()
    preds = TASK_KINDS["per_emotion"].preds(logits)
    assert preds.shape == (40, 4)
    # argmax of each (absent, present) pair: column 2e+1 > column 2e means present
    assert torch.equal(preds, (logits[:, 1::2] > logits[:, 0::2]).long())
    m = build_emotion_metrics(["acc", "f1_weighted", "f1_binary"], 8, EMOTIONS)
    # two batches: states accumulate
    m.update(preds[:25], labels[:25])
    m.update(preds[25:], labels[25:])
    out = {k: float(v) for k, v in m.compute().items()}
    p, y = preds.numpy(), labels.numpy()
    for k, e in enumerate(EMOTIONS):
        assert out[f"acc/{e}"] == pytest.approx(np.mean(p[:, k] == y[:, k]), abs=1e-6)
        assert out[f"f1_weighted/{e}"] == pytest.approx(f1_score(y[:, k], p[:, k], average="weighted"), abs=1e-6)
        assert out[f"f1_binary/{e}"] == pytest.approx(f1_score(y[:, k], p[:, k], average="binary"), abs=1e-6)
    assert out["acc/mean"] == pytest.approx(np.mean(p == y), abs=1e-6)


def test_wacc_hand_computed():
    # one emotion: truth 1,1,0,0,0,0 ; pred 1,0,0,0,1,0 -> TP=1, P=2, TN=3, N=4 -> (1*4/2 + 3) / 8 = 0.625
    m = build_emotion_metrics(["wacc"], 2, ["happy"])
    m.update(torch.tensor([[1], [0], [0], [0], [1], [0]]), torch.tensor([[1], [1], [0], [0], [0], [0]]))
    assert float(m.compute()["wacc/happy"]) == pytest.approx(0.625)


def test_pairwise_cross_entropy_equals_flat_ce():
    logits, labels = _emotion_batch(1, 6)
    crit = TASK_KINDS["per_emotion"].criterion(8)
    want = torch.nn.functional.cross_entropy(logits.view(6, 4, 2).reshape(24, 2), labels.reshape(24))
    assert torch.allclose(crit(logits, labels), want)
    with pytest.raises(ValueError, match="odd"):
        TASK_KINDS["per_emotion"].criterion(7)


def test_trait_metrics_hand_computed():
    ranges = [[1, 7], [1, 5]]
    m = build_trait_metrics(["acc", "mae", "corr"], 2, ["confident", "reserved"], ranges)
    preds = torch.tensor([[7.6, 0.2], [2.5, 3.4], [3.5, 4.6]])
    labels = torch.tensor([[7.0, 1.0], [2.0, 3.0], [4.0, 4.0]])
    m.update(preds, labels)
    out = {k: float(v) for k, v in m.compute().items()}
    # trait 0: clip 7.6 -> 7 = 7 ok; round(2.5) = 2 (half to even) = 2 ok; round(3.5) = 4 = 4 ok -> 1.0
    # trait 1: clip 0.2 -> 1 = 1 ok; round(3.4) = 3 ok; round(4.6) = 5 != 4 -> 2/3
    assert out["acc/confident"] == pytest.approx(1.0)
    assert out["acc/reserved"] == pytest.approx(2 / 3)
    assert out["acc/mean"] == pytest.approx((1 + 2 / 3) / 2)
    assert out["mae/confident"] == pytest.approx((0.6 + 0.5 + 0.5) / 3, abs=1e-6)
    assert out["corr/reserved"] == pytest.approx(np.corrcoef(preds[:, 1], labels[:, 1])[0, 1], abs=1e-6)


def test_task_kind_options_checked():
    net = torch.nn.Module()
    with pytest.raises(ValueError, match="needs \\['emotions'\\]"):
        FusionTask(net, task="per_emotion", num_classes=8, metrics=["acc"])
    with pytest.raises(ValueError, match="2 x 4 emotions"):
        FusionTask(net, task="per_emotion", num_classes=6, metrics=["acc"], emotions=EMOTIONS)
    with pytest.raises(ValueError, match="trait_ranges"):
        FusionTask(net, task="multitrait", num_classes=3, metrics=["acc"], traits=["a", "b", "c"],
                   trait_ranges=[[1, 7]])
    with pytest.raises(ValueError, match="unknown per-trait metric"):
        build_trait_metrics(["acc7"], 1, ["a"], [[1, 7]])
