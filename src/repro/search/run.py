"""`python search.py data=<dataset> [search=mfas|random] [overrides]`: the whole MFAS pipeline, resumable.

1. Pre-trained encoders (mfas.txt §3.2 assumes them): `backbone.init_from.<modality>` when given, else each
   modality's unimodal network is trained here first with `train.py`'s machinery (`fusion=unimodal_<m>`,
   `search.pretrain.max_epochs`), under `<search dir>/pretrain/<modality>` (skipped once completed).
2. The feature cache of the frozen encoders' pooled taps (`repro.search.features`), built once per encoder
   weights and data config under `${paths.cache_dir}/mfas_features/`.
3. The search (`repro.search.algorithm`), recorded in `<search dir>/search.json` after every architecture.
4. `<search dir>/found.yaml`: the top architectures and the `train.py` commands that train them to completion
   (`fusion=mfas_found`).

Re-running the same command resumes an interrupted search (or prints the finished result). The search
directory is `search.dir` (default `outputs/search/<data>-<search.name>-seed<seed>`).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from repro.config import ConfigError, check_cli
from repro.data.base import DataError
from repro.models.fusion.mfas import fusion_layer_params
from repro.models.fusion.mfas_space import SearchSpace, SearchSpaceError
from repro.models.init import init_encoders
from repro.provenance import run_identity
from repro.results import FILENAME as RESULTS_FILE
from repro.results import atomic_write_text, hardware, read_record, versions
from repro.runs import encoder_weights
from repro.search.algorithm import Search, SearchSettings
from repro.search.features import (
    LiveFeatures,
    build_cache,
    cache_bytes,
    cache_layout,
    encoder_fingerprint,
    load_cache,
    select_taps,
)
from repro.search.state import SearchState, SearchStateError
from repro.search.trainer import TrainSettings, train_architecture


def say(message: str) -> None:
    """Progress lines on stdout (Lightning's runs in between reconfigure logging)."""
    print(f"[repro.search] {message}", flush=True)
SEARCH_SPLITS = ("train", "val")


def compose_search(overrides: list[str]) -> DictConfig:
    """Compose configs/search.yaml (train.yaml + the `search` group) outside a Hydra app; the search
    directory is the run's output directory."""
    from omegaconf import open_dict

    from repro.config import compose_train

    cfg = compose_train(overrides, config_name="search")
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.search.dir
    apply_reader_settings(cfg)
    return cfg


def apply_reader_settings(cfg: DictConfig) -> None:
    """`search.reader`: reader keys the search sets on the data config (NTU: the MFAS search split and no training
    crop — the cached features are computed once, so they take every split's evaluation view). A key the data's
    reader does not have is a one-line ConfigError (a silent no-op would search on other data than intended)."""
    wanted = cfg.search.get("reader") or {}
    unknown = [k for k in wanted if k not in cfg.data.reader]
    if unknown:
        raise ConfigError(f"search.reader sets {unknown}, which data={cfg.data.name}'s reader does not have "
                          f"(its keys: {sorted(cfg.data.reader)}); remove them from the search config")
    for key, value in wanted.items():
        cfg.data.reader[key] = value


# -- 1. pre-trained encoders ----------------------------------------------------------------------------------


def pretrain_overrides(overrides: list[str], modality: str, max_epochs: int) -> list[str]:
    """The user's data/backbone/trainer overrides, with the unimodal fusion of `modality`. The default callbacks
    are kept (`callbacks=` dropped) so that the encoder is the best-validation checkpoint; `DurationEstimate` prints
    the expected pre-training time before it starts (at the backbone's measured `train_samples_per_s` of that
    encoder, when the backbone config states one) and its projection after the first epoch."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(("search", "fusion", "callbacks="))]
    estimate = "+callbacks.duration_estimate"
    return kept + [f"fusion=unimodal_{modality}", f"trainer.max_epochs={max_epochs}",
                   f"{estimate}._target_=repro.callbacks.DurationEstimate",
                   f"{estimate}.samples_per_s=${{oc.select:backbone.train_samples_per_s.{modality},null}}",
                   f"{estimate}.label='pre-training the {modality} encoder'"]


def pretrained_checkpoints(cfg: DictConfig, overrides: list[str]) -> dict[str, str]:
    from repro.config import compose_train
    from repro.train import run as train_run

    modalities = list(cfg.backbone.search_space.modalities)
    given = dict(cfg.backbone.get("init_from") or {})
    out = {}
    for m in modalities:
        if given.get(m):
            out[m] = str(given[m])
            continue
        run_dir = Path(cfg.search.pretrain.dir) / m
        record = run_dir / RESULTS_FILE
        if not (record.is_file() and read_record(record).get("status") == "completed"):
            say(f"pre-training the {m} encoder (unimodal, search.pretrain.max_epochs={cfg.search.pretrain.max_epochs})"
                f" in {run_dir}; skip it with backbone.init_from.{m}=<a trained run>")
            sub = compose_train(pretrain_overrides(overrides, m, int(cfg.search.pretrain.max_epochs)),
                                output_dir=run_dir)
            train_run(sub)
        out[m] = str(run_dir)
    return out


# -- 2. encoders, data and features ------------------------------------------------------------------------------


def build_encoders(cfg: DictConfig, checkpoints: dict[str, str]) -> dict[str, torch.nn.Module]:
    modalities = list(cfg.backbone.search_space.modalities)
    missing = [m for m in modalities if m not in cfg.backbone.encoders]
    if missing:
        raise SearchSpaceError(f"backbone.search_space.modalities names {missing}, but the backbone has encoders "
                               f"{list(cfg.backbone.encoders)}")
    encoders = {m: instantiate(cfg.backbone.encoders[m]) for m in modalities}
    init_encoders(encoders, encoder_weights(checkpoints, encoders))
    for enc in encoders.values():
        enc.eval().requires_grad_(False)
    return encoders


def search_datasets(cfg: DictConfig, overrides: list[str], modalities: list[str]) -> tuple[dict, np.ndarray, bool]:
    """The search's splits as the encoders must see them: the reader's samples (its two modalities only) through the
    data config's **eval** pipelines on every split (`data.transforms.eval`, e.g. NTU's ImageNet normalisation, fitted
    on the train split as in training) — the features are computed once, so no split takes random training
    augmentation. Returns (datasets, train labels, whether the data is SYNTHETIC)."""
    from repro.data.datamodule import MultimodalDataModule
    from repro.data.transforms import TransformedDataset

    datamodule = MultimodalDataModule.from_config(cfg, fold=cfg.fold, overrides=overrides)
    datamodule.read_only(modalities)
    datamodule.setup()
    pipelines = datamodule.transforms["eval"]
    datasets = {s: TransformedDataset(datamodule.splits[s], pipelines, seed=int(cfg.seed)) if pipelines
                else datamodule.splits[s] for s in SEARCH_SPLITS}
    labels = np.asarray(datamodule.splits["train"].labels)
    return datasets, labels, bool(getattr(datamodule.reader, "synthetic", False))


def cache_device(cfg: DictConfig) -> torch.device:
    """`search.cache_device`: where the frozen encoders extract the features (auto: CUDA when there is one)."""
    wanted = str(cfg.search.get("cache_device") or "auto")
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(wanted)


def space_stages(space: SearchSpace) -> dict[str, list[str]]:
    """The encoder stages the space reads, per modality (the only ones the feature cache stores)."""
    return {m: sorted({space.stage_of(m, t) for t in taps})
            for m, taps in ((space.x_modality, space.x_taps), (space.y_modality, space.y_taps))}


def feature_source(cfg: DictConfig, encoders: dict, datasets: dict, space: SearchSpace):
    """The space's taps of every split: the feature cache (built or resumed when absent) or the live encoders."""
    modalities = [space.x_modality, space.y_modality]
    if not cfg.search.cached:
        source = LiveFeatures(datasets, encoders[modalities[0]], encoders[modalities[1]], modalities)
        return select_taps(source, *space.stage_indices(source.x_names, source.y_names)), None
    stages = space_stages(space)
    data_key = {"reader": OmegaConf.to_container(cfg.data.reader, resolve=True), "fold": cfg.fold,
                "transforms": OmegaConf.to_container(cfg.data.transforms, resolve=True)
                if cfg.data.get("transforms") else None,
                "splits": {s: len(d) for s, d in datasets.items()}, "modalities": modalities, "stages": stages}
    key = encoder_fingerprint(encoders, data_key)[:16]
    cache_dir = Path(cfg.search.cache_dir) / f"{cfg.data.name}-{key}"
    layout = cache_layout(datasets, encoders, modalities, stages)
    timing = {"dir": str(cache_dir), "built": False, "build_s": 0.0, "bytes": cache_bytes(layout)}
    if not (cache_dir / "manifest.json").is_file():
        say(f"feature cache: {sum(layout['splits'].values()):,} samples × "
            f"{sum(c for m in modalities for _, c in layout['stages'][m]):,} floats = "
            f"{timing['bytes'] / 1e9:.2f} GB at {cache_dir} (an interrupted build resumes)")
        start = time.perf_counter()
        device = cache_device(cfg)
        for m in modalities:
            encoders[m].to(device)
        try:
            build_cache(cache_dir, datasets, encoders, modalities, batch_size=int(cfg.search.cache_batch_size),
                        stages=stages, num_workers=int(cfg.data.get("num_workers") or 0), device=device)
        finally:
            for m in modalities:
                encoders[m].cpu()
        timing.update(built=True, build_s=round(time.perf_counter() - start, 3))
        say(f"feature cache built in {timing['build_s']:.1f} s: {cache_dir}")
    start = time.perf_counter()
    source = load_cache(cache_dir, modalities, list(datasets))
    timing["load_s"] = round(time.perf_counter() - start, 3)
    return select_taps(source, *space.stage_indices(source.x_names, source.y_names)), timing


