"""Resuming a stopped training run: `python train.py resume=<run dir>` (README, "Training").

A run directory (`repro.train`) holds the run's config as Hydra saved it (`.hydra/config.yaml` and `overrides.yaml`),
its record (`results.json`) and, written at every epoch end, `checkpoints/last.ckpt` (`configs/callbacks/*.yaml`).
A run stopped by SIGTERM, SIGKILL or a lost machine continues from that checkpoint as if it had never stopped:

- `LastEveryEpochCheckpoint` (the configured ModelCheckpoint) writes `last.ckpt` at every epoch end: Lightning 2.6
  writes it only in epochs whose monitored metric improved, so a stop after a few epochs without gain would lose them;
- `AtomicCheckpointIO` (the trainer's checkpoint plugin) writes every checkpoint to a temporary file in its folder and
  renames it into place, so a kill mid-write leaves the previous `last.ckpt` whole;
- `RandomStateCheckpoint` (a callback) keeps the global random generators' states in each checkpoint and puts them back
  when the resumed fit restores the checkpoint, so shuffling and dropout continue the same streams: with
  `deterministic=true` (and `data.num_workers=0`: persistent workers are re-seeded) the resumed run ends with the same
  test metrics as the uninterrupted one;
- `plan_resume` turns `resume=<dir>` into the run's own saved overrides after checking the folder (one-line errors),
  and `resumed_record` keeps the original record's run id and identity (`repro.provenance`) and notes the resume.

Lightning restores everything else from the checkpoint: weights, optimiser and scheduler states, the loops, and the
callbacks' states (ModelCheckpoint's best score and path, EarlyStopping's counter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf, open_dict

from repro.config import ConfigError
from repro.provenance import run_identity
from repro.results import FILENAME, atomic_write, read_record

RESUME_KEY = "resume"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
SAVED_CONFIG = Path(".hydra") / "config.yaml"
SAVED_OVERRIDES = Path(".hydra") / "overrides.yaml"
_TMP_SUFFIX = ".tmp"


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a temporary file beside the target, fsync, then `os.replace`: readers and a resumed run see
    the old checkpoint or the new one, never half of one (Lightning's own save writes local files in place)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's transactional save
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_write(path, lambda f: torch.save(checkpoint, f), binary=True, suffix=_TMP_SUFFIX)


class LastEveryEpochCheckpoint(ModelCheckpoint):
    """ModelCheckpoint (best-k selection unchanged) whose `last.ckpt` is written at every epoch end, improved or not."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def _save_last_if_missed(self, trainer) -> None:
        # the parent saves last.ckpt only with a best-k checkpoint; either sets the step it last saved at
        if self.save_last and not self._should_skip_saving_checkpoint(trainer) and (
                self._last_global_step_saved != trainer.global_step):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class RandomStateCheckpoint(Callback):
    """The torch / numpy / Python random states in every checkpoint, put back when a resumed fit restores its callbacks.

    The state is taken when the epoch's checkpoint is written and nothing draws random numbers between then and the
    next epoch's first draw (its train DataLoader iterator: the shuffle and the workers' base seed), in the
    uninterrupted run as in the resumed one (Lightning 2.6 creates the resumed epoch's iterator before any epoch hook,
    so the states are set at restore time); dropout then continues the same stream too.
    """

    def state_dict(self) -> dict[str, Any]:
        states = _collect_rng_states(include_cuda=torch.cuda.is_available())
        # numpy's state holds an ndarray, which torch.load(weights_only=True) refuses: keep its keys as a tensor
        name, keys, pos, has_gauss, gauss = states.pop("numpy")
        states["numpy"] = {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                           "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}
        return {"rng": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = dict(state_dict["rng"])
        numpy_state = states["numpy"]
        states["numpy"] = (numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                           numpy_state["has_gauss"], numpy_state["cached_gaussian"])
        if not torch.cuda.is_available() or len(states.get("torch.cuda", [])) != torch.cuda.device_count():
            states.pop("torch.cuda", None)  # saved on other devices: their generators cannot be matched
        _set_rng_states(states)


@dataclass
class ResumePlan:
    """A stopped run to continue: its folder, saved overrides, record (if any) and last checkpoint's progress."""

    run_dir: Path
    overrides: list[str]
    record: dict | None
    epochs_done: int | None = None  # epochs the last checkpoint completed (None: not read, e.g. a completed run)
    global_step: int | None = None
    relaunched: bool = False  # the command line is already `hydra_argv()` (another DDP rank)

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / LAST_CHECKPOINT

    @property
    def completed(self) -> bool:
        return bool(self.record) and self.record.get("status") == "completed"

    def hydra_argv(self) -> list[str]:
        """The command line Hydra composes for the resumed run: the saved overrides, in the same folder, without
        Hydra writing `.hydra/` again (the saved config stays the run's config)."""
        return [*self.overrides, f"{RESUME_KEY}={self.run_dir}", f"hydra.run.dir={self.run_dir}",
                "hydra.output_subdir=null"]

    def saved_config(self) -> DictConfig:
        """The run's own config (not today's configs/ composed again); its output folder is the run folder."""
        cfg = OmegaConf.load(self.run_dir / SAVED_CONFIG)
        with open_dict(cfg):
            cfg.paths.output_dir = str(self.run_dir)
            cfg[RESUME_KEY] = None
        return cfg

    def restart_command(self) -> str:
        return " ".join(["python train.py", *self.overrides])


def resume_argument(argv: list[str]) -> str | None:
    """The value of `resume=` on a command line, or None."""
    values = [a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith(f"{RESUME_KEY}=")]
    return values[-1] if values else None


def plan_resume(argv: list[str]) -> ResumePlan | None:
    """None when the command line has no `resume=`; else the checked plan (ConfigError: one line, with the fix)."""
    value = resume_argument(argv)
    if value is None or value in ("null", "None", ""):
        return None
    others = [a for a in argv if not a.lstrip("+").startswith((f"{RESUME_KEY}=", "hydra."))]
    # Lightning's DDP launcher starts the other ranks with the command line `hydra_argv` made: the saved overrides
    if others and others != saved_overrides(Path(value).expanduser()):
        raise ConfigError(f"resume= continues a run with its saved config and takes no other arguments (got "
                          f"{' '.join(others)}); to change settings start a new run")
    plan = load_plan(value)
    plan.relaunched = bool(others)
    return plan


def saved_overrides(run_dir: Path) -> list[str] | None:
    path = run_dir / SAVED_OVERRIDES
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else None


def load_plan(value: str | Path) -> ResumePlan:
    run_dir = Path(value).expanduser().resolve()
    if not run_dir.is_dir():
        raise ConfigError(f"resume={value}: no such folder; give a train.py run directory "
                          "(outputs/runs/<data>-<fusion>/<time>, or a table's runs/<row>/<repeat>)")
    for saved in (SAVED_CONFIG, SAVED_OVERRIDES):
        if not (run_dir / saved).is_file():
            raise ConfigError(f"{run_dir / saved} not found: resume= needs a run directory written by train.py "
                              "(Hydra saves the run's config there); start the run anew instead")
    overrides = saved_overrides(run_dir)
    try:
        record = read_record(run_dir / FILENAME) if (run_dir / FILENAME).is_file() else None
    except ValueError as err:  # one line naming the file and the fix
        raise ConfigError(str(err)) from None
    plan = ResumePlan(run_dir, overrides, record)
    if plan.completed:
        return plan
    if not plan.checkpoint.is_file():
        raise ConfigError(f"{plan.checkpoint} not found: the run stopped before its first epoch ended, so there is "
                          f"nothing to resume; start it anew: {plan.restart_command()}")
    try:
        saved = torch.load(plan.checkpoint, map_location="cpu", weights_only=False)
    except Exception as err:  # a checkpoint written before checkpoints were atomic may be truncated
        raise ConfigError(f"{plan.checkpoint} cannot be read ({type(err).__name__}); start the run anew: "
                          f"{plan.restart_command()}") from None
    plan.epochs_done, plan.global_step = int(saved["epoch"]) + 1, int(saved["global_step"])
    for stray in plan.checkpoint.parent.glob(f".*{_TMP_SUFFIX}"):  # a save that a kill cut short
        stray.unlink(missing_ok=True)
    return plan


def completed_message(plan: ResumePlan) -> str:
    metrics = (plan.record or {}).get("metrics", {})
    return (f"[repro] {plan.run_dir} is already completed (results.json: status completed, best_epoch="
            f"{metrics.get('best_epoch')}); nothing to resume. To train it again, start a new run: "
            f"{plan.restart_command()}")


def resumed_record(record: dict, plan: ResumePlan, cfg: DictConfig) -> dict:
    """A fresh record for the resumed process that keeps the original run's id and identity (what tables count)
    and lists every resume: after which epoch, from which checkpoint, and what the record said before."""
    original = plan.record or {}
    resume = {"after_epoch": plan.epochs_done, "global_step": plan.global_step,
              "checkpoint": str(LAST_CHECKPOINT), "previous_status": original.get("status"),
              "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return {**record, "run_id": original.get("run_id", record["run_id"]), "overrides": plan.overrides,
            "identity": original.get("identity") or run_identity(cfg, plan.overrides),
            "resumed": [*original.get("resumed", []), resume]}
