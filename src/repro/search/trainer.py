"""Training one sampled fusion architecture during the search (mfas.txt §3.2–3.3; IMPLEMENTATION-NOTES §3.2).

As the authors' `train_searchable/*.py`: only the fusion layers train (the encoders are frozen, so their
pooled taps come from a `FeatureSource`), Adam (lr η_max, weight decay 1e-4) with a cosine learning rate set
at every batch (η_max → η_min over T_i epochs, warm restarts with period ×T_m: torch's
`CosineAnnealingWarmRestarts` stepped in fractions of an epoch), `epochs` = E_train epochs (2 in every paper
experiment), and the architecture's score is its **best** validation score over the epochs.

This loop is deliberately a plain PyTorch loop and not a Lightning `Trainer`: a search trains ~200 networks
of a few thousand parameters for ~5,000 steps each, where a Trainer's per-run set-up and per-step hooks cost
more than the network itself. Found architectures are trained to completion through `train.py`
(`fusion=mfas_found`) with Lightning as every other model.

Scores: classification → accuracy; multilabel → samples-averaged F1 at a threshold on sigmoid outputs (the
metric the MFAS code selects MM-IMDB models on, IMPLEMENTATION-NOTES §3.5).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from repro.models.fusion.mfas import MFASFusion
from repro.search.features import FeatureSource


@dataclass
class TrainSettings:
    """How one sampled architecture trains (config `search.train`)."""

    epochs: int = 2
    batch_size: int = 64
    eval_batch_size: int = 2048
    lr_max: float = 1e-3
    lr_min: float = 1e-6
    weight_decay: float = 1e-4
    restart_epochs: float = 1.0  # T_i
    restart_mult: int = 2  # T_m
    inner_size: int = 16
    dropout: float = 0.5
    batchnorm: bool = False
    task: str = "classification"  # classification | multilabel
    threshold: float = 0.5  # multilabel score threshold on sigmoid outputs
    pos_weight: list[float] | None = None  # multilabel BCE positive weights


@dataclass
class Evaluation:
    """The outcome of training one architecture."""

    score: float  # best validation score over epochs
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


class WeightBank:
    """Weight sharing of fusion layers across sampled architectures (mfas.txt §3.2): the weights of layer l
    are kept per (l, matrix size) and initialise the next sampled network's layer l of the same size."""

    def __init__(self, state: Mapping[str, dict] | None = None):
        self.weights: dict[str, dict[str, torch.Tensor]] = dict(state or {})

    @staticmethod
    def _key(key: tuple[int, int, int]) -> str:
        return "layer{}:{}x{}".format(*key)

    def load_into(self, fusion: MFASFusion) -> int:
        """Copy stored weights into matching layers; returns how many layers were initialised so."""
        shared = 0
        for l, layer in enumerate(fusion.layers):
            stored = self.weights.get(self._key(fusion.share_key(l)))
            if stored is not None:
                layer.load_state_dict(stored)
                shared += 1
        return shared

    def store(self, fusion: MFASFusion) -> None:
        for l, layer in enumerate(fusion.layers):
            weights = {k: v.detach().clone() for k, v in layer.state_dict().items()}
            self.weights[self._key(fusion.share_key(l))] = weights

    def state(self) -> dict:
        return self.weights


def _loss(settings: TrainSettings, pos_weight: torch.Tensor | None):
    if settings.task == "classification":
        return F.cross_entropy
    if settings.task == "multilabel":
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits, y.float(), pos_weight=pos_weight)
    raise ValueError(f"the search supports data.task classification or multilabel, got {settings.task!r}")


def samples_f1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample F1 of binary predictions (scikit-learn `average='samples'`: 0 when both sets are empty)."""
    tp = (pred & target).sum(1).float()
    denom = pred.sum(1) + target.sum(1)
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))


def needed_taps(codes: np.ndarray) -> tuple[set[int], set[int]]:
    """The x and y taps an architecture reads (a cached source gathers only those)."""
    codes = np.asarray(codes)
    return {int(v) for v in codes[:, 0]}, {int(v) for v in codes[:, 1]}


@torch.no_grad()
def evaluate(fusion: nn.Module, source: FeatureSource, split: str, settings: TrainSettings,
             needed: tuple[set[int], set[int]] | None = None) -> float:
    fusion.eval()
    correct, total = 0.0, 0
    for x, y, labels in source.batches(split, settings.eval_batch_size, needed=needed):
        logits = fusion(x, y)
        if settings.task == "multilabel":
            pred = torch.sigmoid(logits) > settings.threshold
            correct += samples_f1(pred, labels > 0.5).sum().item()
        else:
            correct += (logits.argmax(1) == labels).sum().item()
        total += len(labels)
    return correct / max(total, 1)


def build_fusion(codes: np.ndarray, source: FeatureSource, nonlinearities: Sequence[str], num_classes: int,
                 settings: TrainSettings) -> MFASFusion:
    return MFASFusion(codes, source.x_dims, source.y_dims, nonlinearities, num_classes,
                      inner_size=settings.inner_size, dropout=settings.dropout, batchnorm=settings.batchnorm)


def train_architecture(
    codes: np.ndarray,
    source: FeatureSource,
    nonlinearities: Sequence[str],
    num_classes: int,
    settings: TrainSettings,
    seed: int,
    bank: WeightBank | None = None,
    val_split: str = "val",
) -> Evaluation:
    """Train one architecture from `seed` (initialisation, batch order and dropout all follow it)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    fusion = build_fusion(codes, source, nonlinearities, num_classes, settings)
    if bank is not None:
        bank.load_into(fusion)
    optimizer = torch.optim.Adam(fusion.parameters(), lr=settings.lr_max, weight_decay=settings.weight_decay)
    steps_per_epoch = -(-source.size("train") // settings.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=max(1, round(settings.restart_epochs * steps_per_epoch)), T_mult=settings.restart_mult,
        eta_min=settings.lr_min)
    pos_weight = torch.as_tensor(settings.pos_weight, dtype=torch.float32) if settings.pos_weight else None
    criterion = _loss(settings, pos_weight)
    order = torch.Generator().manual_seed(seed)
    needed = needed_taps(codes)
    history, steps = [], 0
    for _ in range(settings.epochs):
        fusion.train()
        for x, y, labels in source.batches("train", settings.batch_size, generator=order, needed=needed):
            loss = criterion(fusion(x, y), labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"search: training loss is {loss.item()} at step {steps}; "
                                         "lower search.train.lr_max or check the data for NaN/inf")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            steps += 1
        history.append(evaluate(fusion, source, val_split, settings, needed))
    if bank is not None:
        bank.store(fusion)
    return Evaluation(score=max(history), history=history, seconds=time.perf_counter() - start, steps=steps)
