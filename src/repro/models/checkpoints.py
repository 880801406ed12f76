"""User-provided pretrained weights for the encoders: one reader of state-dict files for every encoder (Hara's
ResNeXt, I3D, the inflated ResNet-50, HCN), with the one-line errors each of them gives.

A file may hold a plain state dict or a training checkpoint that wraps it (``{'state_dict': ..., 'epoch': ...}``);
``module.`` prefixes (weights saved from ``nn.DataParallel``) are removed. Each encoder renames the keys of its
source's layout and compares them with its own, strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from repro.config import ConfigError


def read_state_dict(path: str | Path, what: str, hint: str) -> dict[str, torch.Tensor]:
    """The tensors of the state dict in `path`; `what` names the weights in the errors, `hint` is the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} do not exist; {hint}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated download, a text file, a pickle of arbitrary objects, ...
        raise ConfigError(f"cannot read {path} as a torch state dict ({type(err).__name__}); {hint}") from None
    state = payload.get("state_dict", payload) if isinstance(payload, Mapping) else payload
    if not isinstance(state, Mapping):
        raise ConfigError(f"{path} holds a {type(state).__name__}, not a state dict; {hint}")
    return {str(k).removeprefix("module."): v for k, v in state.items()}
