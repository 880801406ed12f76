"""Per-modality train / eval transforms in pure torch, configured under `data.transforms`, run by the datamodule.

Config form (absent or empty = no transforms, the data exactly as the reader gives it)::

    data:
      transforms:
        train:                       # the train split only
          video: [{name: random_resized_crop, size: 224, scale: [0.8, 1.4]}, {name: hflip, p: 0.5}]
          audio: [{name: normalize, axis: 0}]          # mean/std per MFCC coefficient, from the train split
        eval:                        # val and test (whichever split selects the checkpoint, too)
          video: [{name: center_crop, size: 224}]
          audio: [{name: normalize, axis: 0}]

Each entry is `{name: <registered name>, <parameters>}` (see `REGISTRY`), or `{_target_: <dotted class path>,
<parameters>}` for a class of your own: a callable `(x, generator) -> tensor` with a class attribute `random`
(True when it draws from `generator`). Random transforms must draw only from the `torch.Generator` they are given:
the datamodule seeds one per dataloader worker (`TransformedDataset`), so a run is reproducible under `seed=` and
the augmentation does not depend on how much of the global RNG the model consumed. Eval pipelines must be
deterministic (a random transform there is a config error). Inputs are one sample's tensor: video clips
(T, C, H, W), images (C, H, W), spectrograms / MFCCs (features, time) or (C, F, T); uint8 or float.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, get_worker_info

from repro.config import ConfigError
from repro.data.base import ArrayDataset

PIPELINE_KINDS = ("train", "eval")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANK_STRIDE = 1_000_003  # DDP ranks' generator seeds lie this far apart (torch's worker seeds are base + worker id)


class TransformError(ConfigError):
    """`data.transforms` names something unknown or malformed; the message is one line with the key and the fix."""


# ---------------------------------------------------------------------------------------------------------------
# helpers shared by the spatial transforms (the last two axes are H, W; any leading axes: frames, channels)


def _pair(size: int | Sequence[int], what: str) -> tuple[int, int]:
    pair = (int(size), int(size)) if isinstance(size, int | float) else tuple(int(s) for s in size)
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError(f"{what} must be a positive int or [height, width], got {size!r}")
    return pair


def _range(values: Sequence[float], what: str, positive: bool = True) -> tuple[float, float]:
    lo, hi = (float(v) for v in values) if isinstance(values, Sequence) and len(values) == 2 else (math.nan,) * 2
    if not lo <= hi or (positive and lo <= 0):
        raise ValueError(f"{what} must be [min, max] with 0 < min <= max, got {list(values)!r}")
    return lo, hi


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of the last two axes, antialiased when shrinking (as PIL's resize, which MSAF's frames went
    through); integer inputs come back rounded in their own dtype."""
    if tuple(x.shape[-2:]) == size:
        return x
    flat = x.reshape(-1, 1, *x.shape[-2:]).float()  # every leading axis is an independent plane for bilinear
    # antialiasing only matters when an axis shrinks; enlarging with it gives the same values (to ~1e-5 of the
    # range) through a kernel ~2.5× slower (the RAVDESS clips' crops are mostly enlarged back to 224²)
    shrinks = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=shrinks)
    out = out.reshape(*x.shape[:-2], *size)
    if not x.dtype.is_floating_point:
        info = torch.iinfo(x.dtype)
        return out.round().clamp(info.min, info.max).to(x.dtype)
    return out.to(x.dtype)


def _uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


def _randint(lo: int, hi_inclusive: int, generator: torch.Generator) -> int:
    return int(torch.randint(lo, hi_inclusive + 1, (), generator=generator).item())


