"""NTU RGB+D fusions at the papers' taps (msaf.txt §5.3-5.4; IMPLEMENTATION-NOTES §1.4): tap parts (HCN's persons),
MSAF on I3D+HCN against a re-statement of the authors' ``msaf_ntu.py`` forward, MMTM on ResNet+HCN against
haamoon/mmtm ``mmtm.py``'s forward, parameter counts of the authors' modules, the backbone configs' fusion points,
and the NTU training protocol: alternating per-branch Adams and the mean-branch-CE selection metric.

Inputs are tiny (I3D / ResNet clips of 8 × 32², batch 2); the skeleton window is the authors' 32.
"""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from repro.models.backbones.hcn import HCN, motion
from repro.models.backbones.i3d import I3D
from repro.models.backbones.inflated_resnet import InflatedResNet50
from repro.models.fusion.centralnet import CentralNet
from repro.models.fusion.mmtm import MMTMNet
from repro.models.fusion.msaf import MSAFNet
from repro.models.net import StagedFusionNet
from repro.optimization import optimization_from_config
from repro.task import FusionTask

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BATCH, FRAMES, SIZE, CLASSES = 2, 8, 32, 60
# The authors' modules (anita-hu/MSAF msaf_ntu.py; MSAF.py: Linear(C, C/r) + BatchNorm1d(C/r) + one Linear(C/r, C)
# per block): module 1 [832, 128, 128] C 64 -> 13 + 2 + 2 blocks: 1,040 + 32 + 17·1,088 = 19,568; module 2
# [1024, 512] C 256 -> 4 + 2 blocks: 16,448 + 128 + 6·16,640 = 116,416. ResNet: [1024, 128, 128] -> 20 blocks
# 22,832; [2048, 512] -> 10 blocks 182,976.
MSAF_I3D_PARAMS = 19_568 + 116_416            # 135,984
MSAF_RESNET_PARAMS = 22_832 + 182_976         # 205,808
# haamoon/mmtm MMTNet: MMTM(512,128,4) 410,560 + MMTM(1024,256,4) 1,640,320 + MMTM(2048,512,4) 6,557,440
MMTM_RESNET_PARAMS = 410_560 + 1_640_320 + 6_557_440
I3D_PARAMS, HCN_PARAMS = 12_348_764, 1_062_652


def backbone_points(name: str, fusion: str) -> dict:
    cfg = OmegaConf.load(CONFIGS / "backbone" / f"{name}.yaml")
    return OmegaConf.to_container(cfg.fusion_points[fusion])


def encoders(video: str = "i3d", dropout: float = 0.0) -> dict:
    net = I3D(CLASSES, dropout=dropout, input_layout="BTCHW") if video == "i3d" else \
        InflatedResNet50(CLASSES, input_layout="BTCHW")
    return {"video": net, "skeleton": HCN(CLASSES, dropout=dropout)}


def batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.randn(BATCH, FRAMES, 3, SIZE, SIZE, generator=g),
            "skeleton": torch.randn(BATCH, 3, 32, 25, 2, generator=g),
            "label": torch.randint(0, CLASSES, (BATCH,), generator=g)}


def msaf_net(video: str = "i3d", dropout: float = 0.0) -> MSAFNet:
    points = backbone_points("ntu_i3d" if video == "i3d" else "ntu_resnet", "msaf")
    return MSAFNet(encoders(video, dropout), CLASSES, points["points"], points["block_channels"], reduction=4,
                   lowest_atten=0.5, block_dropout=0.0)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------------- tap parts
class ScalePart(StagedFusionNet):
    """A toy fusion: multiplies every input it receives by (its index + 2); records the input names."""

    def fuse_at(self, k, taps, extras):
        self.seen = list(taps)
        return {name: t * (j + 2) for j, (name, t) in enumerate(taps.items())}


def test_hcn_person_parts_split_and_merge_back_exactly():
    hcn = HCN(CLASSES)
    tap = torch.randn(BATCH, 128, 4, 4, 2)
    parts = hcn.split_tap(1, tap)
    assert list(parts) == ["p0", "p1"]
    torch.testing.assert_close(parts["p1"], tap[..., 1])
    assert torch.equal(hcn.merge_tap(1, parts), tap)
    flat = torch.randn(BATCH, 1024)   # person_max: the flattened conv6 max, as the authors' out7.view(B, -1)
    grid = hcn.split_tap(3, flat)["map"]
    assert grid.shape == (BATCH, 256, 2, 2) and torch.equal(grid.flatten(1), flat)
    assert hcn.part_channels(3, "map") == 256 and hcn.tap_parts(4) == ()


