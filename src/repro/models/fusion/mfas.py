"""MFAS fusion networks (Pérez-Rúa et al., CVPR 2019; mfas.txt §3.1, Eqs. 1–2, and §3.3 "Final architecture").

A found architecture is a list of triplets γ_l = (tap of modality x, tap of modality y, non-linearity) over
two staged encoders (see `repro.models.fusion.mfas_space`). Every tap is globally average-pooled to a vector (§3.3,
"Handling arbitrary tensor dimensions"), then

    h_1 = σ_{γ^p_1}(W_1 [x_{γ^m_1}; y_{γ^n_1}])                    (Eq. 2)
    h_l = σ_{γ^p_l}(W_l [x_{γ^m_l}; y_{γ^n_l}; h_{l-1}])            (Eq. 1)
    ẑ_{x,y} = W_out h_L

Each fusion layer is Linear → non-linearity → [BatchNorm1d] → Dropout, as the authors' `*_searchable.py`.

- `MFASFusion` is the fusion MLP alone, on pooled features. The search trains it on cached features
  (`repro.search.features`); weight sharing (§3.2) reuses its per-layer `Linear`s across sampled networks.
- `MFASNet` is the whole network on two staged encoders (the `mfas_found` fusion config): the same MLP on live
  taps, plus the multitask option of §3.3 — loss CE(ẑ_x)+CE(ẑ_y)+CE(ẑ_{x,y}) on the two unimodal heads and
  the fused head, prediction = the sum of the three logit vectors (authors' `main_found_ntu.py`). The
  two-phase schedule of §3.3 (encoders frozen first, then unfrozen) is the `FreezeEncoders` callback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn

from repro.models.backbones.base import StagedEncoder
from repro.models.fusion.mfas_space import SearchSpace, SearchSpaceError
from repro.models.net import FusionNet, NetOutput

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}


class MFASFusion(nn.Module):
    """The fusion MLP of one architecture, given as (L, 3) codes over per-tap feature sizes.

    `codes[l] = (i, j, p)`: layer l reads pooled tap i of modality x (size `x_dims[i]`), tap j of modality y
    (`y_dims[j]`) and uses non-linearity `nonlinearities[p]`.
    """

    def __init__(
        self,
        codes: Sequence[Sequence[int]],
        x_dims: Sequence[int],
        y_dims: Sequence[int],
        nonlinearities: Sequence[str],
        num_classes: int,
        inner_size: int = 16,
        dropout: float = 0.5,
        batchnorm: bool = False,
    ):
        super().__init__()
        self.codes = [tuple(int(v) for v in row) for row in codes]
        if not self.codes:
            raise ValueError("an MFAS architecture needs at least one fusion layer")
        self.layers = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for l, (i, j, p) in enumerate(self.codes):
            in_features = x_dims[i] + y_dims[j] + (inner_size if l > 0 else 0)
            linear = nn.Linear(in_features, inner_size)
            self.layers.append(linear)
            post = [ACTIVATIONS[nonlinearities[p]]()]
            if batchnorm:
                post.append(nn.BatchNorm1d(inner_size))
            post.append(nn.Dropout(dropout))
            self.blocks.append(nn.Sequential(*post))
        self.classifier = nn.Linear(inner_size, num_classes)

    def fusion_params(self) -> int:
        """Parameters of the fusion layers W_1..W_L (weights and biases), the count of MFAS Table 5: the output
        classifier W_out and any BatchNorm are not counted (tests/search/test_search_ntu.py)."""
        return sum(p.numel() for layer in self.layers for p in layer.parameters())

    def share_key(self, l: int) -> tuple[int, int, int]:
        """Weight-sharing key of layer l (mfas.txt §3.2: same layer index and same matrix size)."""
        linear = self.layers[l]
        return l, linear.in_features, linear.out_features

    def forward(self, x_feats: Sequence[torch.Tensor], y_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        h = None
        for (i, j, _), linear, block in zip(self.codes, self.layers, self.blocks):
            parts = [x_feats[i], y_feats[j]] if h is None else [x_feats[i], y_feats[j], h]
            h = block(linear(torch.cat(parts, dim=1)))
        return self.classifier(h)


def modalities_of(arch: str) -> list[str]:
    """The two modality names an architecture string starts with ('audio.conv3+image.conv2/relu | ...')."""
    first = str(arch).split("|")[0].split("+")
    if len(first) != 2 or not all("." in part for part in first):
        raise SearchSpaceError(f"architecture {arch!r} is not of the form 'x.tap+y.tap/nonlinearity | ...' "
                               "(e.g. 'audio.conv3+image.conv2/relu')")
    return [part.split(".", 1)[0].strip() for part in first]


def fusion_layer_params(codes: Sequence[Sequence[int]], x_dims: Sequence[int], y_dims: Sequence[int],
                        inner_size: int) -> int:
    """Σ_l (in_l + 1)·inner with in_1 = x + y and in_l = x + y + inner: `MFASFusion.fusion_params` without
    building the network (the search records it for every top architecture, at the found-architecture size)."""
    total = 0
    for l, (i, j, _) in enumerate(codes):
        in_features = x_dims[i] + y_dims[j] + (inner_size if l > 0 else 0)
        total += (in_features + 1) * inner_size
    return total


class MFASNet(FusionNet):
    """A found MFAS architecture on two staged encoders (`fusion=mfas_found`).

    The architecture is a string (`arch`, the form `repro.models.fusion.mfas_space` prints). `taps` / `aliases`
    are the backbone's `search_space` ones (the names the string may use; an alias reads the stage it names). With
    `fusion.search_dir` / `fusion.rank`, `repro.train.build_net` reads it from a finished search (`repro.runs`) and
    starts the encoders from that search's checkpoints unless `backbone.init_from` already set them.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        num_classes: int,
        arch: str | None = None,
        modalities: Sequence[str] | None = None,
        nonlinearities: Sequence[str] | None = ("relu", "sigmoid"),
        max_layers: int = 4,
        taps: Mapping[str, Sequence[str] | None] | None = None,
        aliases: Mapping[str, Mapping[str, str] | None] | None = None,
        inner_size: int = 64,
        dropout: float = 0.5,
        batchnorm: bool = False,
        multitask: bool = True,
    ):
        if arch is None:
            raise ValueError("mfas_found needs an architecture: fusion.arch (a string) or fusion.search_dir (a search)")
        if nonlinearities is None:
            raise SearchSpaceError("fusion=mfas_found: the backbone set has no `search_space` (the MFAS taps and "
                                   "non-linearities); pick one that defines it (data=ntu: backbone=ntu_resnet)")
        modalities = list(modalities or modalities_of(arch))
        super().__init__({m: encoders[m] for m in modalities if m in encoders}, num_classes)
        space = SearchSpace.from_encoders(self.encoders, modalities, taps=taps, nonlinearities=nonlinearities,
                                          max_layers=max_layers, aliases=aliases)
        self.space = space
        self.arch = space.format(space.parse(arch))
        codes = space.codes(space.parse(arch))
        x_enc, y_enc = self.encoders[space.x_modality], self.encoders[space.y_modality]
        for m, enc in ((space.x_modality, x_enc), (space.y_modality, y_enc)):
            if not isinstance(enc, StagedEncoder):
                raise TypeError(f"MFAS needs staged encoders; {m!r} is {type(enc).__name__}")
        # codes index the space's taps; each tap reads one encoder stage (an alias reads the stage it names)
        self.tap_index = dict(zip((space.x_modality, space.y_modality),
                                  space.stage_indices(x_enc.stage_names, y_enc.stage_names)))
        x_dims = [x_enc.stage_channels[i] for i in self.tap_index[space.x_modality]]
        y_dims = [y_enc.stage_channels[i] for i in self.tap_index[space.y_modality]]
        self.fusion = MFASFusion(codes, x_dims, y_dims, space.nonlinearities,
                                 num_classes, inner_size=inner_size, dropout=dropout, batchnorm=batchnorm)
        self.multitask = multitask

    def pooled_taps(self, batch) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, torch.Tensor]]:
        x = self.inputs(batch)
        feats, logits = {}, {}
        for m in (self.space.x_modality, self.space.y_modality):
            enc = self.encoders[m]
            pooled = [enc.pool(t) for t in enc.taps(x[m])]
            feats[m] = [pooled[i] for i in self.tap_index[m]]
            logits[m] = enc.head(pooled[-1])
        return feats[self.space.x_modality], feats[self.space.y_modality], logits

    def forward(self, batch):
        x_feats, y_feats, logits = self.pooled_taps(batch)
        fused = self.fusion(x_feats, y_feats)
        out = NetOutput(logits=fused)
        out.extras["fused_logits"] = fused
        out.extras["modality_logits"] = torch.stack([logits[m] for m in self.modalities], dim=1)
        if self.multitask:
            out.logits = fused + sum(logits.values())  # authors' prediction: sum of the three logit vectors
        return out

    def compute_loss(self, out, target, criterion):
        parts = {"fused": criterion(out.extras["fused_logits"], target)}
        if self.multitask:
            for k, m in enumerate(self.modalities):
                parts[m] = criterion(out.extras["modality_logits"][:, k], target)
        return torch.stack(list(parts.values())).sum(), parts


