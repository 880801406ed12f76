"""The staged-encoder contract (DESIGN.md, "Model contract").

A staged encoder is a unimodal network cut into named stages. Running it stage by stage lets a fusion
module act on the outputs of several encoders at once (MSAF, MMTM, CentralNet, MFAS-found architectures).
Each stage's output is a *tap*; `pool` turns any tap into a (B, C) descriptor by averaging every
non-channel dimension (MFAS's `GlobalPooling2D`, which flattens any rank).

Tap parts. Some taps hold several tensors a fusion treats as separate inputs: HCN's per-person maps
(B, C, H, W, 2) are two inputs of MSAF's first module on NTU (anita-hu/MSAF ``msaf_ntu.py``: ``[fm3, out5_p0,
out5_p1]``), and MMTM fuses person 0 alone (haamoon/mmtm ``mmtm.py``). An encoder names the parts a tap can be cut
into (`tap_parts`), cuts it (`split_tap`) and puts (possibly fused) parts back (`merge_tap`); the staged fusion net
does the rest, so no fusion method special-cases an encoder. By default a tap has no parts.
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

    # -- tap parts (see the module docstring) --------------------------------------------------------
    def tap_parts(self, i: int) -> tuple[str, ...]:
        """Names of the parts tap i can be split into; () = the tap is fused whole only."""
        return ()

    def part_channels(self, i: int, part: str) -> int:
        """Channels of one part of tap i (default: the tap's)."""
        return self.stage_channels[i]

    def split_tap(self, i: int, tap: torch.Tensor) -> dict[str, torch.Tensor]:
        """Tap i cut into its named parts (views or cheap copies)."""
        raise KeyError(f"{type(self).__name__} tap {self.stage_names[i]!r} has no parts "
                       "(fix the fusion's `points`: name the tap without '/<part>')")

    def merge_tap(self, i: int, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The inverse of `split_tap`: every part of tap i back into one tensor."""
        raise KeyError(f"{type(self).__name__} tap {self.stage_names[i]!r} has no parts")

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
