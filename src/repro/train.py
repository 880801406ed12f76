"""The training entry point: compose → seed → data, network, task, trainer → fit → test best → record.

`python train.py data=<dataset> fusion=<method> [overrides]` (the repository's `train.py` calls `main`).
Every run writes `results.json` into its run directory (`repro.results`), including failed and
interrupted runs, so a table never loses a finished run and always knows why one is missing.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path

import hydra
import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from repro.config import CONFIG_DIR, ConfigError, check_cli, check_pair
from repro.data.base import DataError
from repro.data.datamodule import MultimodalDataModule
from repro.models.complexity import batch_to, forward_flops, parameter_summary, peak_memory
from repro.models.init import init_encoders
from repro.models.net import FusionNet
from repro.optimization import Optimization, optimization_from_config
from repro.provenance import is_debug, run_identity
from repro.results import hardware, versions, write_record
from repro.resume import completed_message, load_plan, plan_resume, resumed_record
from repro.runs import encoder_weights, found_architecture
from repro.task import FusionTask, auto_pos_weight

log = logging.getLogger("repro.train")


class _DropUpstreamNoise(logging.Filter):
    """Lightning advertises a cloud logger on every run; that line says nothing about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "💡 Tip" not in str(record.msg)


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropUpstreamNoise())
# lightning 2.6 with torch 2.13: a deprecation inside lightning's own pytree helper, printed on every run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def build_net(cfg: DictConfig) -> FusionNet:
    try:
        encoders = {m: instantiate(c) for m, c in cfg.backbone.encoders.items()}
    except InstantiationException as err:  # Hydra wraps constructor errors: show a user error as its one line
        if isinstance(err.__cause__, USER_ERRORS):
            raise err.__cause__ from None
        raise
    init_from, found = encoder_sources(cfg)
    init_encoders(encoders, encoder_weights(init_from, encoders))
    net_cfg = cfg.fusion.net
    if "search_dir" in net_cfg:  # a run saved when MFASNet read the search itself: train.py reads it now
        net_cfg = OmegaConf.create({k: v for k, v in net_cfg.items() if k not in ("search_dir", "rank")})
    factory = instantiate(net_cfg, _convert_="all")
    return factory(encoders=encoders, num_classes=int(cfg.data.num_classes), **found)


def encoder_sources(cfg: DictConfig) -> tuple[dict[str, str], dict[str, str]]:
    """(checkpoint per encoder, extra network arguments): `backbone.init_from`, and for `fusion.search_dir` (MFAS,
    `fusion=mfas_found`) the rank-th found architecture with the search's encoder checkpoints where init_from names
    none. Files are read here (`repro.runs`), so the network receives loaded data only."""
    init_from = {m: str(c) for m, c in (cfg.backbone.get("init_from") or {}).items() if c}
    search_dir = cfg.fusion.get("search_dir")
    if not search_dir:
        return init_from, {}
    if cfg.fusion.get("arch"):
        raise ConfigError("fusion=mfas_found takes one of fusion.arch (a string) or fusion.search_dir, not both")
    arch, checkpoints = found_architecture(search_dir, int(cfg.fusion.get("rank", 1)))
    used = {m: c for m, c in checkpoints.items() if m in cfg.backbone.encoders}
    return {**used, **init_from}, {"arch": arch}


def network_name(net: FusionNet) -> str:
    """`module.Class` of a built network: which placement the fusion config and the pair's preset chose."""
    return f"{type(net).__module__}.{type(net).__qualname__}"


def build_datamodule(cfg: DictConfig) -> MultimodalDataModule:
    return MultimodalDataModule.from_config(cfg, fold=cfg.fold, overrides=hydra_overrides())


def hydra_overrides() -> list[str]:
    """The command line's overrides of a Hydra app run; [] when composed without one (the compose API)."""
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def resolve_pos_weight(cfg: DictConfig, datamodule: MultimodalDataModule | None) -> list[float] | None:
    """`data.pos_weight`: null (no weighting), a list (one per label), or `auto` = negatives / positives per
    label over the train split's labels (`auto_pos_weight`)."""
    value = cfg.data.get("pos_weight")
    if value is None:
        return None
    if isinstance(value, str):
        if value != "auto":
            raise ConfigError(f"data.pos_weight={value!r}: use auto, null or a list of {cfg.data.num_classes} numbers")
        if datamodule is None:
            raise ConfigError("data.pos_weight=auto needs the datamodule (its train labels) to compute the weights")
        datamodule.setup()
        return auto_pos_weight(datamodule.splits["train"].labels)
    weights = [float(v) for v in value]
    if len(weights) != int(cfg.data.num_classes):
        raise ConfigError(f"data.pos_weight lists {len(weights)} numbers, expected one per label "
                          f"({cfg.data.num_classes})")
    return weights


