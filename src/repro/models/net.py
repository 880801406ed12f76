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


PART_SEPARATOR = "/"   # `tap/part` in a fusion point: one part of a tap (see StagedFusionNet)
ALL_PARTS = "*"


def parse_point_tap(spec: str) -> tuple[str, str | None]:
    """``"conv5"`` -> ("conv5", None); ``"conv5/p0"`` -> ("conv5", "p0"); ``"conv5/*"`` -> ("conv5", "*")."""
    tap, sep, parts = str(spec).partition(PART_SEPARATOR)
    if sep and not parts:
        raise ValueError(f"fusion point tap {spec!r} ends with {PART_SEPARATOR!r}; write tap/<part>, "
                         f"tap/<part>+<part> or tap/{ALL_PARTS}")
    return tap, parts or None


def input_modality(name: str) -> str:
    """The modality of a fusion input name: ``skeleton/p0`` -> ``skeleton``, ``video`` -> ``video``."""
    return name.split(PART_SEPARATOR, 1)[0]


class StagedFusionNet(FusionNet):
    """Intermediate fusion at named taps of several staged encoders.

    `points` is a list of {modality: tap name}; at each point every named modality has been run up to and
    including that tap, then `fuse_at(k, taps)` may replace those taps (MSAF, MMTM) and/or record state
    (CentralNet). After the last point the encoders finish their stages and `finish(logits, pooled)`
    produces the network's logits (default: sum of the per-modality logits, as MSAF on RAVDESS).
    Points must be in non-decreasing stage order for every modality.

    Tap parts: ``{skeleton: conv5/*}`` hands the fusion every part of the tap as its own input (named
    ``skeleton/p0``, ``skeleton/p1`` for HCN's persons), ``conv5/p0`` one part, ``conv5/p0+p1`` a list; the
    encoder declares the parts (`StagedEncoder.tap_parts`). The fused parts are merged back into the tap
    (`merge_tap`) and parts the fusion did not return stay as they were. `point_channels(k)` and the `taps` of
    `fuse_at` are keyed by these input names, in the point's order (modalities first to last, parts in order).
    """

    def __init__(self, encoders, num_classes: int, points: Sequence[Mapping[str, str]]):
        super().__init__(encoders, num_classes)
        for m, enc in self.encoders.items():
            if not isinstance(enc, StagedEncoder):
                raise TypeError(f"staged fusion needs staged encoders; encoder {m!r} is {type(enc).__name__}")
        self.points: list[dict[str, int]] = []
        self.point_parts: list[dict[str, tuple[str, ...]]] = []   # () = the whole tap
        for k, point in enumerate(points):
            resolved, parts = {}, {}
            for m, spec in dict(point).items():
                if m not in self.encoders:
                    raise KeyError(f"fusion point {k} names modality {m!r}; encoders are {self.modalities}")
                tap, wanted = parse_point_tap(spec)
                resolved[m] = self.encoders[m].stage_index(tap)
                parts[m] = self._resolve_parts(k, m, resolved[m], wanted)
            self.points.append(resolved)
            self.point_parts.append(parts)
        for m in self.modalities:
            order = [p[m] for p in self.points if m in p]
            if order != sorted(order) or len(set(order)) != len(order):
                raise ValueError(f"fusion points for {m!r} must name distinct taps in stage order, got {order}")

    def _resolve_parts(self, k: int, m: str, i: int, wanted: str | None) -> tuple[str, ...]:
        if wanted is None:
            return ()
        enc = self.encoders[m]
        available = enc.tap_parts(i)
        if not available:
            raise KeyError(f"fusion point {k}: {m} tap {enc.stage_names[i]!r} has no parts; write the tap alone")
        names = available if wanted == ALL_PARTS else tuple(wanted.split("+"))
        unknown = [p for p in names if p not in available]
        if unknown or len(set(names)) != len(names):
            raise KeyError(f"fusion point {k}: {m} tap {enc.stage_names[i]!r} has parts {list(available)}, "
                           f"got {wanted!r} (write tap/<part>, tap/<part>+<part> or tap/{ALL_PARTS})")
        return tuple(names)

    def point_channels(self, k: int) -> dict[str, int]:
        """Channels of each fusion input at point k (for building the fusion modules), keyed by input name."""
        channels = {}
        for m, i in self.points[k].items():
            enc, parts = self.encoders[m], self.point_parts[k][m]
            if not parts:
                channels[m] = enc.stage_channels[i]
            for part in parts:
                channels[f"{m}{PART_SEPARATOR}{part}"] = enc.part_channels(i, part)
        return channels

    def point_inputs(self, k: int, last_tap: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The fusion inputs of point k from the current taps (whole taps, or the named parts)."""
        inputs = {}
        for m, i in self.points[k].items():
            parts = self.point_parts[k][m]
            if not parts:
                inputs[m] = last_tap[m]
                continue
            split = self.encoders[m].split_tap(i, last_tap[m])
            inputs.update({f"{m}{PART_SEPARATOR}{p}": split[p] for p in parts})
        return inputs

    def merge_fused(self, k: int, fused: Mapping[str, torch.Tensor],
                    last_tap: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The taps that replace the current ones after point k: fused parts merged back into their tap."""
        merged = {}
        for m, i in self.points[k].items():
            parts = self.point_parts[k][m]
            if not parts:
                if m in fused:
                    merged[m] = fused[m]
                continue
            names = [f"{m}{PART_SEPARATOR}{p}" for p in parts]
            if not any(n in fused for n in names):
                continue
            split = self.encoders[m].split_tap(i, last_tap[m])
            split.update({p: fused[n] for p, n in zip(parts, names) if n in fused})
            merged[m] = self.encoders[m].merge_tap(i, split)
        return merged

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
            fused = self.fuse_at(k, self.point_inputs(k, last_tap), extras)
            last_tap.update(self.merge_fused(k, fused, last_tap))
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