def test_a_point_on_tap_parts_fuses_each_part_and_puts_it_back():
    torch.manual_seed(0)
    hcn = HCN(CLASSES, dropout=0.0).eval()
    net = ScalePart({"skeleton": hcn}, CLASSES, [{"skeleton": "conv5/*"}]).eval()
    assert net.point_channels(0) == {"skeleton/p0": 128, "skeleton/p1": 128}
    x = batch()["skeleton"]
    out = net({"skeleton": x})
    assert net.seen == ["skeleton/p0", "skeleton/p1"]
    # by hand: conv5 per person, person 0 ×2, person 1 ×3, then the rest of HCN
    tap = hcn.run_stage(1, hcn.to_next(0, hcn.run_stage(0, x))) * torch.tensor([2.0, 3.0])
    for i in (2, 3, 4):
        tap = hcn.run_stage(i, hcn.to_next(i - 1, tap))
    torch.testing.assert_close(out.logits, hcn.head(hcn.pool(tap)))

    one = ScalePart({"skeleton": hcn}, CLASSES, [{"skeleton": "conv5/p1"}]).eval()
    tap = hcn.run_stage(1, hcn.to_next(0, hcn.run_stage(0, x))) * torch.tensor([1.0, 2.0])  # p0 untouched
    for i in (2, 3, 4):
        tap = hcn.run_stage(i, hcn.to_next(i - 1, tap))
    torch.testing.assert_close(one({"skeleton": x}).logits, hcn.head(hcn.pool(tap)))


@pytest.mark.parametrize("spec, message", [("fc7/p0", "has no parts"), ("conv5/p2", "has parts"),
                                           ("conv5/", "ends with")])
def test_a_wrong_part_is_a_one_line_error(spec, message):
    with pytest.raises((KeyError, ValueError), match=message):
        ScalePart({"skeleton": HCN(CLASSES)}, CLASSES, [{"skeleton": spec}])


# ------------------------------------------------------------------------------------------- MSAF on I3D + HCN
def authors_msaf_forward(net: MSAFNet, video: torch.Tensor, skeleton: torch.Tensor):
    """anita-hu/MSAF ntu_rgb_d/msaf_ntu.py `MSAFNet.forward` (rgb_net='i3d') re-stated on our layers: each person
    through the position/motion branches and conv5, I3D features[:13] (to Mixed_4f), features[13:15] (MaxPool +
    Mixed_5b), msaf1 on [fm3, out5_p0, out5_p1], conv6 per person, max, fc7, features[15] (Mixed_5c), msaf2 on
    [final_fm, out8], fc8 and the I3D head (global average, our stated pooling deviation)."""
    sk, vis = net.encoders["skeleton"], net.encoders["video"]
    mot = motion(skeleton)
    out4 = [torch.cat([sk.stages[0].position(skeleton[..., i]), sk.stages[0].motion(mot[..., i])], dim=1)
            for i in range(2)]
    out5_p0, out5_p1 = (sk.stages[1](o) for o in out4)
    fm2 = video.permute(0, 2, 1, 3, 4)
    for i in range(8):                      # Conv3d_2c_3x3 .. Mixed_4f
        fm2 = vis.stages[i](fm2)
    fm3 = vis.stages[8](fm2)                # MaxPool3d_5a + Mixed_5b
    (fm3, out5_p0, out5_p1), _ = net.msaf[0]([fm3, out5_p0, out5_p1])
    out6_max = torch.max(sk.stages[2](out5_p0), sk.stages[2](out5_p1))
    out8 = sk.stages[4](out6_max.view(out6_max.size(0), -1))
    final_fm = vis.stages[9](fm3)           # Mixed_5c
    (final_fm, out8), _ = net.msaf[1]([final_fm, out8])
    return vis.head(final_fm.mean(dim=(2, 3, 4))), sk.head(out8)


def test_msaf_on_i3d_hcn_equals_the_authors_forward():
    torch.manual_seed(0)
    net = msaf_net("i3d").eval()
    b = batch()
    with torch.no_grad():
        out = net(b)
        vis_pred, skeleton_pred = authors_msaf_forward(net, b["video"], b["skeleton"])
    torch.testing.assert_close(out.extras["modality_logits"][:, 0], vis_pred)
    torch.testing.assert_close(out.extras["modality_logits"][:, 1], skeleton_pred)
    # prediction = argmax(video logits + skeleton logits) (= the authors' (a + b) / 2)
    torch.testing.assert_close(out.logits, vis_pred + skeleton_pred)
    assert out.extras["msaf0_attention"].shape == (BATCH, 13 + 2 + 2, 64)
    assert out.extras["msaf1_attention"].shape == (BATCH, 4 + 2, 256)