def annotate_top(record: dict, x_dims: list[int], y_dims: list[int], search_inner: int,
                 found_inner: int | None) -> None:
    """Each top architecture's fusion-layer parameters (MFAS Table 5's count: W_1..W_L with biases, no output
    layer) at the search's inner size and at the found-architecture size `found_inner` (the authors' NTU 256)."""
    for t in record["top"]:
        t["layers"] = len(t["codes"])
        t["fusion_params_search"] = fusion_layer_params(t["codes"], x_dims, y_dims, search_inner)
        if found_inner:
            t["fusion_params"] = fusion_layer_params(t["codes"], x_dims, y_dims, int(found_inner))


def train_settings(cfg: DictConfig, labels: np.ndarray) -> TrainSettings:
    t = OmegaConf.to_container(cfg.search.train, resolve=True)
    settings = TrainSettings(task=str(cfg.data.task), **t)
    if settings.task == "multilabel":
        pos_weight = cfg.data.get("pos_weight")
        if pos_weight == "auto":
            positives = labels.sum(0).clip(min=1)
            settings.pos_weight = ((len(labels) - positives) / positives).tolist()
        elif pos_weight is not None:
            settings.pos_weight = list(pos_weight)
    return settings


# -- 3./4. search and its outputs ------------------------------------------------------------------------------