def resolve_trait_ranges(cfg: DictConfig, datamodule: MultimodalDataModule | None) -> list[list[float]]:
    """`data.trait_ranges`: a list of [lo, hi] per trait, or `auto` = [round(min), round(max)] of each trait's labels
    in the TRAIN split only — the test labels must not shape the metric (RMFN's class count per trait, A7 / A5 /
    A6, is hi - lo + 1; `repro.data.pom.trait_classes`)."""
    value = cfg.data.trait_ranges
    if not isinstance(value, str):
        return [[float(lo), float(hi)] for lo, hi in value]
    if value != "auto":
        raise ConfigError(f"data.trait_ranges={value!r}: use auto or a list of [lo, hi] per trait")
    if datamodule is None:
        raise ConfigError("data.trait_ranges=auto needs the datamodule (its labels) to derive the ranges")
    datamodule.setup()
    train = datamodule.splits["train"].labels
    labels = torch.as_tensor(np.asarray(train, dtype=np.float64)).reshape(len(train), -1)
    return torch.stack([labels.min(0).values.round(), labels.max(0).values.round()], dim=1).tolist()


def build_optimization(cfg: DictConfig) -> Optimization:
    """The `optimizer` / `scheduler` groups (`repro.optimization`); alternating optimisers are stepped by the task,
    so Lightning's own gradient clipping and accumulation cannot apply to them."""
    optimization = optimization_from_config(cfg.optimizer, cfg.get("scheduler"))
    if optimization.alternating:
        for key, off in (("gradient_clip_val", None), ("accumulate_grad_batches", 1)):
            if cfg.trainer.get(key) not in (None, off, 0):
                raise ConfigError(f"optimizer.alternating steps its optimisers itself, so Lightning's trainer.{key} "
                                  f"cannot apply; set trainer.{key}={'null' if off is None else off}")
    return optimization


def build_task(cfg: DictConfig, net: FusionNet, datamodule: MultimodalDataModule | None = None) -> FusionTask:
    threshold = cfg.data.get("threshold")
    # options only some task kinds read (e.g. regression's data.loss: l1 | mse); passed only when configured
    extra = {"loss": str(cfg.data.loss)} if cfg.data.get("loss") else {}
    for key in ("emotions", "traits"):  # per-label task kinds (IEMOCAP emotions, POM traits)
        if cfg.data.get(key) is not None:
            extra[key] = OmegaConf.to_container(cfg.data[key])
    if cfg.data.get("trait_ranges") is not None:
        extra["trait_ranges"] = resolve_trait_ranges(cfg, datamodule)
    if cfg.data.get("thresholds") is not None:  # emotion_bce: tuned (on validation) | fixed_0.5
        extra["thresholds"] = str(cfg.data.thresholds)
    if cfg.protocol.get("monitor") == "branch_ce":  # selection on the mean branch loss (NTU MSAF/MMTM protocol)
        extra["branch_ce"] = True
    return FusionTask(
        net,
        task=cfg.data.task,
        num_classes=int(cfg.data.num_classes),
        metrics=list(cfg.data.metrics),
        optimization=build_optimization(cfg),
        threshold=None if threshold is None else float(threshold),
        pos_weight=resolve_pos_weight(cfg, datamodule),
        **extra,
    )


def callback_configs(node) -> list:
    """Callback configs from a dict (name -> config) or a list; null entries are switched off."""
    if not node:
        return []
    return [c for c in (node.values() if isinstance(node, Mapping) else node) if c]


def build_trainer(cfg: DictConfig) -> L.Trainer:
    callbacks = [instantiate(c) for c in callback_configs(cfg.get("callbacks"))]
    # A fusion method's own callbacks (e.g. a fine-tuning schedule), `fusion.callbacks` in its config.
    callbacks += [instantiate(c) for c in callback_configs(cfg.fusion.get("callbacks"))]
    patience = cfg.protocol.early_stopping_patience
    if patience:
        callbacks.append(L.pytorch.callbacks.EarlyStopping(
            monitor=f"val/{cfg.protocol.monitor}", mode=cfg.protocol.mode, patience=int(patience)))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def hydra_choices() -> dict[str, str]:
    try:
        return dict(HydraConfig.get().runtime.choices)
    except ValueError:  # composed without a Hydra app (e.g. the compose API in tests)
        return {}


