"""The `optimizer` / `scheduler` config groups on the AV-Digits format (SYNTHETIC AV-MNIST-layout fixtures): the
optimiser choice and every override path, parameter groups with their own lr, LR schedules after N epochs, and
alternating optimisers (MSAF-on-NTU style, one Adam per branch + the shared MSAF modules) under manual optimisation.
"""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch

from repro.config import ConfigError, check_cli
from repro.optimization import branch_loss, build_optimizers
from repro.results import read_record
from repro.train import build_datamodule, build_net, build_optimization, build_task, build_trainer, run
from tests.conftest import FAST, compose_train
from tests.learnable import CHANCE, LEARN, MARGIN, write_learnable

AVMNIST = ["data=avmnist", "data.reader.val_size=20", "fusion=msaf"]
# one Adam over the image encoder + MSAF, one over the audio encoder + MSAF; each steps on its branch's CE
ALTERNATING = ("optimizer.alternating=[{params: [encoders.image, msaf], loss: image}, "
               "{params: [encoders.audio, msaf], loss: audio}]")
GROUPS = ("optimizer.param_groups=[{match: encoders.audio, lr_scale: 0.1}, "
          "{match: msaf.*, lr: 0.05, weight_decay: 0.01}]")


def compose(overrides, tmp_path, data_dir=None):
    return compose_train([*AVMNIST, *overrides], tmp_path, data_dir)


def names_in(optimizer: torch.optim.Optimizer, net: torch.nn.Module, group: int | None = None) -> set[str]:
    """Names of the parameters an optimiser (or one of its groups) holds."""
    by_id = {id(p): n for n, p in net.named_parameters()}
    groups = optimizer.param_groups if group is None else [optimizer.param_groups[group]]
    return {by_id[id(p)] for g in groups for p in g["params"]}


def under(net: torch.nn.Module, *prefixes: str) -> set[str]:
    return {n for n, _ in net.named_parameters() if n.startswith(prefixes)}


class KeepBatches(L.Callback):
    """Records every training batch, to replay it on a reference copy of the network."""

    def __init__(self):
        self.batches = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append({k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()})


def fit(cfg, *callbacks):
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    net = build_net(cfg)
    task = build_task(cfg, net, datamodule)
    trainer = build_trainer(cfg)
    trainer.callbacks.extend(callbacks)
    trainer.fit(task, datamodule=datamodule)
    return task, trainer


# ------------------------------------------------------------------------------ choosing and overriding
@pytest.mark.parametrize("choice, cls, options", [
    ("adam", torch.optim.Adam, {"weight_decay": 0.0}),
    ("adamw", torch.optim.AdamW, {"weight_decay": 1e-2}),
    ("sgd", torch.optim.SGD, {"momentum": 0.9, "weight_decay": 0.0}),
])
def test_optimizer_choice_builds_that_optimiser_with_the_cli_lr(choice, cls, options, tmp_path):
    cfg = compose([f"optimizer={choice}", "optimizer.lr=0.02"], tmp_path)
    (optimizer,) = build_optimizers(build_net(cfg), build_optimization(cfg))
    assert type(optimizer) is cls
    assert optimizer.param_groups[0]["lr"] == 0.02
    for key, value in options.items():
        assert optimizer.param_groups[0][key] == value


def test_presets_and_the_command_line_still_set_optimizer_lr(tmp_path):
    # mosei_unaligned_mica.yaml sets optimizer.lr: 5.0e-4 (MICA Table 1) over the group's 1e-3
    mica = ["data=mosei_unaligned", "fusion=mica"]
    assert compose_train(mica, tmp_path).optimizer.lr == 5e-4
    adamw = compose_train([*mica, "optimizer=adamw"], tmp_path).optimizer
    assert (adamw._target_, adamw.lr) == ("torch.optim.AdamW", 5e-4)
    assert compose_train([*mica, "optimizer.lr=1e-4"], tmp_path).optimizer.lr == 1e-4
    assert compose_train([], tmp_path).scheduler == {}


def test_unknown_optimizer_or_scheduler_is_one_line():
    with pytest.raises(ConfigError, match=r"^unknown optimizer 'adamx'; choose one of: adam, adamw, sgd$"):
        check_cli(["optimizer=adamx"])
    with pytest.raises(ConfigError, match=r"^unknown scheduler 'cos'; choose one of: cosine, multistep, none, "):
        check_cli(["scheduler=cos"])
    check_cli(["optimizer.lr=0.1", "scheduler=cosine"])  # keys of a group are not choices


# ------------------------------------------------------------------------------------- parameter groups
def test_parameter_groups_get_their_learning_rates(tmp_path):
    cfg = compose(["optimizer.lr=0.004", GROUPS], tmp_path)
    net = build_net(cfg)
    (optimizer,) = build_optimizers(net, build_optimization(cfg))
    lrs = [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups]
    assert lrs == [(0.004, 0.0), (pytest.approx(0.0004), 0.0), (0.05, 0.01)]
    assert names_in(optimizer, net, 0) == under(net, "encoders.image")      # the default group: no rule matched
    assert names_in(optimizer, net, 1) == under(net, "encoders.audio")
    assert names_in(optimizer, net, 2) == under(net, "msaf.")
    held = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(held) == sorted(id(p) for p in net.parameters())           # each parameter exactly once


