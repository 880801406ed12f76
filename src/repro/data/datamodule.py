"""The Lightning datamodule: any reader → train/val/test dataloaders, for an optional fold.

Splits and folds are the reader's business (DESIGN.md); this class only batches. The default collate
stacks tensors and keeps string ids as a list.
"""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from repro.data.base import ArrayDataset, Reader


class MultimodalDataModule(L.LightningDataModule):
    def __init__(
        self,
        reader: Reader,
        fold: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        val_split: str = "val",
    ):
        super().__init__()
        self.reader = reader
        self.fold = fold
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        # Which split the validation loop (model selection) reads: "val", or "test" for papers that
        # selected on the test fold (protocol.select_on=test, e.g. MSAF on RAVDESS).
        self.val_split = val_split
        self.splits: dict[str, ArrayDataset] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self.reader.load(self.fold)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_split, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def split_sizes(self) -> dict[str, int]:
        self.setup()
        return {k: len(v) for k, v in self.splits.items()}