def random_resized_crop_box(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator,
    attempts: int = 10,
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop with area `scale` × the frame's and aspect ratio w/h log-uniform in `ratio`.

    Same semantics as torchvision's `RandomResizedCrop.get_params`, which MSAF's RAVDESS training used
    (anita-hu/MSAF `ravdess/main_msaf.py`: `RandomResizedCrop(size=(224, 224), scale=(0.8, 1.4))`; read, not
    copied): up to `attempts` draws of (area, ratio) are tried and a draw whose box does not fit inside the frame is
    rejected; when all are rejected the crop is the centre of the frame, the whole frame when its aspect ratio lies
    in `ratio`. So a scale > 1 never zooms out or pads: such a draw (area larger than the frame) is always rejected,
    and the upper end of (0.8, 1.4) only raises how often the whole, uncropped frame is used.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(attempts):
        target_area = area * _uniform(scale[0], scale[1], generator)
        aspect = math.exp(_uniform(log_lo, log_hi, generator))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return _randint(0, height - h, generator), _randint(0, width - w, generator), h, w
    frame_ratio = width / height
    if frame_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif frame_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


# ---------------------------------------------------------------------------------------------------------------
# the transforms


class Transform:
    """A per-sample transform. `random` ones draw only from the generator passed in; the others ignore it."""

    random: bool = False

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class RandomResizedCrop(Transform):
    """Crop a random box (`random_resized_crop_box`: area fraction `scale`, aspect ratio `ratio`) and resize it to
    `size`. Video (T, C, H, W): one box per clip, the same on every frame; `per_frame: true` draws a box per frame —
    MSAF's QUIRK (its RAVDESS loader applied the torchvision transform to each frame independently, see
    papers/IMPLEMENTATION-NOTES.md §1.2)."""

    random = True

    def __init__(self, size: int | Sequence[int], scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), per_frame: bool = False):
        self.size = _pair(size, "size")
        self.scale = _range(scale, "scale")
        self.ratio = _range(ratio, "ratio")
        self.per_frame = bool(per_frame)

    def _crop(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        top, left, h, w = random_resized_crop_box(*x.shape[-2:], self.scale, self.ratio, generator)
        return _resize(x[..., top:top + h, left:left + w], self.size)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.per_frame and x.ndim == 4:
            return torch.stack([self._crop(frame, generator) for frame in x])
        return self._crop(x, generator)


class HorizontalFlip(Transform):
    """Mirror the last axis (W) with probability `p`: once per clip for video, or per frame with `per_frame: true`
    (MSAF's QUIRK, as for the crop)."""

    random = True

    def __init__(self, p: float = 0.5, per_frame: bool = False):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.per_frame = bool(per_frame)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.per_frame and x.ndim == 4:
            flip = torch.rand(x.shape[0], generator=generator) < self.p
            return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return x.flip(-1) if torch.rand((), generator=generator).item() < self.p else x


class CenterCrop(Transform):
    """Crop the centre `size` box of the last two axes (zero-padded first where the frame is smaller, as
    torchvision's CenterCrop)."""

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair(size, "size")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        (h, w), (height, width) = self.size, x.shape[-2:]
        if h > height or w > width:
            pad_h, pad_w = max(h - height, 0), max(w - width, 0)
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
            height, width = x.shape[-2:]
        top, left = int(round((height - h) / 2)), int(round((width - w) / 2))
        return x[..., top:top + h, left:left + w]


class ReverseChannels(Transform):
    """Reverse the channel order along `axis` (default -3: C of (C, H, W) and of (T, C, H, W)): BGR ↔ RGB.
    (MSAF's RAVDESS frames reach the network channel-swapped, a QUIRK; this undoes or reproduces it.)"""

    def __init__(self, axis: int = -3):
        self.axis = int(axis)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x.flip(self.axis)


class Normalize(Transform):
    """`(x - mean) / std` per feature. `axis`: the sample axis (or list of axes) whose entries are the features —
    e.g. 0 for MFCCs (13, time) or channels (C, H, W), -3 for video channels, 1 for the frequency rows of a
    (1, F, T) spectrogram; null = one mean and std for everything. `mean` / `std`: given values (a scalar or one per
    feature along a single axis), or both omitted = computed on the train split as the reader gives it (before the
    other transforms; the datamodule calls `fit`). A feature with std below `eps` is only centred."""

    needs_fit = True

    def __init__(self, mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None,
                 axis: int | Sequence[int] | None = 0, eps: float = 1e-8):
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither (then they are computed on the train split)")
        self.axis = None if axis is None else (int(axis) if isinstance(axis, int) else tuple(int(a) for a in axis))
        self.eps = float(eps)
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32)
        if self.mean is not None and self.mean.ndim > 0 and not isinstance(self.axis, int):
            raise ValueError("per-feature mean/std lists need one feature axis (axis: <int>)")
        self.needs_fit = self.mean is None

    def fit(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the statistics (shaped to broadcast against one sample, from `feature_stats`)."""
        self.mean, self.std = mean.float(), std.float()
        self.needs_fit = False

    def _operand(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if v.ndim == 0 or v.ndim == x.ndim:
            return v
        shape = [1] * x.ndim  # a given per-feature list: along the one feature axis, broadcast over the rest
        shape[self.axis] = -1
        return v.reshape(shape)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.needs_fit:
            raise RuntimeError("Normalize without mean/std was not fitted on the train split (the datamodule does)")
        x = x.float()
        std = torch.where(self.std < self.eps, torch.ones_like(self.std), self.std)  # constant feature: centre only
        return (x - self._operand(self.mean, x)) / self._operand(std, x)


class ImageNetNormalize(Normalize):
    """ImageNet mean/std per RGB channel (`axis`, default -3) after dividing by `max_value`, the value of white:
    255 for pixels as stored (the readers hand uint8 frames on as float 0..255), 1 where the reader already scaled
    to 0..1 — torchvision's ToTensor + Normalize, as MSAF's RAVDESS code."""

    def __init__(self, max_value: float = 255.0, axis: int = -3):
        super().__init__(mean=IMAGENET_MEAN, std=IMAGENET_STD, axis=axis)
        self.max_value = float(max_value)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # (x / max - mean) / std as one multiply-add, x·a + b: one pass over a (30, 3, 224, 224) clip instead of three
        x = x.float()
        scale = self._operand(1.0 / (self.max_value * self.std), x)
        return torch.addcmul(self._operand(-self.mean / self.std, x), x, scale)


REGISTRY: dict[str, Callable[..., Transform]] = {
    "random_resized_crop": RandomResizedCrop,
    "hflip": HorizontalFlip,
    "center_crop": CenterCrop,
    "normalize": Normalize,
    "imagenet_normalize": ImageNetNormalize,
    "bgr_to_rgb": ReverseChannels,
    "rgb_to_bgr": ReverseChannels,
}


# ---------------------------------------------------------------------------------------------------------------
# configuration


class Pipeline:
    """One modality's transforms, applied in order."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)
        self.random = any(getattr(t, "random", False) for t in self.transforms)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Pipeline({self.transforms!r})"


def _plain(cfg):
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig | ListConfig) else cfg


