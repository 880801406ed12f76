"""Evaluate a trained run's selected checkpoint, also under perturbation: `python eval.py run=<run dir or .ckpt>`.

The run is rebuilt from its OWN saved config — the run directory's `.hydra/config.yaml` (unresolved, so an override
of `paths.data_dir` still moves `data.reader.root`), or the resolved `config` of its `results.json` for runs composed
without a Hydra app — with `repro.train`'s builders, and the checkpoint its results record names
(`metrics.checkpoint`, the one `train.py` tested) is tested by Lightning on one split. The result, `eval.json`
(`EVAL_SCHEMA`), carries the same metric names as the record's `metrics.test`; without perturbation on the test split
the numbers equal them (tests/spine/test_eval.py).

Perturbations (`Perturbation`, each recorded in `eval.json`) are applied to the batches of the split's dataloader,
on the CPU before Lightning moves them to the device, by `PerturbedLoader`:

- a missing modality, `perturb.drop=[audio]`: its input is replaced by zeros (`perturb.fill=zeros`) or by the train
  split's mean sample (`perturb.fill=mean`: the element-wise mean over the train samples, i.e. per feature);
- additive Gaussian noise, `perturb.noise.audio=0.3`: x + level · std · N(0, 1), where std is that modality's
  standard deviation over every value of the train split. MultiBench's robustness evaluation adds zero-mean Gaussian
  noise whose standard deviation is the noise level itself (pliang279/MultiBench, `robustness/timeseries_robust.py`
  `white_noise`, `robustness/audio_robust.py` `additive_white_gaussian_noise`, `robustness/visual_robust.py`
  `gaussian`) on data it scales to about [0, 1], and sweeps levels 0 … 1 in steps of 0.1; our readers keep each
  dataset's own scale, so the level is relative to the modality's train std to make levels comparable across
  modalities and datasets. Noise is drawn from one generator per modality seeded by `perturb.seed` and the modality
  name, in batch order, so a sweep over levels scales the same draws (`repro.analysis.robustness`).

Statistics are computed from the train split as the reader gives it (before any `data.transforms`), in float64.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from repro.config import CONFIG_DIR, ConfigError, available
from repro.data.datamodule import MultimodalDataModule
from repro.results import FILENAME, atomic_write_text, read_record, versions
from repro.train import USER_ERRORS, build_datamodule, build_net, build_task, first_results, strip_prefix

EVAL_SCHEMA = "repro.eval/1"
EVAL_FILENAME = "eval.json"
SPLITS = ("test", "val", "train")
FILLS = ("zeros", "mean")
SAVED_CONFIG = Path(".hydra") / "config.yaml"
# eval.yaml's own keys; every other `key=value` on the eval.py command line overrides the run's saved config
EVAL_KEYS = ("run", "split", "out", "perturb")
PERTURB_KEYS = ("drop", "fill", "noise", "seed")


@dataclass(frozen=True)
class Perturbation:
    """What is done to the inputs: modalities dropped (filled with `fill`) and Gaussian noise levels per modality."""

    drop: tuple[str, ...] = ()
    fill: str = "zeros"
    noise: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def from_config(cls, node: Mapping | None) -> Perturbation:
        node = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
        drop = node.get("drop") or []
        if isinstance(drop, str):  # perturb.drop=audio: one modality without brackets
            drop = [drop]
        fill = str(node.get("fill", "zeros"))
        if fill not in FILLS:
            raise ConfigError(f"perturb.fill={fill!r}: choose one of {', '.join(FILLS)}")
        noise = {}
        for modality, level in (node.get("noise") or {}).items():
            if not isinstance(level, int | float) or level < 0:
                raise ConfigError(f"perturb.noise.{modality}={level!r}: expected a level >= 0 (a multiple of the "
                                  "modality's train std, e.g. 0.3)")
            noise[str(modality)] = float(level)
        both = sorted(set(drop) & set(noise))
        if both:
            raise ConfigError(f"modality {both[0]!r} is both dropped and noised; remove perturb.drop or "
                              f"perturb.noise.{both[0]}")
        return cls(tuple(str(m) for m in drop), fill, noise, int(node.get("seed", 0)))

    @property
    def clean(self) -> bool:
        # a noise level of 0 still goes through the noise path (x + 0 · std · z == x): the sweep's level 0 is checked
        return not self.drop and not self.noise

    def as_dict(self) -> dict:
        return {"drop": list(self.drop), "fill": self.fill, "noise": dict(self.noise), "seed": self.seed}

    def check_modalities(self, modalities: Sequence[str]) -> None:
        for key, names in (("perturb.drop", self.drop), ("perturb.noise", list(self.noise))):
            for m in names:
                if m not in modalities:
                    raise ConfigError(f"{key} names modality {m!r}; this run's data has: {', '.join(modalities)}")


@dataclass(frozen=True)
class ModalityStats:
    """Train-split statistics of one modality: the element-wise mean sample and the std over all values."""

    mean: torch.Tensor
    std: float


def train_statistics(dataset, modalities: Sequence[str], batch_size: int) -> dict[str, ModalityStats]:
    """One float64 pass over the train split (in order, no transforms): mean sample and overall std per modality."""
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, float] = dict.fromkeys(modalities, 0.0)
    n = 0
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        for m in modalities:
            x = batch[m].double()
            sums[m] = sums.get(m, 0) + x.sum(0)
            squares[m] += float((x * x).sum())
        n += len(batch["label"])
    if n == 0:
        raise ConfigError("the train split is empty: perturb.fill=mean and perturb.noise need its statistics")
    stats = {}
    for m in modalities:
        mean = sums[m] / n
        grand = float(mean.mean())  # the mean of every value (each sample has the same number of values)
        variance = max(squares[m] / (n * mean.numel()) - grand * grand, 0.0)
        stats[m] = ModalityStats(mean=mean.float(), std=variance ** 0.5)
    return stats


class PerturbedLoader:
    """The batches of `loader` with the perturbation applied (new tensors; the loader's own batches untouched).

    An iterable with a length, which Lightning's test loop accepts as a dataloader.
    """

    def __init__(self, loader: Iterable, perturbation: Perturbation, stats: Mapping[str, ModalityStats]):
        self.loader, self.perturbation, self.stats = loader, perturbation, stats

    def __len__(self) -> int:
        return len(self.loader)

    def _generators(self) -> dict[str, torch.Generator]:
        # per modality, so that noising one modality does not change the draws of another
        seed = self.perturbation.seed
        return {m: torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(m.encode()))
                for m in self.perturbation.noise}

    def __iter__(self) -> Iterator:
        generators = self._generators()
        for batch in self.loader:
            yield self.apply(batch, generators)

    def apply(self, batch: Mapping, generators: Mapping[str, torch.Generator]) -> dict:
        batch = dict(batch)
        p = self.perturbation
        for m in p.drop:
            x = batch[m]
            batch[m] = torch.zeros_like(x) if p.fill == "zeros" else self.stats[m].mean.to(x.dtype).expand_as(x).clone()
        for m, level in p.noise.items():
            x = batch[m]
            if not x.is_floating_point():
                raise ConfigError(f"perturb.noise.{m}: modality {m!r} holds {x.dtype} values (e.g. token ids); "
                                  "noise applies to real-valued inputs only")
            z = torch.randn(x.shape, generator=generators[m], dtype=x.dtype)
            batch[m] = x + (level * self.stats[m].std) * z
        return batch


# --- the run ------------------------------------------------------------------------------------------------------

def find_run_dir(path: str | Path) -> Path:
    """The run directory of a run directory or of a `.ckpt` inside one (walking up to the folder with results.json)."""
    path = Path(path)
    if path.is_dir():
        if not (path / FILENAME).is_file():
            raise ConfigError(f"run={path}: no {FILENAME} there; give a training run directory "
                              "(outputs/runs/<data>-<fusion>/<time>) or a .ckpt inside one")
        return path
    if path.is_file() and path.suffix == ".ckpt":
        for parent in path.resolve().parents:
            if (parent / FILENAME).is_file():
                return parent
        raise ConfigError(f"run={path}: no folder above it holds a {FILENAME}; give the checkpoint of a training run")
    raise ConfigError(f"run={path}: not a run directory or a .ckpt file; give a training run directory "
                      "(outputs/runs/<data>-<fusion>/<time>) or a .ckpt inside one")


def selected_checkpoint(run_dir: Path, record: dict) -> Path:
    """The checkpoint the record says was tested; a run directory that moved is looked up under its checkpoints/."""
    named = (record.get("metrics") or {}).get("checkpoint")
    if not named:
        raise ConfigError(f"{run_dir / FILENAME} names no tested checkpoint (status {record.get('status')!r}); "
                          "evaluate a completed run, or give run=<a .ckpt file>")
    for candidate in (Path(named), run_dir / "checkpoints" / Path(named).name):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{run_dir / FILENAME} names checkpoint {named}, which does not exist (nor under "
                      f"{run_dir / 'checkpoints'}); give run=<a .ckpt file>")


def saved_config(run_dir: Path, record: dict) -> DictConfig:
    path = run_dir / SAVED_CONFIG
    if path.is_file():
        cfg = OmegaConf.load(path)
    elif record.get("config"):
        cfg = OmegaConf.create(record["config"])
    else:
        raise ConfigError(f"{run_dir}: neither {SAVED_CONFIG} nor a config in {FILENAME}; cannot rebuild the run")
    # `${hydra:runtime.output_dir}` in the saved config would name eval's own Hydra run, not the trained run
    OmegaConf.update(cfg, "paths.output_dir", str(run_dir), force_add=True)
    return cfg


def apply_overrides(cfg: DictConfig, overrides: Mapping | Sequence[str]) -> DictConfig:
    """`key=value` strings or a nested mapping onto the run's config; keys must exist there (one-line error)."""
    for key, value in flat_overrides(overrides).items():
        current = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        if current is _ABSENT:
            raise ConfigError(f"override {key}={value}: the run's config has no key {key!r}; override keys it has "
                              "(e.g. data.reader.root=<dir>, paths.data_dir=<dir>)")
        if isinstance(current, DictConfig) and not isinstance(value, Mapping):
            raise ConfigError(f"override {key}={value}: a run's config groups cannot change in eval.py; override "
                              f"keys inside them (e.g. {key}.<key>=<value>) or train another run")
        OmegaConf.update(cfg, key, value, merge=True)
    return cfg


_ABSENT = object()


def flat_overrides(overrides: Mapping | Sequence[str]) -> dict[str, object]:
    """{dotted key: value} from `key=value` strings (Hydra/OmegaConf value syntax) or a nested mapping."""
    if not isinstance(overrides, Mapping):
        overrides = OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))
    flat: dict[str, object] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping) and value:
            flat.update({f"{key}.{k}": v for k, v in flat_overrides(value).items()})
        else:
            flat[str(key)] = value
    return flat


