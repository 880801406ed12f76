"""What earlier runs left behind, read for a new one: a run's tested checkpoint, an encoder's weights in it, and the
architectures a finished search found.

`backbone.init_from.<modality>=<run dir or .ckpt>` (the pretrained-unimodal protocol of MSAF §5.1 and MFAS §3.3)
and `fusion=mfas_found fusion.search_dir=<search dir> fusion.rank=<k>` name files; this module turns them into loaded
data (state dicts, an architecture string) for `repro.train` and `repro.search.run`, so that models only receive
what is already loaded and never import the records (tests/spine/test_layers.py). Bad input is one line naming the
key and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from repro.config import ConfigError
from repro.results import FILENAME, read_json_record, read_record

SEARCH_SCHEMA = "repro.search/1"
SEARCH_FILENAME = "search.json"


class SearchStateError(ConfigError):
    """A search directory that cannot be read or resumed as asked; the message is one line with the fix."""


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
    """The checkpoint's `net.encoders.<modality>.*` weights (classifier head included), prefix removed."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False).get("state_dict", {})
    prefix = f"net.encoders.{modality}."
    found = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not found:
        raise ConfigError(f"{checkpoint} has no encoder {modality!r} (no '{prefix}*' weights); "
                          "give a checkpoint of a run that trained that modality")
    return found


def encoder_weights(init_from: Mapping[str, str | None] | None,
                    modalities: Iterable[str]) -> dict[str, tuple[str, dict[str, torch.Tensor]]]:
    """{modality: (checkpoint path, its encoder weights)} for each modality `init_from` names (empty ones skipped);
    `modalities` are the encoders that exist, so a misspelt modality is named before any file is read."""
    modalities = sorted(modalities)
    sources = {m: s for m, s in (init_from or {}).items() if s}
    for modality in sources:
        if modality not in modalities:
            raise ConfigError(f"backbone.init_from names modality {modality!r}; encoders are {modalities}")
    out = {}
    for modality, source in sources.items():
        checkpoint = resolve_checkpoint(source)
        out[modality] = (str(checkpoint), encoder_state(checkpoint, modality))
    return out


def read_search_record(search_dir: str | Path) -> dict:
    """The record (`search.json`, schema repro.search/1; `repro.search.state`) of a search directory."""
    path = Path(search_dir) / SEARCH_FILENAME
    if not path.is_file():
        raise SearchStateError(f"{path} does not exist: expected a search directory written by search.py "
                               "(run `python search.py data=<dataset>` first)")
    return read_json_record(path, SEARCH_SCHEMA, "delete the search directory and re-run the search", SearchStateError)


def found_architecture(search_dir: str | Path, rank: int) -> tuple[str, dict[str, str]]:
    """(architecture string, encoder checkpoint per modality) of the rank-th best architecture of a finished search."""
    record = read_search_record(search_dir)
    top = record.get("top") or []
    if not 1 <= rank <= len(top):
        raise ValueError(f"{search_dir}: the search found {len(top)} architectures; fusion.rank must be 1..{len(top)}")
    return top[rank - 1]["arch"], dict(record.get("encoders") or {})
