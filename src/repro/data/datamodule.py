"""The Lightning datamodule: any reader → train/val/test dataloaders, for an optional fold.

Splits and folds are the reader's business (DESIGN.md); this class batches, and applies the per-modality
`data.transforms` after the reader (`repro.data.transforms`: train pipelines on the train split, eval pipelines on
val and test; none configured = the reader's samples unchanged). The default collate stacks tensors and keeps
string ids as a list; a reader whose samples do not stack (e.g. MESM's variable frame / chunk counts) provides its
own as a `collate` attribute, which the loaders use instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from repro.data.base import ArrayDataset, DataError, Reader, folder_key_from_overrides
from repro.data.transforms import TransformedDataset, TransformError, fit_pipelines, parse_transforms


class MultimodalDataModule(L.LightningDataModule):
    @classmethod
    def from_config(cls, cfg, fold: int | None = None, overrides: Sequence[str] | None = None) -> MultimodalDataModule:
        """The reader and datamodule of a composed `train` config (`train.py`, `python -m repro.data check`): a
        reader's own argument check (DataError) comes out as its one line, not wrapped by Hydra. `overrides` (the
        command line) tell the reader which key the user pointed at the data with, for its errors' fixes."""
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate

        try:
            reader = instantiate(cfg.data.reader)
        except InstantiationException as err:
            if isinstance(err.__cause__, DataError):
                raise err.__cause__ from None
            raise
        reader.folder_key = folder_key_from_overrides(overrides, reader.path_key)
        return cls(
            reader,
            fold=fold,
            batch_size=int(cfg.data.batch_size),
            num_workers=int(cfg.data.num_workers),
            val_split="test" if cfg.protocol.select_on == "test" else "val",
            expected_shapes=cfg.data.get("modalities"),
            check_steps=bool(cfg.data.get("check_steps", True)),
            transforms=cfg.data.get("transforms"),
        )

    def __init__(
        self,
        reader: Reader,
        fold: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        val_split: str = "val",
        expected_shapes: Mapping[str, Sequence[int | None]] | None = None,
        check_steps: bool = True,
        transforms: Mapping | None = None,
        transform_seed: int | None = None,
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
        # `data.modalities`: the per-sample shape the config (and so the model) expects; None entries are free
        self.expected_shapes = {m: list(shape) for m, shape in (expected_shapes or {}).items()}
        self.check_steps = bool(check_steps)  # False: only the feature sizes (e.g. SYNTHETIC fixtures, shorter)
        self.splits: dict[str, ArrayDataset] | None = None
        # `data.transforms` → {"train"|"eval": {modality: Pipeline}}; parsed now so a bad entry fails before loading
        self.transforms = parse_transforms(transforms)
        # seeds the transforms' generator without dataloader workers; None = torch's seed (set by `seed=`)
        self.transform_seed = transform_seed
        self._transformed: dict[str, Dataset] = {}

    def read_only(self, modalities) -> None:
        """Load only these modalities (the ones the network reads, `FusionNet.modalities`): the reader skips the
        others' files where its format allows (`Reader.modalities`), and their transforms are dropped. Call it
        before the data is loaded."""
        if self.splits is not None:
            raise RuntimeError("read_only() must come before the data is loaded (setup)")
        self.reader.modalities = tuple(modalities)
        self.transforms = {kind: {m: p for m, p in pipelines.items() if m in modalities}
                           for kind, pipelines in self.transforms.items()}

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            splits = self.reader.load(self.fold)
            for split, dataset in splits.items():
                self.check_shapes(split, dataset)
            self.check_transform_modalities(splits["train"])
            fit_pipelines(self.transforms, splits["train"])  # e.g. normalisation statistics of the train split
            self.splits = splits

    def check_transform_modalities(self, train: ArrayDataset) -> None:
        for kind, pipelines in self.transforms.items():
            for modality in pipelines:
                if modality not in train.arrays:
                    raise TransformError(
                        f"data.transforms.{kind}.{modality}: the data has no modality {modality!r} (it has: "
                        f"{', '.join(sorted(train.arrays))}); rename or drop that key")

    def dataset(self, split: str) -> Dataset:
        """The split as the loaders see it: the reader's samples, through the split's transforms if any."""
        self.setup()
        pipelines = self.transforms["train" if split == "train" else "eval"]
        if not pipelines:
            return self.splits[split]
        if split not in self._transformed:  # one per split, so its generator advances across epochs
            seed = self.transform_seed if self.transform_seed is not None else torch.initial_seed()
            self._transformed[split] = TransformedDataset(self.splits[split], pipelines, seed)
        return self._transformed[split]

    def check_shapes(self, split: str, dataset: ArrayDataset) -> None:
        """Sequence data: each modality's (steps, features) must be the config's `data.modalities` entry.

        Catches e.g. the aligned pickle read under an unaligned config (50 audio steps instead of 500), which would
        otherwise train silently on the wrong data. Only 2-number entries (sequences) are checked; the steps only
        with `check_steps` (`data.check_steps`).
        """
        source = getattr(self.reader, "path", self.reader.name)
        for m, expected in self.expected_shapes.items():
            if len(expected) != 2 or m not in dataset.arrays:
                continue
            if not self.check_steps:
                expected = [None, expected[1]]
            actual = list(dataset.shapes.get(m, dataset.arrays[m].shape[1:]))
            if len(actual) != 2:
                continue
            if any(e is not None and int(e) != a for e, a in zip(expected, actual, strict=True)):
                raise DataError(
                    f"{source}: split {split!r} modality {m!r} has (steps, features) = {tuple(actual)}, the data "
                    f"config expects {tuple(expected)} (data.modalities.{m}); point the reader at the right file "
                    f"(aligned vs unaligned?) or override data.modalities.{m}=[{actual[0]},{actual[1]}] "
                    f"(null = any; data.check_steps=false ignores the steps)")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=getattr(self.reader, "collate", None),  # the reader's own batching, if it has one
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