def header(cfg: DictConfig, space: SearchSpace, settings: SearchSettings, train: TrainSettings,
           checkpoints: dict) -> dict:
    return {
        "strategy": settings.strategy, "data": str(cfg.data.name), "seed": int(cfg.seed),
        "settings": {"search": {k: v for k, v in vars(settings).items()}, "train": vars(train),
                     "cached": bool(cfg.search.cached)},
        "space": {"x_modality": space.x_modality, "y_modality": space.y_modality, "x_taps": list(space.x_taps),
                  "y_taps": list(space.y_taps), "nonlinearities": list(space.nonlinearities),
                  "max_layers": space.max_layers, "description": space.describe(),
                  **({"aliases": [list(a) for a in space.aliases]} if space.aliases else {})},
        "encoders": checkpoints,
    }


# The search's overrides a found architecture's train.py command must repeat to read the same data with the same
# encoders: the data folder and reader options, the fold, the backbone. (`data=` is written from the config;
# `backbone.init_from` is not repeated: fusion.search_dir starts the encoders from the search's checkpoints.)
CARRIED_PREFIXES = ("data.", "paths.data_dir=", "paths.root_dir=", "fold=", "backbone=", "backbone.")


def carried_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides of `overrides` that say which data (and encoders) the search ran on."""
    kept = []
    for o in overrides:
        key = o.lstrip("+~")
        if key.startswith(CARRIED_PREFIXES) and not key.startswith("backbone.init_from"):
            kept.append(o)
    return kept


def train_commands(cfg: DictConfig, search_dir: Path, top: list[dict], overrides: Sequence[str] = ()) -> list[str]:
    """`train.py` commands that train each of `top` to completion on the data the search used."""
    carried = " ".join(shlex.quote(o) for o in carried_overrides(overrides))
    return [" ".join(filter(None, [f"python train.py data={cfg.data.name}", carried,
                                   # fusion.arch=null: a preset may name a default architecture (NTU: conf 1)
                                   f"fusion=mfas_found fusion.arch=null "
                                   f"fusion.search_dir={shlex.quote(str(search_dir))} "
                                   f"fusion.rank={t['rank']}"])) for t in top]


def write_found(cfg: DictConfig, search_dir: Path, record: dict, overrides: Sequence[str] = ()) -> Path:
    lines = [f"# {record['strategy']} search on {record['data']} (seed {record['seed']}): the best architectures by "
             "validation score.", "# Train one to completion with the command beside it (fusion=mfas_found).",
             f"search_dir: {search_dir}", "top:"]
    for t, command in zip(record["top"], train_commands(cfg, search_dir, record["top"], overrides)):
        # json.dumps: a valid YAML double-quoted scalar whatever the command holds (quotes in a path included)
        lines += [f"  - rank: {t['rank']}", f"    score: {t['score']:.4f}", f"    arch: \"{t['arch']}\"",
                  f"    command: {json.dumps(command)}"]
    path = search_dir / "found.yaml"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def run_search(cfg: DictConfig, overrides: list[str]) -> dict:
    search_dir = Path(cfg.search.dir)
    search_dir.mkdir(parents=True, exist_ok=True)
    settings = SearchSettings(**{k: (OmegaConf.to_container(v) if OmegaConf.is_config(v) else v)
                                 for k, v in cfg.search.items() if k in SearchSettings.__dataclass_fields__})
    start = time.perf_counter()
    checkpoints = pretrained_checkpoints(cfg, overrides)
    pretrain_s = time.perf_counter() - start
    torch.manual_seed(int(cfg.seed))
    encoders = build_encoders(cfg, checkpoints)
    sp = cfg.backbone.search_space
    space = SearchSpace.from_encoders(encoders, list(sp.modalities), taps=sp.get("taps"),
                                      nonlinearities=list(sp.nonlinearities), max_layers=settings.max_layers,
                                      aliases=sp.get("aliases"))
    datasets, labels, synthetic = search_datasets(cfg, overrides, list(sp.modalities))
    source, cache = feature_source(cfg, encoders, datasets, space)
    train = train_settings(cfg, labels)
    state = SearchState.open(search_dir, header(cfg, space, settings, train, checkpoints))
    state.record.update(hardware=hardware(), versions=versions(), config=OmegaConf.to_container(cfg, resolve=True),
                        synthetic=synthetic, debug=False, identity=run_identity(cfg, overrides))
    timing = state.record["timing"]
    timing["pretrain_s"] = round(timing.get("pretrain_s", 0.0) + pretrain_s, 3)
    if cache:
        timing["cache"] = cache
    num_classes = int(cfg.data.num_classes)

    def train_fn(codes, seed, bank):
        return train_architecture(codes, source, space.nonlinearities, num_classes, train, seed, bank)

    say(space.describe())
    search = Search(space, settings, state, train_fn, int(cfg.seed), progress=say)
    started = time.perf_counter()
    threads = torch.get_num_threads()
    if cfg.search.get("threads"):  # only for the search loop: pre-training and the cache use every thread
        torch.set_num_threads(int(cfg.search.threads))
    try:
        search.run()
        state.record["status"] = "completed"
    except (KeyboardInterrupt, SystemExit):
        state.record.update(status="interrupted", error="interrupted; re-run the same command to resume")
        raise
    except Exception as err:
        state.record.update(status="failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        torch.set_num_threads(threads)
        timing["search_s"] = round(timing.get("search_s", 0.0) + time.perf_counter() - started, 3)
        seconds = [e["seconds"] for e in state.record["evaluations"]]
        timing["per_architecture_s"] = round(float(np.mean(seconds)), 4) if seconds else None
        timing["architectures"] = len(seconds)
        annotate_top(state.record, source.x_dims, source.y_dims, train.inner_size,
                     cfg.search.get("fusion_params_inner_size"))
        state.record["summary"] = summary(state.record)
        state.save()
    found = write_found(cfg, search_dir, state.record, overrides)
    print_summary(state.record, found)
    return state.record


def summary(record: dict) -> dict:
    """The numbers MFAS Tables 1 and 6 report, from the record."""
    scores = [t["score"] for t in record["top"]]
    hours = record["timing"]["search_s"] / 3600
    steps = sum(1 for s in record["steps"] if s.get("done"))
    return {"best": max(scores) if scores else None,
            "top_mean": float(np.mean(scores)) if scores else None,
            # sample standard deviation (ddof=1) of the top-k validation scores, as MFAS Table 1's "std"
            "top_std": float(np.std(scores, ddof=1)) if len(scores) > 1 else None,
            "steps": steps, "search_hours": hours, "hours_per_step": hours / steps if steps else None,
            "architectures": len(record["evaluations"])}


def print_summary(record: dict, found: Path) -> None:
    t = record["timing"]
    print(f"[repro] {record['strategy']} search on {record['data']}: {t['architectures']} architectures, "
          f"search {t['search_s']:.1f}s ({t['per_architecture_s']}s each)")
    for top in record["top"]:
        print(f"  {top['rank']}. val={top['score']:.4f}  {top['arch']}")
    print(f"[repro] found architectures and their train.py commands: {found}")


USER_ERRORS = (ConfigError, DataError, SearchSpaceError, SearchStateError, FloatingPointError)
USAGE = """usage: python search.py [data=<dataset>] [search=mfas|random] [key=value ...]

Runs the MFAS architecture search (or the random-search baseline) on a dataset: pre-trains the unimodal
encoders unless backbone.init_from.<modality> is given, caches their pooled taps, searches, and writes
<search.dir>/search.json and found.yaml. Re-run the same command to resume. Keys: configs/search/mfas.yaml."""


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    try:
        check_cli(argv, pairs=False)
        cfg = compose_search(argv)
        run_search(cfg, argv)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume the search", file=sys.stderr)
        sys.exit(130)