def test_first_matching_group_wins(tmp_path):
    cfg = compose(["optimizer.lr=0.01", "optimizer.param_groups=[{match: encoders.audio.*, lr_scale: 0.5}, "
                   "{match: encoders, lr_scale: 0.1}]"], tmp_path)
    net = build_net(cfg)
    (optimizer,) = build_optimizers(net, build_optimization(cfg))
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, 0.005, 0.001])
    assert names_in(optimizer, net, 0) == under(net, "msaf.")
    assert names_in(optimizer, net, 1) == under(net, "encoders.audio")
    assert names_in(optimizer, net, 2) == under(net, "encoders.image")   # encoders.audio already taken by rule 0


def test_group_pattern_matching_nothing_is_one_line_naming_the_modules(tmp_path):
    cfg = compose(["optimizer.param_groups=[{match: encoders.text, lr_scale: 0.1}]"], tmp_path)
    with pytest.raises(ConfigError) as err:
        build_optimizers(build_net(cfg), build_optimization(cfg))
    message = str(err.value)
    assert "\n" not in message
    assert "optimizer.param_groups[0] 'encoders.text' matches no trainable parameter" in message
    assert "modules: encoders.image, encoders.audio, msaf" in message


def test_group_option_the_optimiser_does_not_take_is_one_line(tmp_path):
    cfg = compose(["optimizer.param_groups=[{match: msaf, lr_sclae: 0.1}]"], tmp_path)
    with pytest.raises(ConfigError, match=r"param_groups\[0\] sets \['lr_sclae'\], which Adam does not take"):
        build_optimizers(build_net(cfg), build_optimization(cfg))


# ---------------------------------------------------------------------------------------------- schedules
EPOCHS = ["trainer.max_epochs=3", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
          "+trainer.limit_test_batches=1", "callbacks=none", "count_flops=false", "data.batch_size=16",
          "optimizer.lr=0.01"]
PLATEAU = ["scheduler=plateau", "scheduler.patience=0", "scheduler.threshold=1e9", "scheduler.threshold_mode=abs"]


@pytest.mark.parametrize("schedule, factor", [
    (["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5"], 0.5 ** 3),
    (["scheduler=multistep", "scheduler.milestones=[1,2]", "scheduler.gamma=0.5"], 0.5 ** 2),
    (["scheduler=cosine", "scheduler.T_max=4"], (1 + math.cos(math.pi * 3 / 4)) / 2),
    # no epoch can improve by 1e9: every epoch after the first is a plateau (patience 0) -> x0.1 at epochs 2 and 3
    (PLATEAU, 0.1 ** 2),
], ids=["step", "multistep", "cosine", "plateau"])
@pytest.mark.parametrize("alternating", [False, True], ids=["one", "alternating"])
def test_scheduler_lr_after_three_epochs_follows_the_formula(schedule, factor, alternating, tmp_path, data_dir):
    extra = [ALTERNATING] if alternating else ["optimizer.param_groups=[{match: msaf, lr_scale: 0.1}]"]
    _, trainer = fit(compose([*EPOCHS, *schedule, *extra], tmp_path, data_dir))
    assert trainer.current_epoch == 3
    assert len(trainer.optimizers) == (2 if alternating else 1)
    # optimizer.lr=0.01; without alternating the msaf group starts at lr/10 and follows the same schedule
    start = [[0.01], [0.01]] if alternating else [[0.01, 0.001]]
    lrs = [[group["lr"] for group in optimizer.param_groups] for optimizer in trainer.optimizers]
    assert lrs == [pytest.approx([lr * factor for lr in row]) for row in start]


@pytest.mark.parametrize("alternating", [False, True], ids=["one", "alternating"])
def test_step_interval_scheduler_steps_once_per_batch(alternating, tmp_path, data_dir):
    extra = [ALTERNATING] if alternating else []
    schedule = ["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5", "scheduler.interval=step",
                "scheduler.frequency=2"]
    _, trainer = fit(compose([*EPOCHS, "trainer.max_epochs=1", *schedule, *extra], tmp_path, data_dir))
    # two batches, every second one steps: one step, however many optimisers (global_step counts each one's steps)
    lrs = [g["lr"] for o in trainer.optimizers for g in o.param_groups]
    assert lrs == pytest.approx([0.01 * 0.5] * (2 if alternating else 1))