def _import_target(target: str, where: str):
    module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise TransformError(f"{where}: cannot import _target_ {target!r} ({err}); fix the dotted class path") from None


def build_transform(entry: Mapping, where: str) -> Transform:
    """One `{name: ..., <params>}` or `{_target_: ..., <params>}` entry; bad input → one-line `TransformError`."""
    if not isinstance(entry, Mapping):
        raise TransformError(f"{where}: expected {{name: <transform>, <parameters>}}, got {entry!r}")
    params = dict(entry)
    name, target = params.pop("name", None), params.pop("_target_", None)
    if (name is None) == (target is None):
        raise TransformError(f"{where}: give exactly one of name: <{' | '.join(REGISTRY)}> or _target_: <class path>")
    if name is not None:
        if name not in REGISTRY:
            raise TransformError(f"{where}: unknown transform {name!r}; known: {', '.join(REGISTRY)} "
                                 f"(or _target_: <your class>)")
        factory, label = REGISTRY[name], name
    else:
        factory, label = _import_target(str(target), where), target
    try:
        transform = factory(**params)
    except (TypeError, ValueError) as err:
        accepted = ", ".join(p for p in inspect.signature(factory).parameters if p != "self")
        raise TransformError(f"{where} ({label}): {err}; parameters: {accepted}") from None
    if not callable(transform):
        raise TransformError(f"{where}: {label} is not callable as (x, generator) -> tensor")
    return transform


def parse_transforms(cfg: Mapping | None) -> dict[str, dict[str, Pipeline]]:
    """`data.transforms` → {"train": {modality: Pipeline}, "eval": {...}}; absent / empty → no pipelines."""
    cfg = _plain(cfg) or {}
    if not isinstance(cfg, Mapping):
        raise TransformError(f"data.transforms: expected {{train: {{<modality>: [...]}}, eval: ...}}, got {cfg!r}")
    unknown = sorted(set(cfg) - set(PIPELINE_KINDS))
    if unknown:
        raise TransformError(f"data.transforms.{unknown[0]}: unknown key; use train (the train split) and eval "
                             f"(val and test)")
    parsed: dict[str, dict[str, Pipeline]] = {kind: {} for kind in PIPELINE_KINDS}
    for kind, modalities in cfg.items():
        modalities = modalities or {}
        if not isinstance(modalities, Mapping):
            raise TransformError(f"data.transforms.{kind}: expected {{<modality>: [<transform>, ...]}}")
        for modality, entries in modalities.items():
            where = f"data.transforms.{kind}.{modality}"
            if not isinstance(entries, Sequence) or isinstance(entries, str):
                raise TransformError(f"{where}: expected a list of transforms, got {entries!r}")
            pipeline = Pipeline([build_transform(e, f"{where}[{i}]") for i, e in enumerate(entries)])
            if kind == "eval" and pipeline.random:
                raise TransformError(f"{where}: {pipeline.transforms} holds a random transform; eval transforms must "
                                     f"be deterministic: move it under data.transforms.train")
            if pipeline.transforms:
                parsed[kind][modality] = pipeline
    return parsed