class FreezeEncoders(BaseFinetuning):
    """Two-phase training of a found architecture (mfas.txt §3.3): encoders frozen for the first
    `frozen_epochs` epochs (only the fusion layers learn), then unfrozen and added to the optimiser with
    learning rate `lr_ratio` × the fusion layers' rate. Lightning's `BaseFinetuning` does the freezing: frozen
    BatchNorm layers stop updating their running statistics and normalise with batch statistics in training,
    as the BatchNorm layers of the authors' frozen backbones (left in train mode) did."""

    def __init__(self, frozen_epochs: int = 1, lr_ratio: float = 1.0):
        super().__init__()
        self.frozen_epochs = int(frozen_epochs)
        self.lr_ratio = float(lr_ratio)

    def freeze_before_training(self, pl_module) -> None:
        if self.frozen_epochs > 0:
            self.freeze(pl_module.net.encoders, train_bn=False)

    def finetune_function(self, pl_module, current_epoch: int, optimizer) -> None:
        if self.frozen_epochs > 0 and current_epoch == self.frozen_epochs:
            lr = optimizer.param_groups[0]["lr"] * self.lr_ratio
            self.unfreeze_and_add_param_group(pl_module.net.encoders, optimizer, lr=lr, train_bn=True)
            self.extend_schedulers(pl_module, optimizer)

    def extend_schedulers(self, pl_module, optimizer) -> None:
        """Give the new parameter group its place in the optimiser's LR schedulers (a scheduler keeps one base lr
        per group, and torch's `step` refuses a group it does not know): the first group's base lr × `lr_ratio`,
        so the encoders follow the same schedule (e.g. the NTU preset's cosine with warm restarts)."""
        trainer = getattr(pl_module, "_trainer", None)
        for config in getattr(trainer, "lr_scheduler_configs", None) or []:
            scheduler = config.scheduler
            if getattr(scheduler, "optimizer", None) is not optimizer or not hasattr(scheduler, "base_lrs"):
                continue
            for group in optimizer.param_groups[len(scheduler.base_lrs):]:
                base = scheduler.base_lrs[0] * self.lr_ratio
                group.setdefault("initial_lr", base)
                scheduler.base_lrs.append(base)
