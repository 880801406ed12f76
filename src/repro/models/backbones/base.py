"""The staged-encoder contract (DESIGN.md, "Model contract").

A staged encoder is a unimodal network cut into named stages. Running it stage by stage lets a fusion
module act on the outputs of several encoders at once (MSAF, MMTM, CentralNet, MFAS-found architectures).
Each stage's output is a *tap*; `pool` turns any tap into a (B, C) descriptor by averaging every
non-channel dimension (MFAS's `GlobalPooling2D`, which flattens any rank).
"""

from __future__ import annotations

import torch
from torch import nn


def global_average(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *dims) -> (B, C): mean over every dimension after the channel one."""
    if x.dim() <= 2:
        return x
    return x.flatten(2).mean(dim=2)


class StagedEncoder(nn.Module):
    """Base class: subclasses fill `stages`, `stage_names`, `stage_channels` and `head`.

    - `stages[i](x)` maps the output of stage i-1 (or the input) to tap i.
    - `tap_transform(i, out)` maps a stage output to the tensor that is *passed on* to the next stage
      (e.g. max-pooling after a LeNet conv block); the tap itself is the un-pooled output, as in MFAS.
    - `head` maps the pooled last tap (B, stage_channels[-1]) to logits.
    """

    stage_names: list[str]
    stage_channels: list[int]

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        self.head: nn.Module = nn.Identity()

    # -- stage-by-stage API ----------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def embed_dim(self) -> int:
        """Size of the pooled embedding the head reads (the last tap's channels)."""
        return self.stage_channels[-1]

    def stage_index(self, name: str) -> int:
        if name not in self.stage_names:
            raise KeyError(
                f"{type(self).__name__} has no tap {name!r}; its taps are {self.stage_names} "
                "(fix the fusion's `points` in the config)"
            )
        return self.stage_names.index(name)

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Output (tap) of stage i given the input that stage receives."""
        return self.stages[i](x)

    def to_next(self, i: int, tap: torch.Tensor) -> torch.Tensor:
        """What stage i hands to stage i+1 (default: the tap itself)."""
        return tap

    def pool(self, tap: torch.Tensor) -> torch.Tensor:
        return global_average(tap)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output, in order."""
        outs = []
        for i in range(self.num_stages):
            tap = self.run_stage(i, x)
            outs.append(tap)
            x = self.to_next(i, tap)
        return outs

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled last tap: the embedding the classifier head reads."""
        return self.pool(self.taps(x)[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