@dataclass
class LoadedRun:
    """A trained run rebuilt for evaluation: its config, record, checkpoint, datamodule, task and a test trainer."""

    run_dir: Path
    checkpoint: Path
    record: dict
    cfg: DictConfig
    datamodule: MultimodalDataModule
    task: L.LightningModule
    trainer: L.Trainer
    _stats: dict[str, ModalityStats] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.datamodule.splits["test"].arrays)

    def stats(self, modalities: Iterable[str]) -> dict[str, ModalityStats]:
        missing = [m for m in modalities if m not in self._stats]
        if missing:  # one pass over the train split per call, cached for a sweep
            self._stats.update(train_statistics(self.datamodule.splits["train"], missing,
                                                self.datamodule.eval_batch_size))
        return self._stats


def load_run(run: str | Path, overrides: Mapping | Sequence[str] = ()) -> LoadedRun:
    """Rebuild the run at `run` (a run directory or a .ckpt in one) with its own config and `overrides`."""
    run_dir = find_run_dir(run)
    record = read_record(run_dir / FILENAME)
    checkpoint = Path(run) if Path(run).is_file() else selected_checkpoint(run_dir, record)
    cfg = apply_overrides(saved_config(run_dir, record), overrides)
    # the encoders' pre-training source is irrelevant: the checkpoint holds every weight (and may have moved)
    OmegaConf.update(cfg, "backbone.init_from", None, force_add=True)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    task = build_task(cfg, build_net(cfg), datamodule)
    return LoadedRun(run_dir, checkpoint, record, cfg, datamodule, task, build_test_trainer(cfg))


