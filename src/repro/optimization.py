"""Optimisers, parameter groups, LR schedulers and alternating optimisers from the `optimizer` and `scheduler`
config groups (configs/optimizer/, configs/scheduler/; DESIGN.md, "Task, protocol, metrics").

`optimizer` is a partial torch optimiser (`_target_`, `_partial_: true` and its keyword arguments) plus two keys
of ours, taken out before the optimiser is built:

- `param_groups`: a list of `{match: <pattern>, lr_scale: <x>, <optimiser option>: <value>, ...}`. A pattern is
  matched against the network's parameter names (`encoders.text.stages.0.0.weight`; `print(net)` shows the tree):
  with `*`, `?` or `[` it is an `fnmatch` glob on the whole name, otherwise a module prefix (`encoders.text` = every
  parameter of that module). Each trainable parameter lands in exactly one group: the first entry that matches it,
  else the default group (the optimiser's own options, listed first). `lr_scale` multiplies the optimiser's lr
  (MESM, IMPLEMENTATION-NOTES §5.4: `{match: encoders.text, lr_scale: 0.1}` = the text encoder at lr/10).
- `alternating`: null, or a list of branches `{params: [<pattern>, ...], loss: <name>}`, one optimiser each (same
  class and options), stepped in turn on every batch with Lightning's manual optimisation: for each branch, a
  forward pass, that branch's loss, backward, a step of that branch's optimiser; the next branch recomputes the
  forward with the updated weights (MSAF on NTU RGB+D, IMPLEMENTATION-NOTES §1.4: one Adam over the video
  backbone + the MSAF modules, one over the skeleton backbone + the MSAF modules). `loss` names a modality — the
  task's loss on that branch's logits, `NetOutput.extras["modality_logits"]`, which late and staged fusions
  return — or `fused`, the network's own loss. A parameter may sit in several branches (the shared fusion
  modules: each branch's optimiser keeps its own state for it); every trainable parameter must sit in one.

`scheduler` is empty (no schedule) or a partial torch LR scheduler plus Lightning's `interval` (epoch | step),
`frequency` and, for ReduceLROnPlateau, `monitor` (a logged metric such as `val/acc`). With alternating
optimisers every optimiser gets its own scheduler, stepped by the task (`FusionTask.on_train_epoch_end`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from repro.config import ConfigError

OPTIMIZER_KEYS = ("param_groups", "alternating")   # ours, not the torch optimiser's
SCHEDULER_KEYS = ("interval", "frequency", "monitor")  # Lightning's scheduler options, not the torch scheduler's
GROUP_KEYS = ("match", "lr_scale")
FUSED_LOSS = "fused"
INTERVALS = ("epoch", "step")
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Branch:
    """One of the alternating optimisers: the parameters it steps and the loss it steps them on."""

    params: tuple[str, ...]
    loss: str


@dataclass(frozen=True)
class Optimization:
    """Everything `FusionTask.configure_optimizers` needs, read from the two config groups."""

    optimizer: Callable[..., torch.optim.Optimizer]
    param_groups: tuple[dict, ...] = ()
    branches: tuple[Branch, ...] = ()
    scheduler: Callable[..., object] | None = None
    interval: str = "epoch"
    frequency: int = 1
    monitor: str | None = None

    @property
    def alternating(self) -> bool:
        return bool(self.branches)

    def lightning_scheduler(self, scheduler) -> dict:
        """The scheduler as Lightning's lr_scheduler config (automatic optimisation)."""
        config = {"scheduler": scheduler, "interval": self.interval, "frequency": self.frequency}
        return config | ({"monitor": self.monitor} if self.monitor else {})


def default_adam(params, lr: float = 1e-3) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


def _container(node) -> dict:
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return dict(node)


