"""The one LightningModule: loss, metrics, optimiser and logging for every network (DESIGN.md, "Task").

Task kinds implemented so far: ``classification`` (cross-entropy on logits; metrics from
`repro.metrics.classification`). The network decides the final loss through `FusionNet.compute_loss`
(e.g. multitask heads, the multiplicative combination's down-weighted loss, auxiliary alignment losses).
Metrics are logged as ``<split>/<name>`` (``val/acc``, ``test/f1_macro``), losses as ``<split>/loss`` and
``train/loss_<part>``. A non-finite loss stops training with one line saying where and what to change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch
import torch.nn.functional as F

from repro.metrics import build_classification_metrics
from repro.models.net import FusionNet

TASK_KINDS = ("classification",)


class FusionTask(L.LightningModule):
    def __init__(
        self,
        net: FusionNet,
        task: str = "classification",
        num_classes: int = 2,
        metrics: Sequence[str] = ("acc",),
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
    ):
        super().__init__()
        if task not in TASK_KINDS:
            raise ValueError(f"unknown task kind {task!r}; implemented: {TASK_KINDS} (set data.task)")
        self.net = net
        self.task = task
        self.optimizer_factory = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
        self.scheduler_factory = scheduler
        base = build_classification_metrics(list(metrics), num_classes)
        # ModuleDict keys cannot be "train" (nn.Module.train), hence the suffix.
        self.metrics = torch.nn.ModuleDict(
            {f"{s}_metrics": base.clone(prefix=f"{s}/") for s in ("train", "val", "test")}
        )
        self.criterion = F.cross_entropy

    def forward(self, batch):
        return self.net(batch)

    def _step(self, batch, split: str) -> torch.Tensor:
        out = self.net(batch)
        target = batch["label"]
        loss, parts = self.net.compute_loss(out, target, self.criterion)
        if not torch.isfinite(loss):
            detail = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
            raise FloatingPointError(
                f"{split} loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step} ({detail}); "
                "lower optimizer.lr or check the input data for NaN/inf"
            )
        batch_size = target.shape[0]
        self.log(f"{split}/loss", loss, prog_bar=split != "test", batch_size=batch_size, sync_dist=split != "train")
        if split == "train" and len(parts) > 1:
            for name, value in parts.items():
                self.log(f"train/loss_{name}", value, batch_size=batch_size)
        metrics = self.metrics[f"{split}_metrics"]
        metrics.update(out.logits.detach().float(), target)
        self.log_dict(metrics, prog_bar=split == "val", batch_size=batch_size)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)}}
