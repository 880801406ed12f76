"""Rebuild a finished run for analysis: its resolved config, the network with the tested checkpoint's weights (in
eval mode) and its datamodule, from the run directory's results record alone (DESIGN.md, "Results record")."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from repro.config import ConfigError
from repro.results import FILENAME, read_record
from repro.runs import resolve_checkpoint


def load_run(run_dir: str | Path, overrides: dict | None = None):
    """(cfg, net, datamodule) of the run in `run_dir`; `overrides` ({dotted key: value}) change the config first
    (e.g. the data root when the data moved). The datamodule is set up; the net is in eval mode."""
    from repro.train import build_datamodule, build_net

    record_path = Path(run_dir) / FILENAME
    if not record_path.is_file():
        raise ConfigError(f"{run_dir} has no {FILENAME}; give the directory of a finished training run "
                          "(e.g. outputs/tables/<table>/runs/<row>/seed_0)")
    record = read_record(record_path)
    if record.get("status") != "completed":
        raise ConfigError(f"{record_path} records status {record.get('status')!r}; the run did not complete")
    cfg: DictConfig = OmegaConf.create(record["config"])
    for key, value in (overrides or {}).items():
        OmegaConf.update(cfg, key, value)
    net = build_net(cfg)
    state = torch.load(resolve_checkpoint(run_dir), map_location="cpu", weights_only=False)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    return cfg, net.eval(), datamodule
