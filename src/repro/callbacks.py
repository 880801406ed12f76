"""Lightning callbacks of the train layer that are not a fusion method's own.

`DurationEstimate` states how long a run's budget will take before it starts, and corrects itself after the
first epoch: long defaults (e.g. `search.pretrain.max_epochs`, ~1 h of AV-MNIST pre-training on 2 cores) should
be visible where they bite, not discovered an hour later.
"""

from __future__ import annotations

import time

import lightning as L


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class DurationEstimate(L.Callback):
    """Prints the expected training time at the start (from `samples_per_s`, a measured rate, when given) and,
    after the first epoch, the projection from that epoch's wall time (training + validation).

    `samples_per_s`: training samples per second of this network on the machine the rate was measured on (the
    configs state where); None = no estimate until the first epoch has been timed. `label` names the run."""

    def __init__(self, samples_per_s: float | None = None, label: str = "training", quiet_below_s: float = 60.0):
        self.samples_per_s = samples_per_s
        self.label = label
        self.quiet_below_s = quiet_below_s  # short runs need no warning
        self.lines: list[str] = []  # what was printed (tests read it)
        self._epoch_start: float | None = None
        self._projected = False

    def _say(self, text: str) -> None:
        self.lines.append(text)
        print(f"[repro] {self.label}: {text}", flush=True)

    @staticmethod
    def _epochs(trainer: L.Trainer) -> int:
        return max(int(trainer.max_epochs or 1) - int(trainer.current_epoch), 0)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batches = trainer.num_training_batches
        loader = trainer.train_dataloader
        batch_size = getattr(loader, "batch_size", None) or 1
        samples = int(batches * batch_size) if batches != float("inf") else None
        epochs = self._epochs(trainer)
        if self.samples_per_s and samples:
            expected = epochs * samples / float(self.samples_per_s)
            if expected >= self.quiet_below_s:
                self._say(f"{epochs} epochs × {samples} samples at ~{self.samples_per_s:g} samples/s (measured rate) "
                          f"≈ {human_duration(expected)} of training, validation extra; the projection from the "
                          "first epoch follows it")
        else:
            self._say(f"{epochs} epochs; the expected duration is printed after the first epoch")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._epoch_start is None:
            self._epoch_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the first epoch's end, validation included; sanity checks run before any epoch started
        if self._projected or self._epoch_start is None or trainer.sanity_checking or trainer.current_epoch != 0:
            return
        self._projected = True
        first = time.perf_counter() - self._epoch_start
        remaining = (int(trainer.max_epochs or 1) - 1) * first
        if remaining >= self.quiet_below_s or not self.samples_per_s:
            self._say(f"first epoch took {human_duration(first)}; the remaining {int(trainer.max_epochs or 1) - 1} "
                      f"epochs ≈ {human_duration(remaining)}")