@contextmanager
def quiet_lightning():
    """Lightning's per-call info lines (devices, batch limits, "Restoring states ...") and its advice to pass the
    training callbacks with `ckpt_path` (only the weights matter for testing) repeat on every call of a sweep."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint.*")
            yield
    finally:
        logger.setLevel(level)


def build_test_trainer(cfg: DictConfig) -> L.Trainer:
    """The run's trainer settings (device, precision, batch limits) without its callbacks and loggers."""
    with quiet_lightning():
        return instantiate(cfg.trainer, callbacks=[], logger=False, enable_progress_bar=False,
                           enable_checkpointing=False, enable_model_summary=False)


def split_loader(datamodule: MultimodalDataModule, split: str):
    if split == "test":
        return datamodule.test_dataloader()
    if split == "val":  # the split the run validated on (protocol.select_on), as in results.json's `val`
        return datamodule.val_dataloader()
    if split == "train":  # in order and without train-time shuffling
        return DataLoader(datamodule.splits["train"], batch_size=datamodule.eval_batch_size, shuffle=False,
                          num_workers=datamodule.num_workers)
    raise ConfigError(f"split={split!r}: choose one of {', '.join(SPLITS)}")


def checkpoint_metrics(loaded: LoadedRun, split: str = "test", perturbation: Perturbation | None = None) -> dict:
    """The task's test metrics (names as in results.json's `metrics.test`) of the checkpoint on `split`."""
    perturbation = perturbation or Perturbation()
    perturbation.check_modalities(loaded.modalities)
    loader = split_loader(loaded.datamodule, split)
    if not perturbation.clean:
        needed = [*perturbation.noise, *(perturbation.drop if perturbation.fill == "mean" else ())]
        loader = PerturbedLoader(loader, perturbation, loaded.stats(needed) if needed else {})
    L.seed_everything(int(loaded.cfg.seed), workers=True, verbose=False)
    with quiet_lightning():
        results = loaded.trainer.test(loaded.task, dataloaders=loader, ckpt_path=str(loaded.checkpoint),
                                      verbose=False)
    return strip_prefix(first_results(results), "test")