def _param_groups(value) -> tuple[dict, ...]:
    groups = []
    for i, entry in enumerate(value or []):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("match"), str):
            raise ConfigError(f"optimizer.param_groups[{i}] is {entry!r}; expected {{match: <module prefix or glob>, "
                              "lr_scale: <x>}} (e.g. {match: encoders.text, lr_scale: 0.1})")
        if "lr" in entry and "lr_scale" in entry:
            raise ConfigError(f"optimizer.param_groups[{i}] sets both lr and lr_scale; keep one")
        groups.append(dict(entry))
    return tuple(groups)


def _branches(value) -> tuple[Branch, ...]:
    branches = []
    for i, entry in enumerate(value or []):
        params = entry.get("params") if isinstance(entry, Mapping) else None
        params = [params] if isinstance(params, str) else params
        if not params or not isinstance(entry.get("loss"), str) or set(entry) - {"params", "loss"}:
            raise ConfigError(f"optimizer.alternating[{i}] is {entry!r}; expected {{params: [<module prefix or glob>, "
                              "...], loss: <modality or fused>}} (e.g. {params: [encoders.video, msaf], loss: video})")
        branches.append(Branch(tuple(str(p) for p in params), entry["loss"]))
    return tuple(branches)


def optimization_from_config(optimizer_cfg, scheduler_cfg=None) -> Optimization:
    """Read the `optimizer` and `scheduler` nodes; errors are one line naming the key."""
    opt = _container(optimizer_cfg)
    extras = {k: opt.pop(k, None) for k in OPTIMIZER_KEYS}
    sched = _container(scheduler_cfg)
    options = {k: sched.pop(k) for k in SCHEDULER_KEYS if k in sched}
    interval = options.get("interval") or "epoch"
    if interval not in INTERVALS:
        raise ConfigError(f"scheduler.interval={interval!r}; use one of {', '.join(INTERVALS)}")
    return Optimization(
        optimizer=instantiate(opt) if opt else default_adam,
        param_groups=_param_groups(extras["param_groups"]),
        branches=_branches(extras["alternating"]),
        scheduler=instantiate(sched) if sched else None,
        interval=interval,
        frequency=int(options.get("frequency") or 1),
        monitor=options.get("monitor"),
    )


def matches(pattern: str, name: str) -> bool:
    """A glob (`*`, `?`, `[`) on the whole parameter name, or else a module prefix (`encoders.text`)."""
    if any(c in pattern for c in GLOB_CHARS):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern or name.startswith(pattern + ".")


