"""The one LightningModule: loss, metrics, optimiser and logging for every network (DESIGN.md, "Task").

A task kind says how logits and labels become a loss and metric inputs; `TASK_KINDS` is that table:

- ``classification``  cross-entropy on logits, integer class labels; metrics `repro.metrics.classification`.
- ``multilabel``      ``BCEWithLogitsLoss(pos_weight)`` on logits, multi-hot float labels (MM-IMDB genres, MFAS
                      §4.3; the authors' "WeightedCrossEntropyWithLogits"); metrics `repro.metrics.multilabel`
                      on ``sigmoid(logits) > threshold``.
- ``regression``      real-valued sentiment (CMU-MOSI/MOSEI, [-3, 3]): a (B, 1) or (B,) output against float
                      labels of shape (B,) or (B, 1), both flattened to (B,); loss ``l1`` (default, MulT's
                      ``L1Loss``) or ``mse`` (option ``loss``); metrics `repro.metrics.sentiment` on the raw output.
- ``per_emotion``     several binary emotions per sample (IEMOCAP 4 emotions, MulT / RMFN T2): (B, 2E) logits read
                      as (B, E, 2) [absent, present], cross-entropy over the B·E pairs (MulT's
                      ``CrossEntropyLoss`` on (B·4, 2)), labels (B, E) in {0, 1}; metrics
                      `repro.metrics.per_label` per emotion on the argmax (option ``emotions``: the names).
- ``multitrait``      one real score per trait (POM speaker traits, RMFN T3): (B, K) outputs, (B, K) float labels,
                      loss ``l1`` / ``mse``; metrics per trait (options ``traits``, ``trait_ranges``).
- ``emotion_bce``     MESM's protocol (IMPLEMENTATION-NOTES §5.4-5.5): one logit per emotion, (B, E), (B, E) float
                      0/1 labels (IEMOCAP's one-hot 6 classes too), ``BCEWithLogitsLoss(pos_weight)`` (``auto`` =
                      #neg/#pos per emotion on the train labels); metrics `repro.metrics.emotion` computed once per
                      epoch from the gathered sigmoid scores (options ``emotions``, ``thresholds``: ``tuned`` |
                      ``fixed_0.5``). Tuned: validation chooses each emotion's threshold (max binary F1 on the grid
                      0.05..0.95) and is scored at it; the thresholds live in the buffer ``chosen_thresholds``, saved
                      in every checkpoint, so testing the selected checkpoint applies the thresholds chosen on
                      validation at that epoch (the authors' "test with the valid thresholds, report the best epoch");
                      train is scored at thresholds tuned on train (the authors' train statistics). Logged as
                      ``<split>/<metric>/<emotion>``, ``<split>/<metric>/mean``, ``<split>/threshold/<emotion>``.

A new kind is one more `TaskKind` entry: its criterion factory, its metric builder, and the options each of them
reads. The network decides the final loss through
`FusionNet.compute_loss` (multitask heads, the multiplicative combination's down-weighted loss, auxiliary
alignment losses), calling the kind's criterion. Metrics are logged as ``<split>/<name>`` (``val/acc``,
``test/f1_macro``), losses as ``<split>/loss`` and ``train/loss_<part>``. A network that reports ``feature_flops`` (a
(B,) tensor of feature-extraction FLOPs per sample, MESM §4 / Table 3) in its output's extras gets their mean logged as
``<split>/feature_gflops`` (GFLOPs per sample); one that times its feature extraction (`feature_seconds`, and the dense
reference's `dense_feature_seconds`, per batch) is logged as ``<split>/feature_ms`` / ``<split>/dense_feature_ms``
(wall milliseconds per sample). A non-finite loss stops training with one line saying where and what
to change.

Optimisation comes from `repro.optimization`: one optimiser (with parameter groups) and Lightning's automatic
optimisation, or — `optimizer.alternating` — one optimiser per branch stepped in turn on each batch with manual
optimisation (`training_step` → `_alternating_step`), their schedulers stepped here at each epoch's end.
With alternating optimisers (or ``branch_ce=True``: ``protocol.monitor=branch_ce``) validation and test also log
``<split>/branch_ce``, the mean over branches of the loss on each branch's logits — MSAF's and MMTM's NTU model
selection (the lowest mean of the visual and skeleton CE on dev).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch import nn

from repro.config import ConfigError
from repro.metrics import build_classification_metrics, build_multilabel_metrics, build_sentiment_metrics
from repro.metrics.emotion import (
    FIXED_THRESHOLD,
    build_emotion_bce_metrics,
    check_threshold_mode,
    emotion_metrics,
    tune_thresholds,
)
from repro.metrics.per_label import build_emotion_metrics, build_trait_metrics
from repro.models.net import FusionNet
from repro.optimization import (
    Optimization,
    branch_loss,
    build_optimizers,
    build_schedulers,
    check_branch_losses,
    default_adam,
    unique_names,
)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _as_pos_weight(pos_weight, num_classes: int) -> torch.Tensor | None:
    if pos_weight is None:
        return None
    weight = torch.as_tensor(pos_weight, dtype=torch.float32).flatten()
    if weight.numel() != num_classes or not torch.all(torch.isfinite(weight) & (weight > 0)):
        raise ValueError(f"pos_weight must be {num_classes} positive finite numbers (one per label), 'auto' or null; "
                         f"got {weight.numel()} values (set data.pos_weight)")
    return weight


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float()


def _to_long(x: torch.Tensor) -> torch.Tensor:
    return x.long()


def _classification_criterion(num_classes: int) -> nn.Module:
    return nn.CrossEntropyLoss()


def _multilabel_criterion(num_classes: int, pos_weight=None) -> nn.Module:
    # pos_weight multiplies the positive term of each label's BCE: (negatives / positives) balances rare genres.
    return nn.BCEWithLogitsLoss(pos_weight=_as_pos_weight(pos_weight, num_classes))


def _flatten_scores(x: torch.Tensor) -> torch.Tensor:
    """(B, 1) -> (B,); any other shape unchanged (checked against the other side by the loss)."""
    return x[:, 0] if x.dim() == 2 and x.shape[1] == 1 else x


def _to_float_scores(x: torch.Tensor) -> torch.Tensor:
    return _flatten_scores(x).float()


REGRESSION_LOSSES = {"l1": nn.functional.l1_loss, "mse": nn.functional.mse_loss}


class RegressionLoss(nn.Module):
    """Mean L1 (or squared) error between a (B,)/(B, 1) output and (B,)/(B, 1) float targets, or, with
    `per_output`, between (B, K) outputs and (B, K) targets (every sample and output weighted alike)."""

    def __init__(self, loss: str = "l1", per_output: bool = False):
        super().__init__()
        if loss not in REGRESSION_LOSSES:
            raise ValueError(f"unknown regression loss {loss!r}; choose from {sorted(REGRESSION_LOSSES)} "
                             "(set data.loss)")
        self.loss, self.per_output = loss, per_output

    def forward(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self.per_output:
            preds, target = _flatten_scores(preds), _flatten_scores(target)
        if preds.shape != target.shape:
            what = "one output per trait" if self.per_output else "one output per sample"
            fix = "the number of traits" if self.per_output else "1"
            raise ValueError(f"regression expects {what}, got output {tuple(preds.shape)} for labels "
                             f"{tuple(target.shape)} (set data.num_classes: {fix})")
        return REGRESSION_LOSSES[self.loss](preds.float(), target.float())

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}"


def _regression_criterion(num_classes: int, loss: str = "l1") -> nn.Module:
    if int(num_classes) != 1:
        raise ValueError(f"task kind 'regression' predicts one score per sample; got num_classes={num_classes} "
                         "(set data.num_classes: 1)")
    return RegressionLoss(loss)


class PairwiseCrossEntropy(nn.Module):
    """Cross-entropy of (B, 2E) logits read as E two-way decisions against (B, E) labels in {0, 1}."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[1] != 2 * target.shape[-1]:
            raise ValueError(f"per-emotion binary expects (batch, 2 x {target.shape[-1]}) logits for labels "
                             f"{tuple(target.shape)}, got {tuple(logits.shape)} (set data.num_classes)")
        return nn.functional.cross_entropy(logits.reshape(-1, 2), target.reshape(-1).long())


