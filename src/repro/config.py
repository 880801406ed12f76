"""Config discovery and the early checks of a command line (before Hydra composes anything).

Hydra's own message for an unknown choice spans many lines and an unsupported data × fusion pair would
silently compose without the paper's settings; these checks turn both into one clear line.

Which data a fusion method runs on is declared once, in the method's config: `configs/fusion/<name>.yaml` has a
`supports:` list of data FAMILIES and/or data names, and every `configs/data/<name>.yaml` says which family it is
(`family: image_audio`, or `family: null` for a data set that only the methods naming it support). A pair is
supported when the fusion's `supports` names the data set or its family. The declaration sits with the method
because support is a property of the network (what inputs and encoders it accepts): a new data set of a known kind
adds one `family:` line to its own config and every method that accepts that kind runs on it; a new method adds one
`supports:` line. (The reverse — a list of methods in each data config — would make every new method edit every data
config.) Both keys are read from the YAML files without composing (`check_cli` runs before Hydra), following a data
config's same-group `defaults` the way Hydra merges them. `configs/preset/<data>_<fusion>.yaml` exists only where a
pair carries settings of its own (picked automatically by `optional preset` in configs/train.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml
from omegaconf import DictConfig

# The repository's configs/ folder (this file is src/repro/config.py).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
CHECKED_GROUPS = ("data", "fusion", "backbone", "optimizer", "scheduler", "trainer", "logger", "callbacks", "debug",
                  "experiment", "hparams_search", "search")
DEFAULTS = {"data": "avdigits", "fusion": "msaf"}
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SWEEP_FUNCTION = re.compile(r"^\s*(glob|range|choice|interval|tag|sort|shuffle)\(")


class ConfigError(ValueError):
    """A command line names something that does not exist; the message is one line."""


def available(group: str, config_dir: Path = CONFIG_DIR) -> list[str]:
    folder = config_dir / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _load(config_dir: Path, group: str, name: str) -> dict:
    """configs/<group>/<name>.yaml as plain YAML (no composing, no interpolation: only literal keys are read)."""
    path = config_dir / group / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {group} {name!r}; choose one of: {', '.join(available(group, config_dir))}")
    try:
        loaded = yaml.load(path.read_text(), Loader=_YAML_LOADER)  # the C loader: ~20x faster than OmegaConf.load
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"configs/{group}/{name}.yaml is not valid YAML{at} "
                          f"({getattr(err, 'problem', None) or type(err).__name__}): fix the file") from None
    return loaded if isinstance(loaded, dict) else {}


def data_family(data: str, config_dir: Path = CONFIG_DIR, _seen: tuple[str, ...] = ()) -> str | None:
    """`family:` of configs/data/<data>.yaml, or of the data config it extends (its same-group `defaults`)."""
    cfg = _load(config_dir, "data", data)
    if "family" in cfg:
        return None if cfg["family"] is None else str(cfg["family"])
    parents = [d for d in cfg.get("defaults") or [] if isinstance(d, str) and d != "_self_" and d not in _seen]
    for parent in reversed(parents):  # the last default wins, as when Hydra merges them
        if (config_dir / "data" / f"{parent}.yaml").is_file():
            return data_family(parent, config_dir, (*_seen, data))
    raise ConfigError(f"configs/data/{data}.yaml has no `family:` key; expected the kind of data it is "
                      f"(e.g. family: image_audio; null = only methods naming {data} support it): add it")


def data_reader_settings(data: str, config_dir: Path = CONFIG_DIR, _seen: tuple[str, ...] = ()) -> dict:
    """The literal `reader:` mapping of configs/data/<data>.yaml merged over those of the data configs it extends
    (same-group `defaults`, earlier first, its own keys last, as Hydra merges `_self_` last). Interpolations stay
    strings (e.g. `${paths.data_dir}/mosi`)."""
    cfg = _load(config_dir, "data", data)
    merged: dict = {}
    for parent in [d for d in cfg.get("defaults") or [] if isinstance(d, str) and d != "_self_" and d not in _seen]:
        if (config_dir / "data" / f"{parent}.yaml").is_file():
            merged.update(data_reader_settings(parent, config_dir, (*_seen, data)))
    merged.update(cfg.get("reader") or {})
    return merged


def fusion_supports(fusion: str, config_dir: Path = CONFIG_DIR) -> list[str]:
    """`supports:` of configs/fusion/<fusion>.yaml: the data families and data names the method runs on."""
    supports = _load(config_dir, "fusion", fusion).get("supports")
    if not isinstance(supports, list):
        raise ConfigError(f"configs/fusion/{fusion}.yaml has no `supports:` list; expected the data families or data "
                          f"names the method runs on (e.g. supports: [image_audio, mmimdb]): add it")
    return [str(s) for s in supports]


def supported_fusions(data: str, config_dir: Path = CONFIG_DIR) -> list[str]:
    """The fusion methods whose `supports` names `data` or its family, sorted."""
    names = {data, data_family(data, config_dir)} - {None}
    return [f for f in available("fusion", config_dir) if names & set(fusion_supports(f, config_dir))]


def unknown_supports(config_dir: Path = CONFIG_DIR) -> dict[str, list[str]]:
    """Per fusion, the `supports` entries that are neither a data name nor a declared family (typos)."""
    datas = available("data", config_dir)
    known = set(datas) | {data_family(d, config_dir) for d in datas} - {None}
    unknown = {f: [s for s in fusion_supports(f, config_dir) if s not in known]
               for f in available("fusion", config_dir)}
    return {f: bad for f, bad in unknown.items() if bad}


def check_pair(data: str, fusion: str, config_dir: Path = CONFIG_DIR) -> None:
    supported = supported_fusions(data, config_dir)
    if fusion not in supported:
        choices = ", ".join(supported) or "none yet"
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