# ---------------------------------------------------------------------------------------------------------------
# statistics and the transformed dataset


def feature_stats(dataset: ArrayDataset, modality: str, axis: int | Sequence[int] | None,
                  batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) std of one modality over a split, per entry of the sample `axis` (None: overall).

    Reads only that modality, in batches, accumulating in float64 (Chan et al.'s pairwise update), so a
    memory-mapped split is never copied whole. The results keep the sample's rank (size 1 on pooled axes).
    """
    view = ArrayDataset({modality: dataset.arrays[modality]}, dataset.labels, dataset.ids, dataset.scaling,
                        dataset.shapes, dataset.label_dtype)
    count, mean, m2 = 0, None, None
    for batch in DataLoader(view, batch_size=batch_size, shuffle=False):
        x = batch[modality].double()
        sample_ndim = x.ndim - 1
        kept = set() if axis is None else {a % sample_ndim for a in ([axis] if isinstance(axis, int) else axis)}
        dims = [0] + [d + 1 for d in range(sample_ndim) if d not in kept]
        n = math.prod(x.shape[d] for d in dims)
        b_mean = x.mean(dim=dims, keepdim=True)
        b_m2 = ((x - b_mean) ** 2).sum(dim=dims, keepdim=True)
        if mean is None:
            count, mean, m2 = n, b_mean, b_m2
        else:
            delta = b_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + b_m2 + delta**2 * (count * n / total)
            count = total
    if mean is None:
        raise ValueError(f"cannot compute {modality!r} statistics on an empty train split")
    return mean[0].float(), (m2[0] / count).sqrt().float()


def fit_pipelines(parsed: Mapping[str, Mapping[str, Pipeline]], train: ArrayDataset) -> None:
    """Give every `Normalize` without values the statistics of the train split (computed once per modality/axis)."""
    cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
    for pipelines in parsed.values():
        for modality, pipeline in pipelines.items():
            for t in pipeline.transforms:
                if getattr(t, "needs_fit", False):
                    key = (modality, getattr(t, "axis", None))
                    if key not in cache:
                        cache[key] = feature_stats(train, modality, t.axis)
                    t.fit(*cache[key])


class TransformedDataset(Dataset):
    """A split with per-modality pipelines applied to each sample after the reader.

    Random draws come from one `torch.Generator` per process: in a dataloader worker it is seeded with
    `get_worker_info().seed` (torch's base seed, drawn from the main process's seeded RNG, + the worker id), so
    workers differ from one another and a run is reproducible under `seed=`; without workers (num_workers=0) it is
    seeded with `seed` and advances across epochs. Under DDP the rank is mixed in, as every rank starts from the
    same seed.
    """

    def __init__(self, dataset: Dataset, pipelines: Mapping[str, Pipeline], seed: int):
        self.dataset = dataset
        self.pipelines = dict(pipelines)
        self.seed = int(seed)
        self.rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self._generator: torch.Generator | None = None
        self._generator_seed: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def generator(self) -> torch.Generator:
        info = get_worker_info()
        seed = ((info.seed if info is not None else self.seed) + RANK_STRIDE * self.rank) % 2**63
        if self._generator is None or self._generator_seed != seed:  # first use in this process (or worker)
            self._generator = torch.Generator().manual_seed(seed)
            self._generator_seed = seed
        return self._generator

    def __getitem__(self, i: int) -> dict:
        sample = self.dataset[i]
        generator = self.generator()
        for modality, pipeline in self.pipelines.items():
            sample[modality] = pipeline(sample[modality], generator)
        return sample

    def __getstate__(self) -> dict:  # a worker started by spawn gets its own generator, not a copy of this one
        return {**self.__dict__, "_generator": None, "_generator_seed": None}