# ------------------------------------------------------------------------------------ alternating optimisers
def test_alternating_optimisers_hold_separate_states_and_match_a_reference_loop(tmp_path, data_dir):
    cfg = compose([*FAST, "data.batch_size=16", "fusion.net.block_dropout=0.0", ALTERNATING], tmp_path, data_dir)
    keep = KeepBatches()
    L.seed_everything(0, verbose=False)
    reference = build_net(cfg)
    net_before = copy.deepcopy(reference.state_dict())
    task, trainer = fit(cfg, keep)
    net = task.net
    assert len(keep.batches) == 2
    image, audio = trainer.optimizers
    # each optimiser holds Adam state for exactly its branch's parameters; the shared MSAF ones in both
    for optimizer, branch in ((image, under(net, "encoders.image", "msaf.")),
                              (audio, under(net, "encoders.audio", "msaf."))):
        assert names_in(optimizer, net) == branch
        state_names = {n for n, p in net.named_parameters() if p in optimizer.state}
        assert state_names == branch
        assert all(float(s["step"]) == 2 for s in optimizer.state.values())
    shared = [p for n, p in net.named_parameters() if n.startswith("msaf.")]
    assert shared
    for p in shared:
        assert image.state[p]["exp_avg"] is not audio.state[p]["exp_avg"]
        assert not torch.equal(image.state[p]["exp_avg"], audio.state[p]["exp_avg"])

    # the same two batches through a plain loop (msaf.txt §5.3 / MSAF's NTU main_msaf.py): step 1 on the image CE,
    # recompute, step 2 on the audio CE — the task's weights end up the same
    reference.load_state_dict(net_before)
    reference.train()
    ref_params = dict(reference.named_parameters())
    lr = float(cfg.optimizer.lr)
    optimizers = [torch.optim.Adam([p for n, p in ref_params.items() if n.startswith((prefix, "msaf."))], lr=lr)
                  for prefix in ("encoders.image", "encoders.audio")]
    for batch in keep.batches:
        for k, optimizer in enumerate(optimizers):
            out = reference(batch)
            loss = torch.nn.functional.cross_entropy(out.extras["modality_logits"][:, k], batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for name, param in net.named_parameters():
        torch.testing.assert_close(param.detach(), ref_params[name].detach(), msg=name)


def test_alternating_msaf_learns_above_chance_and_records_its_config(tmp_path, tmp_path_factory):
    learnable = write_learnable(tmp_path_factory)
    run(compose_train([*LEARN, "fusion=msaf", ALTERNATING], tmp_path, learnable))
    record = read_record(tmp_path / "results.json")
    assert record["status"] == "completed"
    assert record["metrics"]["test"]["acc"] > CHANCE + MARGIN
    assert record["config"]["optimizer"]["alternating"][1] == {"params": ["encoders.audio", "msaf"], "loss": "audio"}
    assert record["config"]["optimizer"]["lr"] == 3e-3


def test_alternating_mistakes_are_one_line(tmp_path, data_dir):
    text = ALTERNATING.replace("loss: audio", "loss: text")
    with pytest.raises(ConfigError, match=r"alternating\[1\]\.loss='text'; use a modality of this network "
                                          r"\(image, audio\) or fused"):
        cfg = compose([text], tmp_path)
        build_task(cfg, build_net(cfg))
    uncovered = compose(["optimizer.alternating=[{params: encoders.image, loss: image}, "
                         "{params: encoders.audio, loss: audio}]"], tmp_path)
    with pytest.raises(ConfigError, match=r"trainable parameters are in no branch, e\.g\. msaf\."):
        build_optimizers(build_net(uncovered), build_optimization(uncovered))
    with pytest.raises(ConfigError, match=r"set trainer\.gradient_clip_val=null"):
        build_optimization(compose([ALTERNATING, "+trainer.gradient_clip_val=1.0"], tmp_path))
    concat = compose_train(["data=avmnist", "fusion=concat", ALTERNATING], tmp_path)
    net = build_net(concat)
    batch = {"image": torch.zeros(2, 1, 28, 28), "audio": torch.zeros(2, 1, 112, 112)}
    with pytest.raises(ConfigError, match=r"needs per-branch logits, but ConcatNet returns none"):
        branch_loss(net, net(batch), "image", torch.zeros(2, dtype=torch.long), torch.nn.CrossEntropyLoss())


@pytest.mark.slow  # CI time: `make test-full` runs it
def test_alternating_msaf_trains_on_the_real_avdigits_set(tmp_path):
    """The issue's check on the embedded AV-Digits set (real data): the alternating protocol trains MSAF above
    chance (10 classes) in one short epoch, and its two Adams hold separate states over their own branches."""
    cfg = compose_train(["data=avdigits", "fusion=msaf", ALTERNATING, "trainer.max_epochs=1",
                         "+trainer.limit_train_batches=40", "+trainer.limit_val_batches=2", "callbacks=none",
                         "count_flops=false"], tmp_path)
    task, trainer = fit(cfg)
    image_adam, audio_adam = task.optimizers()
    net = task.net
    assert names_in(image_adam, net) == under(net, "encoders.image", "msaf")
    assert names_in(audio_adam, net) == under(net, "encoders.audio", "msaf")
    image_state = {id(p) for p in image_adam.state}
    audio_state = {id(p) for p in audio_adam.state}
    assert image_state & audio_state == {id(p) for p in net.msaf.parameters()}  # only the shared block in both
    (metrics,) = trainer.test(task, datamodule=build_datamodule(cfg), verbose=False)
    assert metrics["test/acc"] > 0.2  # twice chance (10 classes); 0.31 on this CPU after these 40 batches