def _per_emotion_criterion(num_classes: int) -> nn.Module:
    if int(num_classes) % 2:
        raise ValueError(f"task kind 'per_emotion' needs 2 logits per emotion; num_classes={num_classes} is odd "
                         "(set data.num_classes: 2 x the number of emotions)")
    return PairwiseCrossEntropy()


def _pair_argmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.reshape(logits.shape[0], -1, 2).argmax(dim=-1)


def _multitrait_criterion(num_classes: int, loss: str = "l1") -> nn.Module:
    return RegressionLoss(loss, per_output=True)


@dataclass(frozen=True)
class TaskKind:
    """How one kind of task turns logits and labels into a loss and metric inputs."""

    criterion: Callable[..., nn.Module]          # (num_classes, **criterion options) -> criterion(logits, target)
    metrics: Callable[..., object]               # (names, num_classes, **metric options) -> MetricCollection
    target: Callable[[torch.Tensor], torch.Tensor] = _identity         # batch label -> loss target
    preds: Callable[[torch.Tensor], torch.Tensor] = _identity          # logits -> metric predictions
    metric_target: Callable[[torch.Tensor], torch.Tensor] = _identity  # batch label -> metric target
    criterion_options: tuple[str, ...] = ()
    metric_options: tuple[str, ...] = ()
    # True: the metrics are computed by the task once per epoch from the epoch's gathered predictions (thresholds
    # chosen on them first), not logged batch by batch
    epoch_end: bool = False