def base_record(cfg: DictConfig) -> dict:
    choices = hydra_choices()
    overrides = hydra_overrides()
    return {
        "run_id": uuid.uuid4().hex[:12],
        "status": "running",
        # what produced the record (repro.provenance): tables count it only for the same row, repeat and budget
        "identity": run_identity(cfg, overrides),
        "debug": is_debug(cfg, choices.get("debug")),
        "synthetic": None,  # set once the reader has read the data
        "data": choices.get("data", cfg.data.name),
        "backbone": choices.get("backbone", cfg.backbone.get("name")),
        "fusion": choices.get("fusion", cfg.fusion.name),
        "fold": cfg.fold,
        "seed": cfg.seed,
        "protocol": OmegaConf.to_container(cfg.protocol, resolve=True),
        "overrides": overrides,
        "tags": OmegaConf.to_container(cfg.tags, resolve=True),
        "metrics": {},
        "config": OmegaConf.to_container(cfg, resolve=True),
        "versions": versions(),
        "hardware": hardware(),
    }


def checkpoint_to_test(trainer: L.Trainer, cfg: DictConfig) -> str | None:
    ckpt_cb = trainer.checkpoint_callback
    if ckpt_cb is None or getattr(trainer, "fast_dev_run", False):
        return None
    if cfg.protocol.test_checkpoint == "best" and ckpt_cb.best_model_path:
        return ckpt_cb.best_model_path
    return ckpt_cb.last_model_path or None


def checkpoint_epoch(path: str | None) -> int | None:
    if not path:
        return None
    return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])


def record_threshold_mode(record: dict, task: FusionTask) -> None:
    """`protocol.thresholds`: how a thresholded task kind (emotion_bce) decides (tuned on validation | fixed_0.5)."""
    thresholds = task.threshold_record()
    if thresholds is not None:
        record["protocol"]["thresholds"] = thresholds["mode"]


def record_thresholds(record: dict, task: FusionTask) -> None:
    """`metrics.thresholds`: {emotion: threshold} the test applied — after `trainer.test(ckpt_path=...)` the task
    holds the tested checkpoint's, i.e. those chosen on validation at the selected epoch. (Also logged, in float32,
    as `<split>/threshold/<emotion>`; the network's `feature_flops` are `<split>/feature_gflops`.)"""
    thresholds = task.threshold_record()
    if thresholds is not None:
        record["metrics"]["thresholds"] = thresholds["values"]


def first_results(results: list[dict]) -> dict[str, float]:
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


def strip_prefix(metrics: dict[str, float], split: str) -> dict[str, float]:
    return {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith(f"{split}/")}


