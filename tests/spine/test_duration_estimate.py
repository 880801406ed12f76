"""DurationEstimate states a run's expected time before it starts and projects it after the first epoch."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from repro.callbacks import DurationEstimate, human_duration


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(callback: DurationEstimate, epochs: int = 3) -> None:
    data = TensorDataset(torch.randn(40, 4), torch.randint(0, 2, (40,)))
    trainer = L.Trainer(max_epochs=epochs, callbacks=[callback], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Tiny(), DataLoader(data, batch_size=10), DataLoader(data, batch_size=10))


def test_estimate_before_start_from_the_measured_rate(capsys):
    callback = DurationEstimate(samples_per_s=0.5, label="pre-training the image encoder")
    fit(callback)
    # 3 epochs × 4 batches × 10 samples at 0.5 samples/s = 240 s = 4 min, printed before the first epoch
    assert callback.lines[0].startswith("3 epochs × 40 samples at ~0.5 samples/s") and "≈ 4 min" in callback.lines[0]
    assert "[repro] pre-training the image encoder: 3 epochs" in capsys.readouterr().out


def test_projection_after_the_first_epoch_without_a_rate():
    callback = DurationEstimate(samples_per_s=None)
    fit(callback)
    assert callback.lines[0] == "3 epochs; the expected duration is printed after the first epoch"
    assert len(callback.lines) == 2 and callback.lines[1].startswith("first epoch took ")
    assert "the remaining 2 epochs ≈" in callback.lines[1]


def test_human_duration():
    assert [human_duration(s) for s in (30, 600, 3 * 3600)] == ["30 s", "10 min", "3.0 h"]