TASK_KINDS: dict[str, TaskKind] = {
    "classification": TaskKind(
        criterion=_classification_criterion,
        metrics=build_classification_metrics,
    ),
    "multilabel": TaskKind(
        criterion=_multilabel_criterion,
        metrics=build_multilabel_metrics,
        target=_to_float,
        preds=torch.sigmoid,            # the metrics threshold probabilities, never raw logits
        metric_target=_to_long,
        criterion_options=("pos_weight",),
        metric_options=("threshold",),
    ),
    "regression": TaskKind(
        criterion=_regression_criterion,
        metrics=build_sentiment_metrics,
        target=_to_float_scores,
        preds=_flatten_scores,
        metric_target=_to_float_scores,
        criterion_options=("loss",),
    ),
    "per_emotion": TaskKind(
        criterion=_per_emotion_criterion,
        metrics=build_emotion_metrics,
        target=_to_long,
        preds=_pair_argmax,
        metric_target=_to_long,
        metric_options=("emotions",),
    ),
    "multitrait": TaskKind(
        criterion=_multitrait_criterion,
        metrics=build_trait_metrics,
        target=_to_float,
        metric_target=_to_float,
        criterion_options=("loss",),
        metric_options=("traits", "trait_ranges"),
    ),
    "emotion_bce": TaskKind(
        criterion=_multilabel_criterion,  # the same weighted BCE: MESM's `bce` loss
        metrics=build_emotion_bce_metrics,
        target=_to_float,
        preds=torch.sigmoid,            # thresholds and AUC read sigmoid scores
        metric_target=_to_float,
        criterion_options=("pos_weight",),
        metric_options=("emotions", "thresholds"),
        epoch_end=True,
    ),
}

# options a kind reads that have a default (the others must be configured)
OPTIONAL_METRIC_OPTIONS = ("threshold", "thresholds")


def auto_pos_weight(labels) -> list[float]:
    """Per-label negatives / positives over the given (N, C) multi-hot labels (the train split's).

    A label without any positive gets weight 1: its positive term never occurs in training, so any finite
    value is the same loss, and 1 keeps the loss finite.
    """
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2:
        raise ValueError(f"pos_weight: auto needs (N, C) multi-hot labels, got shape {labels.shape}")
    positives = labels.sum(axis=0)
    negatives = labels.shape[0] - positives
    return np.where(positives > 0, negatives / np.maximum(positives, 1.0), 1.0).tolist()


