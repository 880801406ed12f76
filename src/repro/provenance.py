"""What produced a record: the run's identity, whether it was a debug run, and the code's git state.

A table may only average records that were made by the row and repeat it shows now, on real data, with the full
budget (DESIGN.md, "Results record"). Three things in every `results.json` / `search.json` make that checkable:

- `identity`: `overrides` — the command line's overrides in canonical form (parsed with Hydra's own override
  parser, so `+a=1` and `a=1` and a re-quoted value compare equal; later settings of a key win; sorted by key),
  without the ones that only say where files go (`paths.*`, `hydra.*`, `tags.*`, the search's output folders);
  `key` — a hash of that list (what `repro.tables` compares with the row's current overrides and repeat);
  `config_hash` — a hash of the resolved config with every path written relative to its `paths.*` root, so
  two runs that differ in any setting (a changed preset included) differ here, and moving the data folder does not.
- `debug`: true for Lightning's `fast_dev_run` or `overfit_batches`, any `trainer.limit_*_batches` below the
  whole split, or a `debug=` config: such a run is "completed" on a batch or two and must never count as a result.
- `versions.git_commit` and `versions.git_dirty` (`repro.results.versions`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from omegaconf import DictConfig, OmegaConf

# Override keys that only say where inputs and outputs live, or label a run: not part of what a run computes.
LOCATION_PREFIXES = ("paths.", "hydra.", "hydra/", "tags.")
LOCATION_KEYS = {"paths", "hydra", "tags", "search.dir", "search.pretrain.dir"}
LIMIT_KEYS = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches")


def _is_location(key: str) -> bool:
    return key in LOCATION_KEYS or key.startswith(LOCATION_PREFIXES)


def _digest(value) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def canonical_overrides(overrides: Iterable[str]) -> list[str]:
    """`key=value` strings in one canonical form: parsed by Hydra (so quoting, spacing and `+`/`++` do not
    matter), location keys dropped, the last setting of a key kept, sorted by key; deletions as `~key`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    settings: dict[str, str] = {}
    for override in parsed:
        key = override.get_key_element().lstrip("+~")
        if _is_location(key):
            continue
        if override.is_delete():
            settings[key] = f"~{key}"
        elif override.is_sweep_override():
            raise ValueError(f"override {override.input_line!r} is a sweep; a run's identity needs one value")
        else:
            settings[key] = f"{key}={json.dumps(override.value(), sort_keys=True, default=str)}"
    return [settings[k] for k in sorted(settings)]


def _relative_to_paths(value, roots: list[tuple[str, str]]):
    """Strings that start with a resolved `paths.*` folder rewritten as `<paths.name>/rest` (recursively)."""
    if isinstance(value, dict):
        return {k: _relative_to_paths(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_to_paths(v, roots) for v in value]
    if isinstance(value, str):
        for name, root in roots:
            if root and value.startswith(root):
                return f"<paths.{name}>{value[len(root):]}"
    return value


def config_hash(cfg: DictConfig | Mapping) -> str:
    """Hash of the resolved config without `paths`, `hydra` and `tags`, every path relative to its root."""
    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    paths = container.get("paths") or {}
    # longest first: output_dir is inside log_dir, which is inside root_dir
    roots = sorted(((k, str(v)) for k, v in paths.items() if isinstance(v, str) and v), key=lambda kv: -len(kv[1]))
    kept = {k: v for k, v in container.items() if not _is_location(k)}
    return _digest(_relative_to_paths(kept, roots))


def overrides_identity(canonical: list[str]) -> dict:
    """The override part of an identity, from an already canonical list."""
    return {"overrides": list(canonical), "key": _digest(list(canonical))}


def run_identity(cfg: DictConfig | Mapping, overrides: Iterable[str]) -> dict:
    return overrides_identity(canonical_overrides(overrides)) | {"config_hash": config_hash(cfg)}


def is_debug(cfg: DictConfig, debug_choice: str | None = None) -> bool:
    """A debug run: fast_dev_run, a `limit_*_batches` below the whole split (1.0), or a `debug=` config."""
    if debug_choice not in (None, "null", "None"):
        return True
    trainer = cfg.get("trainer") or {}
    if trainer.get("fast_dev_run") or trainer.get("overfit_batches"):
        return True
    for key in LIMIT_KEYS:
        limit = trainer.get(key)
        if limit is not None and not (isinstance(limit, float) and limit == 1.0):
            return True  # an int is a number of batches; a float below 1.0 a fraction
    return False


def identity_mismatch(record: dict, expected: list[str]) -> str | None:
    """Why a record cannot stand for a run with the `expected` canonical overrides; None when it can."""
    if record.get("debug"):
        return "a debug record (fast_dev_run, limited batches or debug=…)"
    identity = record.get("identity")
    if not identity:
        return "made before records carried their identity"
    if identity.get("key") == _digest(expected):
        return None
    made, now = set(identity.get("overrides", [])), set(expected)
    return (f"made with [{' '.join(sorted(made - now))}] where the row now has [{' '.join(sorted(now - made))}]")