def test_msaf_parameter_counts_match_the_authors_modules():
    net = msaf_net("i3d")
    assert [m.num_blocks for m in net.msaf] == [[13, 2, 2], [4, 2]]
    assert n_params(net.msaf) == MSAF_I3D_PARAMS == 135_984
    assert n_params(net) == I3D_PARAMS + HCN_PARAMS + MSAF_I3D_PARAMS == 13_547_400
    resnet = msaf_net("resnet")
    assert [m.num_blocks for m in resnet.msaf] == [[16, 2, 2], [8, 2]]
    assert n_params(resnet.msaf) == MSAF_RESNET_PARAMS == 205_808


# ---------------------------------------------------------------------------------------------------- MMTM
def authors_mmtm_forward(net: MMTMNet, video: torch.Tensor, skeleton: torch.Tensor):
    """haamoon/mmtm mmtm.py `MMTNet.forward` re-stated on our layers: mmtm0 on (layer2, conv5 of person 0 only),
    mmtm1 on (layer3, the person-max of conv6 before flattening), mmtm2 on (layer4, fc7)."""
    sk, vis = net.encoders["skeleton"], net.encoders["video"]
    mot = motion(skeleton)
    out4 = [torch.cat([sk.stages[0].position(skeleton[..., i]), sk.stages[0].motion(mot[..., i])], dim=1)
            for i in range(2)]
    out5_p0, out5_p1 = (sk.stages[1](o) for o in out4)
    fm2 = vis.stages[1](vis.stages[0](video.permute(0, 2, 1, 3, 4)))
    (fm2, out5_p0), _ = net.mmtm[0]([fm2, out5_p0])
    out7 = torch.max(sk.stages[2](out5_p0), sk.stages[2](out5_p1))
    fm3 = vis.stages[2](fm2)
    (fm3, out7), _ = net.mmtm[1]([fm3, out7])
    out8 = sk.stages[4](out7.view(out7.size(0), -1))
    final_fm = vis.stages[3](fm3)
    (final_fm, out8), _ = net.mmtm[2]([final_fm, out8])
    return vis.head(final_fm.mean(dim=(2, 3, 4))), sk.head(out8)


def test_mmtm_on_resnet_hcn_equals_the_authors_forward_and_parameter_count():
    torch.manual_seed(0)
    net = MMTMNet(encoders("resnet"), CLASSES, backbone_points("ntu_resnet", "mmtm")["points"], ratio=4).eval()
    assert [m.channels for m in net.mmtm] == [[512, 128], [1024, 256], [2048, 512]]
    assert n_params(net.mmtm) == MMTM_RESNET_PARAMS == 8_608_320
    b = batch()
    with torch.no_grad():
        out = net(b)
        vis_pred, skeleton_pred = authors_mmtm_forward(net, b["video"], b["skeleton"])
    torch.testing.assert_close(out.extras["modality_logits"][:, 0], vis_pred)
    torch.testing.assert_close(out.extras["modality_logits"][:, 1], skeleton_pred)
    torch.testing.assert_close(out.logits, (vis_pred + skeleton_pred) / 2)


def test_i3d_mmtm_and_centralnet_points_build_and_run():
    torch.manual_seed(0)
    mmtm = MMTMNet(encoders("i3d"), CLASSES, backbone_points("ntu_i3d", "mmtm")["points"]).eval()
    assert [m.channels for m in mmtm.mmtm] == [[832, 128], [832, 256], [1024, 512]]
    central = CentralNet(encoders("i3d"), CLASSES, backbone_points("ntu_i3d", "centralnet")["points"]).eval()
    assert central.widths == [832, 832, 1024]
    with torch.no_grad():
        assert mmtm(batch()).logits.shape == central(batch()).logits.shape == (BATCH, CLASSES)


def test_msaf_early_location_is_conv4_of_both_persons_with_mixed_4f():
    points = backbone_points("ntu_i3d", "msaf")
    net = MSAFNet(encoders("i3d"), CLASSES, [points["early"], *points["points"]],
                  [points["early_block_channels"], *points["block_channels"]], lowest_atten=0.5, block_dropout=0.0)
    assert net.point_channels(0) == {"video": 832, "skeleton/p0": 128, "skeleton/p1": 128}
    assert points["early_block_channels"] == min(net.point_channels(0).values()) // 2
    with torch.no_grad():
        assert net.eval()(batch()).extras["msaf0_attention"].shape == (BATCH, 13 + 2 + 2, 64)