class FusionTask(L.LightningModule):
    def __init__(
        self,
        net: FusionNet,
        task: str = "classification",
        num_classes: int = 2,
        metrics: Sequence[str] = ("acc",),
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        optimization: Optimization | None = None,
        threshold: float | None = None,
        pos_weight: Sequence[float] | torch.Tensor | None = None,
        loss: str | None = None,
        emotions: Sequence[str] | None = None,
        traits: Sequence[str] | None = None,
        trait_ranges: Sequence[Sequence[float]] | None = None,
        thresholds: str | None = None,
        branch_ce: bool = False,
    ):
        super().__init__()
        if task not in TASK_KINDS:
            raise ValueError(f"unknown task kind {task!r}; implemented: {tuple(TASK_KINDS)} (set data.task)")
        self.net = net
        self.task = task
        self.kind = TASK_KINDS[task]
        options = {"threshold": threshold, "pos_weight": pos_weight, "loss": loss, "emotions": emotions,
                   "traits": traits, "trait_ranges": trait_ranges, "thresholds": thresholds}
        unused = [k for k, v in options.items() if v is not None
                  and k not in self.kind.criterion_options + self.kind.metric_options]
        if unused:
            raise ValueError(f"task kind {task!r} does not use {unused} (remove data.{unused[0]})")
        if optimization is not None and (optimizer is not None or scheduler is not None):
            raise ValueError("give FusionTask either optimization or optimizer/scheduler, not both")
        self.optimization = optimization or Optimization(optimizer=optimizer or default_adam, scheduler=scheduler)
        if self.optimization.alternating:
            check_branch_losses(self.optimization.branches, net.modalities)
        if self.optimization.alternating or self.optimization.param_groups:
            build_optimizers(net, self.optimization)  # a pattern mistake fails before training starts
        # alternating optimisers are stepped by `_alternating_step`, their schedulers by `on_train_epoch_end`
        self.automatic_optimization = not self.optimization.alternating
        # `<split>/branch_ce` on val/test: the mean of the per-branch losses, the MSAF/MMTM NTU selection metric
        self.log_branch_ce = bool(branch_ce or self.optimization.alternating)
        missing = [k for k in self.kind.metric_options if options[k] is None and k not in OPTIONAL_METRIC_OPTIONS]
        if missing:
            raise ValueError(f"task kind {task!r} needs {missing} (set data.{missing[0]})")
        metric_kw = {k: options[k] for k in self.kind.metric_options if options[k] is not None}
        base = self.kind.metrics(list(metrics), num_classes, **metric_kw)
        # ModuleDict keys cannot be "train" (nn.Module.train), hence the suffix.
        self.metrics = torch.nn.ModuleDict(
            {f"{s}_metrics": base.clone(prefix=f"{s}/") for s in ("train", "val", "test")}
        )
        criterion_kw = {k: options[k] for k in self.kind.criterion_options if options[k] is not None}
        # A module, so that tensors it holds (pos_weight) follow the task to its device.
        self.criterion = self.kind.criterion(num_classes, **criterion_kw)
        if self.kind.epoch_end:
            self._init_thresholds(list(metrics), list(emotions), thresholds or "tuned")

    def _init_thresholds(self, metric_names: list[str], emotions: list[str], mode: str) -> None:
        """The per-emotion decision thresholds: 0.5 (fixed_0.5), or NaN until validation chooses them (tuned).
        A float64 buffer: saved in checkpoints, and the grid values stay exact (0.15, not 0.15000000596)."""
        self.metric_names, self.emotions = metric_names, emotions
        self.threshold_mode = check_threshold_mode(mode)
        start = FIXED_THRESHOLD if mode == "fixed_0.5" else float("nan")
        self.register_buffer("chosen_thresholds", torch.full((len(emotions),), start, dtype=torch.float64))

    def forward(self, batch):
        return self.net(batch)

    def _check_finite(self, loss: torch.Tensor, parts: dict[str, torch.Tensor], split: str) -> None:
        if not torch.isfinite(loss):
            detail = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
            raise FloatingPointError(
                f"{split} loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step} ({detail}); "
                "lower optimizer.lr or check the input data for NaN/inf"
            )

    def _step(self, batch, split: str) -> torch.Tensor:
        out = self.net(batch)
        label = batch["label"]
        loss, parts = self.net.compute_loss(out, self.kind.target(label), self.criterion)
        self._check_finite(loss, parts, split)
        self._log(split, loss, parts, out.logits, label)
        self._log_feature_cost(split, out.extras, label.shape[0])
        if split != "train" and self.log_branch_ce:
            self.log(f"{split}/branch_ce", self.branch_ce(out, self.kind.target(label)), batch_size=label.shape[0],
                     sync_dist=True)
        return loss

    def branch_ce(self, out, target: torch.Tensor) -> torch.Tensor:
        """Mean over the branches of the task loss on each branch's logits (the authors' NTU selection: the average
        of the visual and the skeleton CE on dev, anita-hu/MSAF main_msaf.py / haamoon/mmtm main_mmtm_ntu.py)."""
        logits = out.extras.get("modality_logits")
        if logits is None:
            raise ConfigError(f"the branch_ce metric needs per-branch logits, but {type(self.net).__name__} "
                              "returns none; use a late or staged fusion, or select on another metric "
                              "(protocol.monitor)")
        return torch.stack([self.criterion(logits[:, i], target) for i in range(logits.shape[1])]).mean()

    def _log(self, split: str, loss: torch.Tensor, parts: dict[str, torch.Tensor], logits: torch.Tensor,
             label: torch.Tensor) -> None:
        batch_size = label.shape[0]
        self.log(f"{split}/loss", loss, prog_bar=split != "test", batch_size=batch_size, sync_dist=split != "train")
        if split == "train" and len(parts) > 1:
            for name, value in parts.items():
                self.log(f"train/loss_{name}", value, batch_size=batch_size)
        metrics = self.metrics[f"{split}_metrics"]
        metrics.update(self.kind.preds(logits.detach().float()), self.kind.metric_target(label))
        if not self.kind.epoch_end:
            self.log_dict(metrics, prog_bar=split == "val", batch_size=batch_size)

    def _log_feature_cost(self, split: str, extras: dict[str, torch.Tensor], batch_size: int) -> None:
        """Feature-extraction GFLOPs and wall milliseconds per sample, averaged over the epoch's samples (each batch
        weighted by its size), from a network that reports them (`feature_flops` per sample; `feature_seconds` and
        `dense_feature_seconds` per batch)."""
        sync = split != "train"
        if "feature_flops" in extras:
            self.log(f"{split}/feature_gflops", extras["feature_flops"].detach().double().mean().float() / 1e9,
                     batch_size=batch_size, sync_dist=sync)
        for name in ("feature", "dense_feature"):
            if f"{name}_seconds" in extras:
                per_sample_ms = float(extras[f"{name}_seconds"]) * 1000.0 / batch_size
                self.log(f"{split}/{name}_ms", per_sample_ms, batch_size=batch_size, sync_dist=sync)

    def _log_epoch_metrics(self, split: str) -> None:
        """Thresholds for this split, then every metric at them, from the epoch's scores gathered over processes."""
        gathered = self.metrics[f"{split}_metrics"]["scores"]
        scores, labels = gathered.compute()
        gathered.reset()
        if scores.shape[0] == 0:
            return
        thresholds = self._thresholds_for(split, scores, labels)
        values = emotion_metrics(scores, labels, thresholds, self.metric_names, self.emotions, split=f"{split} split")
        # every process computed the same values from the same gathered epoch; sync_dist only averages equal numbers
        for name, value in values.items():
            self.log(f"{split}/{name}", value, prog_bar=split == "val" and name == "f1/mean", sync_dist=True)

    def _thresholds_for(self, split: str, scores: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        """fixed_0.5: 0.5. tuned: chosen on this epoch's validation (kept in `chosen_thresholds`), applied to test;
        the train split is scored at thresholds tuned on its own scores, as the authors' train statistics."""
        if self.chosen_thresholds.dtype != torch.float64:  # a "*-true" precision cast every buffer of the module
            raise ConfigError(f"emotion_bce keeps its thresholds in float64, but trainer.precision cast them to "
                              f"{self.chosen_thresholds.dtype}; use trainer.precision=32-true or bf16-mixed")
        if self.threshold_mode == "fixed_0.5" or split == "test":
            chosen = self.chosen_thresholds.detach().cpu().numpy()
            if np.isnan(chosen).any():
                raise ConfigError("emotion_bce: testing needs the thresholds chosen on validation, and none were "
                                  "chosen yet; validate (or load a checkpoint of a validated run) before testing, "
                                  "or set data.thresholds=fixed_0.5")
            return chosen
        tuned = tune_thresholds(scores, labels)
        if split == "val":
            self.chosen_thresholds.copy_(torch.as_tensor(tuned, dtype=torch.float64))
        return tuned

    def threshold_record(self) -> dict | None:
        """The threshold protocol for the results record: mode and the thresholds a test applies; None for kinds
        without thresholds."""
        if not self.kind.epoch_end:
            return None
        values = self.chosen_thresholds.detach().cpu().tolist()
        return {"mode": self.threshold_mode,
                "values": {e: (None if np.isnan(t) else round(t, 6)) for e, t in zip(self.emotions, values)}}

    def training_step(self, batch, batch_idx):
        if self.optimization.alternating:
            return self._alternating_step(batch)
        return self._step(batch, "train")

    def _alternating_step(self, batch) -> torch.Tensor:
        """Step each branch's optimiser on its own loss, recomputing the forward pass in between (MSAF on NTU
        RGB+D: the video-branch CE steps optimiser 0, then the skeleton-branch CE steps optimiser 1). Train metrics
        are those of the first forward pass, the weights this batch started from (as in automatic optimisation)."""
        label = batch["label"]
        target = self.kind.target(label)
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        parts, first = {}, None
        for name, branch, optimizer in zip(unique_names(self.optimization.branches), self.optimization.branches,
                                           optimizers):
            out = self.net(batch)
            first = out if first is None else first
            loss = branch_loss(self.net, out, branch.loss, target, self.criterion)
            self._check_finite(loss, {name: loss.detach()}, "train")
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            parts[name] = loss.detach()
        total = torch.stack(list(parts.values())).sum()
        self._log("train", total, parts, first.logits, label)
        if self.optimization.interval == "step":
            self._step_schedulers(self.global_step // len(optimizers))  # global_step counts every optimiser's steps
        return total

    def _step_schedulers(self, count: int) -> None:
        """Step the alternating optimisers' schedulers (every `frequency` epochs or batches); a plateau scheduler
        reads its monitored metric from what the run has logged (validation ran before an epoch's end)."""
        if count % self.optimization.frequency:
            return
        schedulers = self.lr_schedulers()
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []
        for scheduler in schedulers:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(self._monitored())
            else:
                scheduler.step()

    def _monitored(self) -> torch.Tensor:
        monitor = self.optimization.monitor
        metrics = self.trainer.callback_metrics
        if not monitor or monitor not in metrics:
            logged = ", ".join(sorted(metrics)) or "none yet"
            raise ConfigError(f"scheduler.monitor={monitor!r} is not a logged metric; logged: {logged} "
                              "(validate every epoch or set scheduler.monitor)")
        return metrics[monitor]

    def on_train_epoch_end(self) -> None:
        if self.kind.epoch_end:
            self._log_epoch_metrics("train")
        if self.optimization.alternating and self.optimization.interval == "epoch":
            self._step_schedulers(self.current_epoch + 1)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if self.kind.epoch_end:
            self._log_epoch_metrics("val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_test_epoch_end(self) -> None:
        if self.kind.epoch_end:
            self._log_epoch_metrics("test")

    def configure_optimizers(self):
        optimizers = build_optimizers(self.net, self.optimization)
        schedulers = build_schedulers(optimizers, self.optimization)
        if self.optimization.alternating:  # stepped by this task: Lightning takes plain lists
            return (optimizers, schedulers) if schedulers else optimizers
        if not schedulers:
            return optimizers[0]
        return {"optimizer": optimizers[0], "lr_scheduler": self.optimization.lightning_scheduler(schedulers[0])}