def run(cfg: DictConfig) -> float | None:
    """Train and test one configuration; returns `cfg.optimized_metric` for sweepers. With `resume=<run dir>`
    (`repro.resume`) the stopped run in that folder continues from its last checkpoint, with its saved config."""
    resume = load_plan(cfg.resume) if cfg.get("resume") else None
    if resume is not None:
        if resume.completed:
            print(completed_message(resume))
            return optimized_metric(cfg, resume.record)
        cfg = resume.saved_config()
        if rank_zero_only.rank == 0:
            print(f"[repro] resuming {resume.run_dir} after epoch {resume.epochs_done} ({resume.checkpoint.name})")
    choices = hydra_choices()
    if choices:
        check_pair(choices["data"], choices["fusion"])
    out_dir = Path(cfg.paths.output_dir)
    record = base_record(cfg) if resume is None else resumed_record(base_record(cfg), resume, cfg)
    is_writer = rank_zero_only.rank == 0
    if is_writer:
        write_record(out_dir, record)
    start = time.time()
    try:
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)
        datamodule = build_datamodule(cfg)
        net = build_net(cfg)  # before the data is read: the reader loads only the modalities the network reads
        datamodule.read_only(net.modalities)
        record["data_sizes"] = datamodule.split_sizes()  # bad data fails before any training
        record["synthetic"] = bool(datamodule.reader.synthetic)
        if is_writer:
            print(f"network: {network_name(net)} (data={record['data']} fusion={record['fusion']})", flush=True)
        task = build_task(cfg, net, datamodule)
        record_threshold_mode(record, task)
        trainer = build_trainer(cfg)
        record["params"] = parameter_summary(net)
        for lg in trainer.loggers:
            lg.log_hyperparams({"params": record["params"], **OmegaConf.to_container(cfg, resolve=True)})
        trainer.fit(task, datamodule=datamodule, ckpt_path=str(resume.checkpoint) if resume else None)
        if trainer.interrupted:  # Lightning swallows Ctrl-C after a graceful shutdown
            raise KeyboardInterrupt
        ckpt = checkpoint_to_test(trainer, cfg)
        val = strip_prefix(first_results(trainer.validate(task, datamodule=datamodule, ckpt_path=ckpt,
                                                          verbose=False)), "val")
        test = strip_prefix(first_results(trainer.test(task, datamodule=datamodule, ckpt_path=ckpt,
                                                       verbose=False)), "test")
        record["metrics"] = {"val": val, "test": test, "best_epoch": checkpoint_epoch(ckpt),
                             "epochs_run": trainer.current_epoch, "checkpoint": ckpt}
        record_thresholds(record, task)
        if cfg.count_flops:
            sample = batch_to(next(iter(datamodule.val_dataloader())), 2)
            n = len(sample["label"])
            record["flops"] = forward_flops(task.net.cpu(), sample, per_sample_of=n)
        record["status"] = "completed"
    except (KeyboardInterrupt, SystemExit) as err:
        record.update(status="interrupted", error=f"{type(err).__name__}: interrupted before the run finished")
        raise
    except Exception as err:
        record.update(status="failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        record["wall_time_s"] = round(time.time() - start, 3)
        record["peak_memory"] = peak_memory()
        if is_writer:
            path = write_record(out_dir, record)
            log.info("results record: %s", path)
    if is_writer:
        print_summary(record)
    return optimized_metric(cfg, record)


def optimized_metric(cfg: DictConfig, record: dict) -> float | None:
    name = cfg.get("optimized_metric")
    if not name:
        return None
    split, metric = name.split("/", 1)
    return record["metrics"][split][metric]


SUMMARY_METRICS = 12  # per split on the one-line summary (POM's per-trait metrics stay in results.json)


def summary_metrics(values: dict[str, float]) -> tuple[list[tuple[str, float]], int]:
    """The metrics the summary line shows, and how many it leaves out: all of them up to SUMMARY_METRICS, else
    the aggregates first (names without a per-label part, or `<family>/mean`)."""
    items = list(values.items())
    if len(items) <= SUMMARY_METRICS:
        return items, 0
    headline = [(k, v) for k, v in items if "/" not in k or k.endswith("/mean")][:SUMMARY_METRICS]
    return headline, len(items) - len(headline)


def print_summary(record: dict) -> None:
    metrics = record["metrics"]
    parts = []
    for split in ("val", "test"):
        shown, left_out = summary_metrics(metrics.get(split, {}))
        parts += [f"{split}/{k}={v:.4f}" for k, v in shown]
        if left_out:
            parts.append(f"(+{left_out} {split} metrics in results.json)")
    marks = "".join(f"{mark} " for mark, on in (("SYNTHETIC", record.get("synthetic")), ("DEBUG", record.get("debug")))
                    if on)
    print(f"[repro] {marks}{record['data']} × {record['fusion']} seed={record['seed']} fold={record['fold']} "
          f"best_epoch={metrics.get('best_epoch')} " + " ".join(parts) +
          f" params={record.get('params', {}).get('total')} wall={record['wall_time_s']:.1f}s")


# Errors caused by the user's input or settings: shown as one line (the record already says "failed").
USER_ERRORS = (ConfigError, DataError, FloatingPointError)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    try:
        return run(cfg)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    try:
        from dotenv import load_dotenv

        load_dotenv()  # REPRO_DATA_DIR etc. from a .env file in the working directory
    except ImportError:  # pragma: no cover - python-dotenv is a dependency
        pass
    try:
        resume = plan_resume(sys.argv[1:])  # `resume=<run dir>`: the run's saved overrides (repro.resume)
        check_cli(resume.overrides if resume else sys.argv[1:])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if resume is not None and resume.completed:
        print(completed_message(resume))
        return
    if resume is not None and not resume.relaunched:
        sys.argv[1:] = resume.hydra_argv()
    hydra_main()


if __name__ == "__main__":
    main()
