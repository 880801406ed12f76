"""Config discovery and the early checks of a command line (before Hydra composes anything).

Hydra's own message for an unknown choice spans many lines and an unsupported data × fusion pair would
silently compose without the paper's settings; these checks turn both into one clear line.
A data × fusion pair is supported exactly when `configs/preset/<data>_<fusion>.yaml` exists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

# The repository's configs/ folder (this file is src/repro/config.py).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
CHECKED_GROUPS = ("data", "fusion", "backbone", "optimizer", "scheduler", "trainer", "logger", "callbacks", "debug",
                  "experiment", "hparams_search", "search")
DEFAULTS = {"data": "avdigits", "fusion": "msaf"}
_SWEEP_FUNCTION = re.compile(r"^\s*(glob|range|choice|interval|tag|sort|shuffle)\(")


class ConfigError(ValueError):
    """A command line names something that does not exist; the message is one line."""


def available(group: str, config_dir: Path = CONFIG_DIR) -> list[str]:
    folder = config_dir / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def supported_fusions(data: str, config_dir: Path = CONFIG_DIR) -> list[str]:
    prefix = f"{data}_"
    # presets of a data set whose name extends this one's (avdigits_full_* for avdigits) are not this one's
    longer = tuple(f"{d}_" for d in available("data", config_dir) if d.startswith(prefix))
    return sorted(name[len(prefix):] for name in available("preset", config_dir)
                  if name.startswith(prefix) and not name.startswith(longer))


def check_pair(data: str, fusion: str, config_dir: Path = CONFIG_DIR) -> None:
    if not (config_dir / "preset" / f"{data}_{fusion}.yaml").is_file():
        choices = ", ".join(supported_fusions(data, config_dir)) or "none yet"
        raise ConfigError(f"fusion={fusion} is not supported with data={data}; supported fusions for {data}: {choices}")


def _values(value: str) -> list[str] | None:
    """The choices a command-line value names (comma lists for multirun), or None for sweep functions."""
    if _SWEEP_FUNCTION.match(value):
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def check_cli(argv: Sequence[str], config_dir: Path = CONFIG_DIR, pairs: bool = True) -> None:
    """Validate `group=choice` arguments and (with `pairs`) every data × fusion pair they name."""
    chosen: dict[str, list[str]] = {}
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.lstrip("+~").split("=", 1)
        if key not in CHECKED_GROUPS:
            continue
        values = _values(value)
        if values is None:
            continue
        options = available(key, config_dir)
        for v in values:
            if v not in options and v != "null":
                raise ConfigError(f"unknown {key} {v!r}; choose one of: {', '.join(options)}")
        chosen[key] = values
    if not pairs:
        return
    if any(g in chosen for g in ("experiment", "hparams_search")) and not ("data" in chosen and "fusion" in chosen):
        return  # an experiment may set data/fusion itself; Hydra composes and `run` checks the pair
    for data in chosen.get("data", [DEFAULTS["data"]]):
        for fusion in chosen.get("fusion", [DEFAULTS["fusion"]]):
            check_pair(data, fusion, config_dir)


def compose_train(
    overrides: Sequence[str],
    output_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    config_name: str = "train",
) -> DictConfig:
    """Compose configs/<config_name>.yaml as `python train.py <overrides>` would, outside a Hydra app.

    Used by tests, benchmarks and the table pre-flight. Hydra's runtime config is registered (so the run's
    choices and overrides are known) and removed from the returned config, as a Hydra app hands it over;
    paths that a Hydra app would set (the run directory) can be given here.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        for key, value in (("output_dir", output_dir), ("data_dir", data_dir), ("cache_dir", cache_dir)):
            if value is not None:
                cfg.paths[key] = str(value)
        del cfg.hydra
    return cfg
