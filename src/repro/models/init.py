"""Initialise encoders from earlier runs (the pretrained-unimodal protocol of MSAF §5.1 and MFAS §3.3).

MSAF (RAVDESS, NTU) and MFAS fuse unimodal networks that were first trained alone. Here a fusion run can
start its encoders from any earlier run's checkpoint: `backbone.init_from.<modality>=<path>`, where the path
is a Lightning checkpoint (`.ckpt`) or a run directory (its results record names the tested checkpoint).
The encoder's weights are the checkpoint's `net.encoders.<modality>.*` entries (classifier head included);
a missing or mismatching entry is an error, so a wrong checkpoint never loads silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from repro.config import ConfigError
from repro.results import FILENAME, read_record


def resolve_checkpoint(path: str | Path) -> Path:
    """A `.ckpt` file as given, or the checkpoint a run directory's results record says was tested."""
    path = Path(path)
    if path.is_dir():
        record_path = path / FILENAME
        if not record_path.is_file():
            raise ConfigError(f"{path} is a folder without {FILENAME}; give a run directory or a .ckpt file")
        ckpt = read_record(record_path).get("metrics", {}).get("checkpoint")
        if not ckpt:
            raise ConfigError(f"{record_path} names no checkpoint (run not completed?); give a .ckpt file instead")
        path = Path(ckpt)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist; expected a Lightning .ckpt (backbone.init_from)")
    return path


def encoder_state(checkpoint: Path, modality: str) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False).get("state_dict", {})
    prefix = f"net.encoders.{modality}."
    found = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not found:
        raise ConfigError(f"{checkpoint} has no encoder {modality!r} (no '{prefix}*' weights); "
                          "give a checkpoint of a run that trained that modality")
    return found


def init_encoders(encoders: Mapping[str, nn.Module], init_from: Mapping[str, str | None] | None) -> dict[str, str]:
    """Load each named encoder's weights in place; returns {modality: checkpoint used} for the record."""
    used = {}
    for modality, source in (init_from or {}).items():
        if not source:
            continue
        if modality not in encoders:
            raise ConfigError(f"backbone.init_from names modality {modality!r}; encoders are {sorted(encoders)}")
        checkpoint = resolve_checkpoint(source)
        try:
            encoders[modality].load_state_dict(encoder_state(checkpoint, modality), strict=True)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise ConfigError(f"{checkpoint}: encoder {modality!r} does not match this backbone ({first})") from None
        used[modality] = str(checkpoint)
    return used