def test_the_default_ntu_backbone_is_the_i3d_set():
    cfg = OmegaConf.load(CONFIGS / "backbone" / "ntu.yaml")
    assert list(cfg.defaults) == ["ntu_i3d", "_self_"] and cfg.name == "ntu"
    assert OmegaConf.load(CONFIGS / "backbone" / "ntu_i3d.yaml").video_frames == 32
    assert OmegaConf.load(CONFIGS / "backbone" / "ntu_resnet.yaml").video_frames == 8


# ----------------------------------------------------------------------------------- training protocol (MSAF NTU)
PRESET = OmegaConf.load(CONFIGS / "preset" / "ntu_msaf.yaml")


def msaf_task() -> FusionTask:
    optimizer = OmegaConf.merge(OmegaConf.load(CONFIGS / "optimizer" / "adam.yaml"), PRESET.optimizer)
    optimization = optimization_from_config(optimizer, PRESET.scheduler)
    return FusionTask(msaf_net("i3d"), num_classes=CLASSES, optimization=optimization)


def quiet_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kwargs)


def loader(batches: list[dict]) -> DataLoader:
    return DataLoader(batches, batch_size=None)


def test_alternating_step_equals_a_hand_run_of_the_two_branch_steps():
    torch.manual_seed(0)
    task = msaf_task()
    reference = copy.deepcopy(task.net)
    initial = copy.deepcopy(task.net.state_dict())
    batches = [batch(1), batch(2)]
    quiet_trainer(max_epochs=1, num_sanity_val_steps=0).fit(task, loader(batches))
    # by hand (anita-hu/MSAF main_msaf.py): Adam(video + msaf) on the video CE, forward again, Adam(skeleton + msaf)
    # on the skeleton CE; lr 1e-4, weight decay 1e-4
    named = dict(reference.named_parameters())
    optimizers = [torch.optim.Adam([p for n, p in named.items() if n.startswith((f"encoders.{m}.", "msaf."))],
                                   lr=1e-4, weight_decay=1e-4) for m in ("video", "skeleton")]
    reference.train()
    for b in batches:
        for branch, optimizer in enumerate(optimizers):
            loss = F.cross_entropy(reference(b).extras["modality_logits"][:, branch], b["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for name, param in task.net.named_parameters():
        torch.testing.assert_close(param.detach(), named[name].detach(), msg=name)
    for prefix in ("encoders.video.", "encoders.skeleton.", "msaf."):   # every branch moved (not a trivial equality)
        assert any(not torch.equal(v, initial[k]) for k, v in task.net.state_dict().items() if k.startswith(prefix))
    for name, value in task.net.state_dict().items():   # BN running statistics too
        torch.testing.assert_close(value, reference.state_dict()[name], msg=name)
    assert PRESET.protocol.monitor == "branch_ce" and PRESET.protocol.mode == "min"


def test_validation_logs_the_mean_branch_ce_as_the_selection_metric():
    torch.manual_seed(0)
    task = msaf_task()
    batches = [batch(3), batch(4)]
    metrics = quiet_trainer().validate(task, loader(batches), verbose=False)[0]
    task.net.eval()
    with torch.no_grad():
        per_batch = [torch.stack([F.cross_entropy(task.net(b).extras["modality_logits"][:, i], b["label"])
                                  for i in range(2)]).mean() for b in batches]
    # batches of equal size: the epoch value is the plain mean of the per-batch values
    assert metrics["val/branch_ce"] == pytest.approx(float(torch.stack(per_batch).mean()), rel=1e-5)


# ------------------------------------------------------------------------------------------- configs composed
@pytest.mark.parametrize("fusion, backbone, fused_params", [
    ("msaf", "ntu_i3d", MSAF_I3D_PARAMS), ("msaf", "ntu_resnet", MSAF_RESNET_PARAMS),
    ("mmtm", "ntu_resnet", MMTM_RESNET_PARAMS), ("msaf", "ntu", MSAF_I3D_PARAMS)])
def test_train_config_builds_the_papers_network(fusion, backbone, fused_params, tmp_path):
    from repro.train import build_net, build_optimization
    from tests.conftest import compose_train

    cfg = compose_train(["data=ntu", f"fusion={fusion}", f"backbone={backbone}"], tmp_path)
    assert cfg.data.reader.frames == (8 if backbone == "ntu_resnet" else 32)   # backbone.video_frames
    net = build_net(cfg)
    assert sum(p.numel() for p in net.fusion_parameters()) == fused_params
    optimization = build_optimization(cfg)
    assert [b.loss for b in optimization.branches] == ["video", "skeleton"]
    assert (cfg.protocol.monitor, cfg.protocol.mode, cfg.data.batch_size) == ("branch_ce", "min",
                                                                              4 if fusion == "msaf" else 20)


def test_the_joint_experiment_switches_to_one_optimiser_selected_on_accuracy(tmp_path):
    from repro.train import build_optimization
    from tests.conftest import compose_train

    cfg = compose_train(["data=ntu", "fusion=msaf", "experiment=ntu_joint"], tmp_path)
    assert not build_optimization(cfg).alternating
    assert (cfg.protocol.monitor, cfg.protocol.mode, cfg.optimizer.lr) == ("acc", "max", 1e-4)


def test_msaf_t5_rows_compose_to_their_locations(tmp_path):
    from repro.train import build_net
    from tests.conftest import compose_train

    table = OmegaConf.load(CONFIGS / "table" / "msaf_t5.yaml")
    rows = {r.label: OmegaConf.to_container(r.overrides, resolve=False) for r in table.rows}
    located = [o for o in rows["E + I + L"] if o.startswith("fusion.net.")]   # not the {table:...} init_from
    assert len(located) == 2
    cfg = compose_train(["data=ntu", "fusion=msaf", "backbone=ntu_i3d", *located], tmp_path)
    net = build_net(cfg)
    assert [list(net.point_channels(k).values()) for k in range(3)] == [[832, 128, 128], [832, 128, 128], [1024, 512]]
    assert [m.blocks[0].block_channel for m in net.msaf] == [64, 64, 256]


def test_hcn_pretrained_reads_the_authors_checkpoint(tmp_path):
    from repro.models.backbones.hcn import authors_state_dict

    torch.manual_seed(1)
    source = HCN(CLASSES)
    torch.save(authors_state_dict(source), tmp_path / "skeleton_32frames.checkpoint")
    loaded = HCN(CLASSES, pretrained=str(tmp_path / "skeleton_32frames.checkpoint"))
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("fusion", ["centralnet", "gmu", "two_stream", "late_avg", "mmtm", "msaf"])
def test_every_ntu_preset_composes_and_runs_a_batch(fusion, tmp_path):
    from repro.train import build_net
    from tests.conftest import compose_train

    cfg = compose_train(["data=ntu", f"fusion={fusion}", "backbone=ntu_i3d", "backbone.encoders.video.dropout=0"],
                        tmp_path)
    torch.manual_seed(0)
    net = build_net(cfg).eval()
    with torch.no_grad():
        out = net(batch())
    assert out.logits.shape == (BATCH, CLASSES) and torch.isfinite(out.logits).all()
    if fusion == "late_avg":   # the mean of the two branches' logits
        torch.testing.assert_close(out.logits, out.extras["modality_logits"].mean(dim=1))


@pytest.mark.slow   # ~60 s on 2 CPU cores
def test_msaf_resnet_with_the_papers_alternating_protocol_learns_the_fixture(tmp_path):
    """`python train.py data=ntu fusion=msaf backbone=ntu_resnet` in-process on the SYNTHETIC fixture (4 balanced
    classes: chance 0.25), the preset's alternating Adams and branch_ce selection, lr 1e-3 without the epoch-5 drop.
    (I3D is not used here: its BatchNorm momentum 1e-3 barely moves the running statistics in a few fixture batches,
    so its eval-mode outputs stay poor for many epochs.)"""
    import json

    from repro.data.ntu_rgb import NTUReader
    from repro.data.registry import write_fixture
    from repro.train import run
    from tests.conftest import compose_train

    write_fixture("ntu", tmp_path / "data")
    cfg = compose_train(["data=ntu", "fusion=msaf", "backbone=ntu_resnet", *NTUReader.fixture_run_overrides,
                         "data.batch_size=8", "data.max_epochs=4", "optimizer.lr=1e-3", "scheduler.milestones=[100]",
                         "callbacks=none", "count_flops=false"], tmp_path / "run", tmp_path / "data")
    run(cfg)
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["synthetic"] is True and record["params"]["total"] == 46_265_468 + 1_062_652 + MSAF_RESNET_PARAMS
    assert record["protocol"]["monitor"] == "branch_ce" and "branch_ce" in record["metrics"]["val"]
    assert record["metrics"]["test"]["acc"] >= 0.25 + 0.35