def trainable(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


def module_names(module: nn.Module) -> str:
    """Top-level module names for error messages; a module dict (the encoders) with its keys."""
    names = []
    for name, child in module.named_children():
        if isinstance(child, nn.ModuleDict) and len(child):
            names += [f"{name}.{key}" for key in child]
        else:
            names.append(name)
    return ", ".join(names)


def check_patterns(module: nn.Module, patterns: Sequence[str], key: str) -> None:
    """Every pattern must match a trainable parameter of `module`: a typo must not train with the wrong lr."""
    names = [n for n, _ in trainable(module)] or ["(none: every parameter is frozen)"]
    for i, pattern in enumerate(patterns):
        if not any(matches(pattern, n) for n in names):
            raise ConfigError(f"{key}[{i}] {pattern!r} matches no trainable parameter of {type(module).__name__}; "
                              f"its modules: {module_names(module)} (parameter names look like {names[0]})")


def _group_options(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in GROUP_KEYS}


def parameter_groups(named: Sequence[tuple[str, nn.Parameter]], rules: Sequence[dict]) -> list[dict]:
    """Torch parameter groups, first matching rule wins: the default group first (when not empty), then one
    group per rule that got parameters; each carries its rule's index under `rule` for `apply_lr_scale`."""
    taken: list[list[nn.Parameter]] = [[] for _ in rules]
    rest = []
    for name, param in named:
        index = next((i for i, rule in enumerate(rules) if matches(rule["match"], name)), None)
        (rest if index is None else taken[index]).append(param)
    groups = [{"params": rest}] if rest else []
    groups += [{"params": params, **_group_options(rules[i]), "rule": i} for i, params in enumerate(taken) if params]
    return groups


def build_optimizer(named: Sequence[tuple[str, nn.Parameter]], optimization: Optimization) -> torch.optim.Optimizer:
    """One optimiser over these parameters, with the configured parameter groups and their lr."""
    groups = parameter_groups(named, optimization.param_groups)
    rules = [g.pop("rule", None) for g in groups]
    optimizer = optimization.optimizer(params=groups)
    for group, rule in zip(optimizer.param_groups, rules):
        if rule is None:
            continue
        entry = optimization.param_groups[rule]
        unknown = sorted(set(entry) - set(GROUP_KEYS) - set(optimizer.defaults))
        if unknown:
            raise ConfigError(f"optimizer.param_groups[{rule}] sets {unknown}, which {type(optimizer).__name__} does "
                              f"not take; use lr_scale or its options: {', '.join(sorted(optimizer.defaults))}")
        if "lr_scale" in entry:
            # before any scheduler exists: a scheduler takes each group's lr at creation as its initial_lr
            group["lr"] = optimizer.defaults["lr"] * float(entry["lr_scale"])
    return optimizer


def branch_parameters(module: nn.Module, branches: Sequence[Branch]) -> list[list[tuple[str, nn.Parameter]]]:
    """Each branch's trainable parameters (module order); every trainable parameter must be in one branch."""
    named = trainable(module)
    per_branch = [[(n, p) for n, p in named if any(matches(pat, n) for pat in b.params)] for b in branches]
    for i, branch in enumerate(branches):
        check_patterns(module, branch.params, f"optimizer.alternating[{i}].params")
    covered = {n for params in per_branch for n, _ in params}
    left = [n for n, _ in named if n not in covered]
    if left:
        raise ConfigError(f"optimizer.alternating: {len(left)} trainable parameters are in no branch, e.g. {left[0]} "
                          f"(modules: {module_names(module)}); add their module to a branch's params")
    return per_branch


def build_optimizers(module: nn.Module, optimization: Optimization) -> list[torch.optim.Optimizer]:
    """One optimiser, or one per alternating branch; parameter-group patterns are checked against `module`."""
    check_patterns(module, [g["match"] for g in optimization.param_groups], "optimizer.param_groups")
    if not optimization.alternating:
        return [build_optimizer(trainable(module), optimization)]
    return [build_optimizer(named, optimization) for named in branch_parameters(module, optimization.branches)]


def build_schedulers(optimizers: Sequence[torch.optim.Optimizer], optimization: Optimization) -> list:
    if optimization.scheduler is None:
        return []
    return [optimization.scheduler(optimizer=optimizer) for optimizer in optimizers]


def check_branch_losses(branches: Sequence[Branch], modalities: Sequence[str]) -> None:
    for i, branch in enumerate(branches):
        if branch.loss != FUSED_LOSS and branch.loss not in modalities:
            raise ConfigError(f"optimizer.alternating[{i}].loss={branch.loss!r}; use a modality of this network "
                              f"({', '.join(modalities)}) or {FUSED_LOSS}")


def branch_loss(net, out, loss: str, target: torch.Tensor, criterion) -> torch.Tensor:
    """The loss one alternating branch steps on: the criterion on that modality's logits, or the net's loss."""
    if loss == FUSED_LOSS:
        return net.compute_loss(out, target, criterion)[0]
    logits = out.extras.get("modality_logits")
    if logits is None:
        raise ConfigError(f"optimizer.alternating: loss {loss!r} needs per-branch logits, but {type(net).__name__} "
                          "returns none (extras['modality_logits']); use a late or staged fusion (msaf, mmtm, "
                          f"centralnet, late_avg, ...) or loss: {FUSED_LOSS}")
    return criterion(logits[:, list(net.modalities).index(loss)], target)


def unique_names(branches: Sequence[Branch]) -> list[str]:
    """Log names of the branches' losses: the loss name, numbered where two branches share one."""
    losses = [b.loss for b in branches]
    return [loss if losses.count(loss) == 1 else f"{loss}{i}" for i, loss in enumerate(losses)]