def evaluate(run: str | Path, split: str = "test", perturbation: Perturbation | None = None,
             overrides: Mapping | Sequence[str] = (), out: str | Path | None = None) -> dict:
    """Evaluate and write the eval record (`<run dir>/eval.json`, or `out`) atomically; returns the record."""
    start = time.time()
    perturbation = perturbation or Perturbation()
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
    loaded = load_run(run, overrides)
    metrics = checkpoint_metrics(loaded, split, perturbation)
    record = {
        "schema": EVAL_SCHEMA,
        "run_dir": str(loaded.run_dir),
        "run_id": loaded.record.get("run_id"),
        "checkpoint": str(loaded.checkpoint),
        "split": split,
        "perturb": perturbation.as_dict(),
        "overrides": _override_strings(overrides),
        "data": loaded.record.get("data"),
        "fusion": loaded.record.get("fusion"),
        "synthetic": bool(loaded.datamodule.reader.synthetic),
        # the split's size (trainer.limit_test_batches in the run's config may test fewer)
        "split_size": len(loaded.datamodule.splits[loaded.datamodule.val_split if split == "val" else split]),
        "metrics": metrics,
        # the record's own numbers beside ours: unperturbed test evaluations equal them
        "record_metrics": (loaded.record.get("metrics") or {}).get(split, {}),
        "versions": versions(),
        "wall_time_s": round(time.time() - start, 3),
    }
    path = eval_path(loaded.run_dir, out)
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    record["path"] = str(path)
    return record


