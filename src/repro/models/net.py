"""Composition of per-modality encoders and a fusion method into one network (DESIGN.md, "Model contract").

Every fusion method is a `FusionNet`: it owns the encoders (an `nn.ModuleDict` keyed by modality name, the
same names as the batch keys) and returns a `NetOutput`. Three families share the running logic here:

- `LateFusionNet`     combines the per-modality logits (averaging, multiplication, ...);
- `FeatureFusionNet`  combines the pooled per-modality embeddings (concat+FC, MCBP, GMU, ...);
- `StagedFusionNet`   acts between encoder stages at named taps ("points"), e.g. MSAF, MMTM, CentralNet.

Whole-sequence / end-to-end networks that own their encoders differently subclass `FusionNet` directly.
`compute_loss` is the one place where a method may replace the task's loss (e.g. the multiplicative
combination's down-weighted loss, multitask heads); by default it is the task criterion on `logits` plus
the network's auxiliary losses (already weighted by the method's config).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from repro.models.backbones.base import StagedEncoder

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class NetOutput:
    """What every network returns."""

    logits: torch.Tensor
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class FusionNet(nn.Module):
    """Base class of every fusion network."""

    def __init__(self, encoders: Mapping[str, nn.Module] | nn.ModuleDict, num_classes: int):
        super().__init__()
        self.encoders = encoders if isinstance(encoders, nn.ModuleDict) else nn.ModuleDict(dict(encoders))
        if len(self.encoders) == 0:
            raise ValueError("a fusion network needs at least one encoder (check the `backbone` config)")
        self.num_classes = num_classes

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders.keys())

    def inputs(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = [m for m in self.modalities if m not in batch]
        if missing:
            raise KeyError(
                f"batch lacks modalities {missing}; it has {sorted(batch)} "
                "(the backbone's encoder names must match the dataset's modality names)"
            )
        return {m: batch[m] for m in self.modalities}

    def forward(self, batch: Mapping[str, torch.Tensor]) -> NetOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_loss(
        self, out: NetOutput, target: torch.Tensor, criterion: Criterion
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its named parts (logged by the task)."""
        parts = {"task": criterion(out.logits, target)}
        parts.update(out.aux_losses)
        total = torch.stack(list(parts.values())).sum()
        return total, parts

    def fusion_parameters(self) -> list[nn.Parameter]:
        """Parameters that belong to the fusion method, not to any encoder (for `params.fusion`)."""
        encoder_ids = {id(p) for p in self.encoders.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder_ids]


class LateFusionNet(FusionNet):
    """Decision-level fusion: subclasses implement `combine(logits_by_modality)`."""

    def forward(self, batch):
        per_modality = {m: self.encoders[m](x) for m, x in self.inputs(batch).items()}
        out = NetOutput(logits=self.combine(per_modality))
        out.extras["modality_logits"] = torch.stack([per_modality[m] for m in self.modalities], dim=1)
        return out

    def combine(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class FeatureFusionNet(FusionNet):
    """Feature-level fusion of pooled embeddings: subclasses implement `fuse(embeddings)` -> logits.

    `embed_dims[m]` is the size of modality m's embedding (the encoder's `embed_dim`).
    """

    def __init__(self, encoders, num_classes: int):
        super().__init__(encoders, num_classes)
        self.embed_dims = {m: int(enc.embed_dim) for m, enc in self.encoders.items()}

    def forward(self, batch):
        embeddings = {m: self.encoders[m].embed(x) for m, x in self.inputs(batch).items()}
        return NetOutput(logits=self.fuse(embeddings))

    def fuse(self, embeddings: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class StagedFusionNet(FusionNet):
    """Intermediate fusion at named taps of several staged encoders.

    `points` is a list of {modality: tap name}; at each point every named modality has been run up to and
    including that tap, then `fuse_at(k, taps)` may replace those taps (MSAF, MMTM) and/or record state
    (CentralNet). After the last point the encoders finish their stages and `finish(logits, pooled)`
    produces the network's logits (default: sum of the per-modality logits, as MSAF on RAVDESS).
    Points must be in non-decreasing stage order for every modality.
    """

    def __init__(self, encoders, num_classes: int, points: Sequence[Mapping[str, str]]):
        super().__init__(encoders, num_classes)
        for m, enc in self.encoders.items():
            if not isinstance(enc, StagedEncoder):
                raise TypeError(f"staged fusion needs staged encoders; encoder {m!r} is {type(enc).__name__}")
        self.points: list[dict[str, int]] = []
        for k, point in enumerate(points):
            resolved = {}
            for m, tap in dict(point).items():
                if m not in self.encoders:
                    raise KeyError(f"fusion point {k} names modality {m!r}; encoders are {self.modalities}")
                resolved[m] = self.encoders[m].stage_index(tap)
            self.points.append(resolved)
        for m in self.modalities:
            order = [p[m] for p in self.points if m in p]
            if order != sorted(order) or len(set(order)) != len(order):
                raise ValueError(f"fusion points for {m!r} must name distinct taps in stage order, got {order}")

    def point_channels(self, k: int) -> dict[str, int]:
        """Channels of each modality's tap at point k (for building the fusion modules)."""
        return {m: self.encoders[m].stage_channels[i] for m, i in self.points[k].items()}

    def forward(self, batch):
        x = self.inputs(batch)
        next_stage = {m: 0 for m in self.modalities}
        last_tap: dict[str, torch.Tensor] = {}
        extras: dict[str, torch.Tensor] = {}

        def advance(m: str, upto: int) -> None:
            enc = self.encoders[m]
            while next_stage[m] <= upto:
                i = next_stage[m]
                if i > 0:
                    x[m] = enc.to_next(i - 1, last_tap[m])
                last_tap[m] = enc.run_stage(i, x[m])
                next_stage[m] += 1

        for k, point in enumerate(self.points):
            for m, i in point.items():
                advance(m, i)
            fused = self.fuse_at(k, {m: last_tap[m] for m in point}, extras)
            last_tap.update(fused)
        for m in self.modalities:
            advance(m, self.encoders[m].num_stages - 1)
        pooled = {m: self.encoders[m].pool(last_tap[m]) for m in self.modalities}
        logits = {m: self.encoders[m].head(pooled[m]) for m in self.modalities}
        out = NetOutput(logits=self.finish(logits, pooled, extras), extras=extras)
        out.extras["modality_logits"] = torch.stack([logits[m] for m in self.modalities], dim=1)
        return out

    def fuse_at(
        self, k: int, taps: dict[str, torch.Tensor], extras: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self, logits: dict[str, torch.Tensor], pooled: dict[str, torch.Tensor], extras) -> torch.Tensor:
        return torch.stack(list(logits.values())).sum(dim=0)