def eval_path(run_dir: Path, out: str | Path | None) -> Path:
    if not out:
        return run_dir / EVAL_FILENAME
    out = Path(out)
    return out if out.suffix == ".json" else out / EVAL_FILENAME


def _override_strings(overrides: Mapping | Sequence[str]) -> list[str]:
    return [f"{k}={v}" for k, v in flat_overrides(overrides).items()]


def print_summary(record: dict) -> None:
    p = record["perturb"]
    what = [f"drop={','.join(p['drop'])}(fill={p['fill']})"] if p["drop"] else []
    what += [f"noise.{m}={v}" for m, v in p["noise"].items()]
    mark = "SYNTHETIC " if record["synthetic"] else ""
    metrics = " ".join(f"{k}={v:.4f}" for k, v in record["metrics"].items())
    print(f"[repro eval] {mark}{record['data']} × {record['fusion']} split={record['split']} "
          f"{' '.join(what) or 'clean'} {metrics} -> {record['path']}")


# --- the command line ---------------------------------------------------------------------------------------------

def plus_unknown_keys(argv: Sequence[str]) -> list[str]:
    """eval.yaml has no keys for the run's config or for per-modality noise levels: `data.reader.root=x` and
    `perturb.noise.audio=0.3` become Hydra additions (`+...`), so a user never has to type the `+`. A config group
    choice (`data=mmimdb`) is refused: Hydra would compose that group into eval's own config, not the run's."""
    out = []
    for arg in argv:
        key = arg.split("=", 1)[0]
        fixed = arg.startswith(("+", "~", "-")) or "=" not in arg or key.startswith("hydra")
        if not fixed and "." not in key and key not in EVAL_KEYS and available(key):
            raise ConfigError(f"{arg}: eval.py evaluates the run with its own config groups; override keys inside "
                              f"them instead (e.g. {key}.<key>=<value>), or train a run with {arg}")
        parts = key.split(".")
        if not fixed and parts[0] == "perturb" and len(parts) > 1 and parts[1] not in PERTURB_KEYS:
            raise ConfigError(f"{arg}: unknown perturbation {parts[1]!r}; perturb.* keys are: "
                              f"{', '.join(PERTURB_KEYS)}")
        known = parts[0] in EVAL_KEYS and not key.startswith("perturb.noise.")
        out.append(arg if fixed or known else f"+{arg}")
    return out


def run_overrides(cfg: DictConfig) -> dict:
    return {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in cfg.items() if k not in EVAL_KEYS}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def hydra_main(cfg: DictConfig) -> None:
    try:
        if OmegaConf.is_missing(cfg, "run"):
            raise ConfigError("run=<run dir or .ckpt> is required, e.g. "
                              "python eval.py run=outputs/runs/<data>-<fusion>/<time>")
        record = evaluate(cfg.run, split=str(cfg.split), perturbation=Perturbation.from_config(cfg.perturb),
                          overrides=run_overrides(cfg), out=cfg.out)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print_summary(record)


def main() -> None:
    try:
        sys.argv = [sys.argv[0], *plus_unknown_keys(sys.argv[1:])]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)  # a malformed command line, as train.py's check_cli
    hydra_main()
