"""The MFAS search on NTU RGB+D (mfas.txt §4, Tables 4–5; IMPLEMENTATION-NOTES §3.1–3.3): the space of
configs/backbone/ntu_resnet.yaml (4 skeleton × 4 RGB taps × 2 non-linearities, the alias `layer4_pooled`), MFAS
Table 5's fusion parameter counts, the resumable memory-mapped feature cache, a search end to end on in-memory
NTU-shaped tensors (SYNTHETIC), a found architecture with the alias tap, and the search's data settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from repro.config import CONFIG_DIR, ConfigError
from repro.models.backbones import inflated_resnet
from repro.models.backbones.base import StagedEncoder
from repro.models.backbones.hcn import HCN
from repro.models.fusion.mfas import MFASFusion, MFASNet, fusion_layer_params
from repro.models.fusion.mfas_space import SearchSpace, SearchSpaceError
from repro.search.algorithm import Search, SearchSettings
from repro.search.features import build_cache, cache_bytes, cache_layout, load_cache, select_taps
from repro.search.run import annotate_top, space_stages
from repro.search.state import SearchState
from repro.search.trainer import TrainSettings, train_architecture

NTU_SPACE = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "backbone" / "ntu_resnet.yaml").search_space)
CLASSES = 4


class Widths:
    """Stage names and widths of an encoder without its weights (the 46M-parameter ResNet is not needed here)."""

    def __init__(self, names, channels):
        self.stage_names, self.stage_channels = list(names), list(channels)


def resnet_widths() -> Widths:
    return Widths(inflated_resnet.STAGE_NAMES, [p * inflated_resnet.EXPANSION for p in inflated_resnet.PLANES])


def ntu_space(video=None, skeleton=None) -> SearchSpace:
    encoders = {"skeleton": skeleton or HCN(num_classes=60), "video": video or resnet_widths()}
    return SearchSpace.from_encoders(encoders, NTU_SPACE["modalities"], taps=NTU_SPACE["taps"],
                                     nonlinearities=NTU_SPACE["nonlinearities"], aliases=NTU_SPACE["aliases"])


def test_ntu_space_is_the_authors():
    space = ntu_space()
    assert space.shape == (4, 4, 2) and space.size(4) == 32**4 == 1_048_576
    assert space.x_taps == ("conv5", "conv6", "person_max", "fc7")
    assert space.y_taps == ("layer2", "layer3", "layer4", "layer4_pooled")
    # the alias is its own choice (code 3) and reads layer4
    arch = space.parse("skeleton.fc7+video.layer4_pooled/relu | skeleton.conv6+video.layer4/sigmoid")
    assert space.codes(arch).tolist() == [[3, 3, 0], [1, 2, 1]]
    assert space.stage_of("video", "layer4_pooled") == space.stage_of("video", "layer4") == "layer4"
    x_index, y_index = space.stage_indices(HCN().stage_names, inflated_resnet.STAGE_NAMES)
    assert x_index == [1, 2, 3, 4] and y_index == [1, 2, 3, 3]
    assert space_stages(space) == {"skeleton": ["conv5", "conv6", "fc7", "person_max"],
                                   "video": ["layer2", "layer3", "layer4"]}


def test_alias_and_repeated_taps_are_one_line_errors():
    encoders = {"skeleton": HCN(), "video": resnet_widths()}
    with pytest.raises(SearchSpaceError, match="repeat a name"):
        SearchSpace.from_encoders(encoders, ["skeleton", "video"], taps={"video": ["layer4", "layer4"]})
    with pytest.raises(SearchSpaceError, match="must name a stage"):
        SearchSpace.from_encoders(encoders, ["skeleton", "video"], aliases={"video": {"pooled": "layer9"}})


# The four architectures of MFAS Table 5 are the authors' main_found_ntu.py `--conf` 0, 2, 3 and 4 (rows = layers,
# columns = skeleton feature, RGB feature, non-linearity). Table 5 prints no architecture; these four configurations
# are the only ones in the authors' code whose counts equal the table's, in this order.
TABLE5 = [
    ([[2, 2, 0], [1, 0, 1], [3, 2, 0], [3, 1, 1]], 2_229_248),  # Network 0 = conf 0
    ([[3, 2, 0], [2, 3, 1], [0, 1, 1], [3, 0, 0]], 2_196_480),  # Network 1 = conf 2
    ([[1, 1, 1], [3, 2, 0], [0, 1, 1], [3, 0, 0]], 1_737_728),  # Network 2 = conf 3
    ([[3, 1, 1], [1, 3, 0], [1, 1, 1], [3, 3, 0]], 2_163_712),  # Network 3 = conf 4 (the README's best, 91.34 %)
]


@pytest.mark.parametrize(("codes", "expected"), TABLE5)
def test_table5_fusion_parameter_counts(codes, expected):
    """MFAS Table 5's "# of fusion parameters": the fusion layers W_1..W_4 (weights and biases) at the authors'
    found-architecture inner size 256 (main_found_ntu.py `--inner_representation_size` default), without the
    60-way output layer W_out (256·60 + 60 = 15,420, not counted), no BatchNorm, no α gates; pooled feature widths
    skeleton (128, 256, 1024, 512) and RGB (512, 1024, 2048, 2048). E.g. Network 0: (1024+2048+1)·256 +
    (256+512+256+1)·256 + (512+2048+256+1)·256 + (512+1024+256+1)·256 = 2,229,248. All four match exactly.
    (The paper's Fig. 4 architecture, conf 1 [[3,0,0],[1,3,0],[1,1,1],[3,3,0]], has 2,032,640: not in Table 5.)"""
    space = ntu_space()
    hcn = HCN(num_classes=60)
    x_index, y_index = space.stage_indices(hcn.stage_names, inflated_resnet.STAGE_NAMES)
    x_dims = [hcn.stage_channels[i] for i in x_index]
    y_dims = [resnet_widths().stage_channels[i] for i in y_index]
    assert x_dims == [128, 256, 1024, 512] and y_dims == [512, 1024, 2048, 2048]
    fusion = MFASFusion(codes, x_dims, y_dims, space.nonlinearities, 60, inner_size=256)
    assert fusion.fusion_params() == expected
    assert fusion_layer_params(codes, x_dims, y_dims, 256) == expected
    assert sum(p.numel() for p in fusion.parameters()) == expected + 256 * 60 + 60  # the output layer on top
    record = {"top": [{"codes": codes}]}
    annotate_top(record, x_dims, y_dims, 16, 256)
    assert record["top"][0]["fusion_params"] == expected


# -- in-memory NTU-shaped data (SYNTHETIC) ---------------------------------------------------------------------------


class TinyVideo(StagedEncoder):
    """A stand-in for the inflated ResNet-50 with its stage names (layer1..layer4), thin, on (B, T, 3, H, W)."""

    def __init__(self):
        super().__init__()
        self.stage_names = ["layer1", "layer2", "layer3", "layer4"]
        self.stage_channels = [4, 8, 16, 32]
        widths = [3, *self.stage_channels]
        for a, b in zip(widths, widths[1:]):
            self.stages.append(nn.Sequential(nn.Conv3d(a, b, 1), nn.ReLU()))
        self.head = nn.Linear(32, CLASSES)

    def run_stage(self, i, x):
        return self.stages[i](x.permute(0, 2, 1, 3, 4) if i == 0 else x)


class NTUShaped(torch.utils.data.Dataset):
    """SYNTHETIC samples with the data=ntu keys and shapes (video (T, 3, H, W), skeleton (3, 32, 25, 2)); the class
    is written into the skeleton (an offset per class) so that the search has something to learn."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.labels = np.arange(n) % CLASSES
        self.video = torch.randn(n, 4, 3, 8, 8, generator=g)
        self.skeleton = torch.randn(n, 3, 32, 25, 2, generator=g) * 0.3
        self.skeleton[:, 0] += torch.as_tensor(self.labels, dtype=torch.float32).view(n, 1, 1, 1)
        self.reads = 0

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        self.reads += 1
        return {"video": self.video[i], "skeleton": self.skeleton[i], "label": int(self.labels[i]), "id": str(i)}


@pytest.fixture(scope="module")
def encoders():
    torch.manual_seed(0)
    return {"skeleton": HCN(num_classes=CLASSES).eval(), "video": TinyVideo().eval()}


@pytest.fixture(scope="module")
def datasets():
    return {"train": NTUShaped(48, seed=1), "val": NTUShaped(24, seed=2)}


def test_feature_cache_stores_the_space_stages_memory_mapped(tmp_path, encoders, datasets):
    space = ntu_space(video=encoders["video"], skeleton=encoders["skeleton"])
    stages = space_stages(space)
    path = build_cache(tmp_path / "c", datasets, encoders, ["skeleton", "video"], batch_size=16, progress=False,
                       stages=stages)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["taps"] == {"skeleton": ["conv5", "conv6", "person_max", "fc7"],
                                "video": ["layer2", "layer3", "layer4"]}  # conv4, layer1 not stored; no alias file
    assert manifest["bytes"] == (48 + 24) * (128 + 256 + 1024 + 512 + 8 + 16 + 32) * 4
    assert not (path / "train" / "video.layer1.npy").exists()
    source = load_cache(path, ["skeleton", "video"], ["train", "val"])
    assert isinstance(source.splits["train"]["x"][0], np.memmap)  # read in place, not copied
    selected = select_taps(source, *space.stage_indices(source.x_names, source.y_names))
    assert selected.x_dims == [128, 256, 1024, 512] and selected.y_dims == [8, 16, 32, 32]
    assert selected.splits["train"]["y"][2] is selected.splits["train"]["y"][3]  # the alias: the same array
    with torch.no_grad():
        taps = encoders["skeleton"].taps(datasets["val"].skeleton[:3])
    expected = encoders["skeleton"].pool(taps[3])  # person_max of the first three validation samples
    assert np.allclose(selected.splits["val"]["x"][2][:3], expected.numpy(), atol=1e-5)


def test_interrupted_cache_build_resumes_where_it_stopped(tmp_path, encoders, datasets):
    full = build_cache(tmp_path / "full", datasets, encoders, ["skeleton", "video"], batch_size=16, progress=False)
    fresh = {"train": NTUShaped(48, seed=1), "val": NTUShaped(24, seed=2)}
    target = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        build_cache(target, fresh, encoders, ["skeleton", "video"], batch_size=16, progress=False, stop_after=2)
    partial = tmp_path / "resumed.partial"
    assert not target.exists() and json.loads((partial / "progress.json").read_text())["done"] == {"train": 32}
    reads_before = fresh["train"].reads
    build_cache(target, fresh, encoders, ["skeleton", "video"], batch_size=16, progress=False)
    assert fresh["train"].reads - reads_before == 1 + 16  # the label probe + the 16 rows left; not all 48 again
    assert not partial.exists() and (target / "manifest.json").is_file()
    for name in ("train/skeleton.fc7.npy", "train/video.layer3.npy", "val/skeleton.conv5.npy", "train/labels.npy"):
        assert np.array_equal(np.load(full / name), np.load(target / name)), name


def test_search_on_ntu_shaped_features(tmp_path, encoders, datasets):
    space = ntu_space(video=encoders["video"], skeleton=encoders["skeleton"])
    space = SearchSpace(space.x_modality, space.y_modality, space.x_taps, space.y_taps, space.nonlinearities, 2,
                        space.aliases)
    path = build_cache(tmp_path / "c", datasets, encoders, ["skeleton", "video"], batch_size=24, progress=False,
                       stages=space_stages(space))
    cached = load_cache(path, ["skeleton", "video"], ["train", "val"])
    source = select_taps(cached, *space.stage_indices(cached.x_names, cached.y_names))
    train = TrainSettings(epochs=3, batch_size=8, inner_size=16, dropout=0.0, lr_max=1e-2)
    settings = SearchSettings(iterations=1, max_layers=2, samples=3, top=4,
                              surrogate={"encoding": "one_hot", "epochs": 2, "lr": 1e-3, "embed_size": 8,
                                         "hidden_size": 8})
    state = SearchState.open(tmp_path / "s", {"strategy": "mfas", "data": "ntu-synthetic", "seed": 0,
                                              "settings": {}, "space": {}})

    def train_fn(codes, seed, bank):
        return train_architecture(codes, source, space.nonlinearities, CLASSES, train, seed, bank)

    top = Search(space, settings, state, train_fn, seed=0, progress=lambda _: None).run()
    assert len(state.record["evaluations"]) == 32 + 3  # every one-layer architecture, then K = 3 two-layer ones
    # the class is in the skeleton: the best architecture beats chance (0.25) clearly
    assert top[0]["score"] >= 0.75
    annotate_top(state.record, source.x_dims, source.y_dims, 16, 256)
    assert all(t["fusion_params"] == fusion_layer_params(t["codes"], [128, 256, 1024, 512], [8, 16, 32, 32], 256)
               for t in state.record["top"])


def test_found_architecture_reads_the_alias_tap(encoders, datasets):
    arch = "skeleton.fc7+video.layer4_pooled/relu | skeleton.conv6+video.layer2/sigmoid"
    net = MFASNet(dict(encoders), CLASSES, arch=arch, taps=NTU_SPACE["taps"], aliases=NTU_SPACE["aliases"],
                  inner_size=8)
    assert net.arch == arch and net.fusion.layers[0].in_features == 512 + 32
    assert net.fusion.layers[1].in_features == 256 + 8 + 8
    batch = {"video": datasets["val"].video[:2], "skeleton": datasets["val"].skeleton[:2]}
    out = net.eval()(batch)
    assert out.logits.shape == (2, CLASSES) and torch.isfinite(out.logits).all()


def test_search_data_settings(tmp_path):
    """search=mfas_ntu reads the MFAS search split and no training crop (the cache takes every split's
    evaluation view); a reader key the data does not have is a one-line error."""
    from repro.data.ntu_names import PROTOCOLS
    from repro.search.run import compose_search

    cfg = compose_search(["data=ntu_skeleton", "backbone=ntu_resnet", "search=mfas_ntu", f"paths.log_dir={tmp_path}"])
    assert cfg.data.reader.protocol == "mfas_search" and cfg.data.reader.temporal_crop is None
    assert (cfg.search.iterations, cfg.search.max_layers, cfg.search.samples) == (3, 4, 15)
    assert (cfg.search.train.epochs, cfg.search.train.batch_size, cfg.search.train.inner_size) == (3, 20, 16)
    assert cfg.search.cache_batch_size == 16 and cfg.search.cache_device == "auto"
    assert PROTOCOLS["mfas_search"].train == (1, 4, 8, 13, 15, 17, 19) and PROTOCOLS["mfas_search"].val == (2, 5, 9, 14)
    from repro.data.ntu_names import split_names

    names = ["S001C001P016R001A001", "S001C001P017R001A001", "S001C001P005R001A001", "S001C001P003R001A001"]
    assert split_names(names, "mfas_search") == {"train": ["S001C001P017R001A001"], "val": ["S001C001P005R001A001"],
                                                 "test": ["S001C001P003R001A001"]}  # subject 16: not searched on
    assert "S001C001P016R001A001" in split_names(names, "mfas")["train"]
    with pytest.raises(ConfigError, match="search.reader sets"):
        compose_search(["data=ntu_skeleton", "search=mfas_ntu", "+search.reader.frames=8"])


def test_cache_size_on_disk_for_ntu60_cs():
    """The number docs/ntu.md states: every NTU-60 CS sample (56,880 − the 302 without skeletons = 56,578)
    × the stored widths (skeleton 128 + 256 + 1024 + 512, RGB 512 + 1024 + 2048) × 4 bytes."""
    layout = {"modalities": ["skeleton", "video"], "splits": {"all": 56_880 - 302},
              "stages": {"skeleton": [["conv5", 128], ["conv6", 256], ["person_max", 1024], ["fc7", 512]],
                         "video": [["layer2", 512], ["layer3", 1024], ["layer4", 2048]]}}
    assert cache_bytes(layout) == 56_578 * 5_504 * 4 == 1_245_621_248  # 1.25 GB (1.16 GiB)
    assert cache_layout({"train": [0] * 3}, {"skeleton": HCN()}, ["skeleton"], {"skeleton": ["fc7"]})["stages"] == {
        "skeleton": [["fc7", 512]]}


def test_bench_script_runs_at_a_tiny_size(tmp_path):
    """scripts/bench_mfas_ntu.py at 120/40 rows, one architecture per depth: the record's medians, projection (the
    paper's 197 architectures) and widths."""
    from tests.conftest import load_script

    bench = load_script("bench_mfas_ntu")
    assert bench.main(["--train-rows", "120", "--val-rows", "40", "--per-depth", "1", "--epochs", "1",
                       "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "mfas_ntu.json").read_text())
    med = {int(k): v for k, v in record["median_s_per_architecture"].items()}
    assert sorted(med) == [1, 2, 3, 4] and all(v > 0 for v in med.values())
    assert record["projection"]["search_hours"] == pytest.approx(
        (32 * med[1] + 15 * (med[2] + med[3] + med[4]) + 120 * med[4]) / 3600, abs=2e-3)
    assert [a["steps"] for a in record["architectures"]] == [6] * 4  # ceil(120 / 20) batches, 1 epoch
    assert record["cache_bytes"] == 160 * 5_504 * 4 and record["synthetic"] is True


def test_unfrozen_encoders_join_the_cosine_schedule():
    """FreezeEncoders adds the encoders' parameter group after phase 1; the NTU preset's CosineAnnealingWarmRestarts
    must then schedule that group too (torch's step refuses a group it has no base lr for)."""
    from types import SimpleNamespace

    from repro.models.fusion.mfas import FreezeEncoders

    fusion, encoder = nn.Linear(4, 2), nn.Linear(4, 4)
    optimizer = torch.optim.Adam(fusion.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=5, T_mult=2, eta_min=1e-6)
    optimizer.add_param_group({"params": list(encoder.parameters()), "lr": 1e-3})  # what BaseFinetuning does
    module = SimpleNamespace(_trainer=SimpleNamespace(lr_scheduler_configs=[SimpleNamespace(scheduler=scheduler)]))
    FreezeEncoders(lr_ratio=0.5).extend_schedulers(module, optimizer)
    scheduler.step()
    assert scheduler.base_lrs == [1e-3, 5e-4]
    assert optimizer.param_groups[1]["lr"] == pytest.approx(1e-6 + (5e-4 - 1e-6) * (1 + np.cos(np.pi / 5)) / 2)


def test_table5_rows_read_one_search_record_per_rank(tmp_path):
    """MFAS Table 5's rows: the search row (rank 1) and three `records:` rows over the same search.json, each reading
    its columns under `at: top.k` (repro.tables.aggregation.row_view); a rank the search did not find stays empty."""
    from repro.runs import SEARCH_SCHEMA
    from repro.tables import render_table
    from repro.tables.config import load_table
    from repro.tables.planning import expected_identity

    table = load_table("mfas_t5")
    identity = expected_identity(table, "Network 0 (rank 1)", {"seed": 0}, out_root=tmp_path)
    top = [{"rank": k + 1, "arch": f"a{k}", "codes": codes, "score": 0.9 - k / 100, "layers": len(codes),
            "fusion_params": expected} for k, (codes, expected) in enumerate(TABLE5[:3])]
    record = {"schema": SEARCH_SCHEMA, "status": "completed", "synthetic": True, "debug": False, "identity": identity,
              "top": top, "versions": {"git_commit": "abc1234"}}
    run_dir = tmp_path / "tables" / "mfas_t5" / "runs" / "network-0-rank-1" / "seed_0"
    run_dir.mkdir(parents=True)
    (run_dir / "search.json").write_text(json.dumps(record))
    md = render_table("mfas_t5", out_root=tmp_path)
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| Network")}
    assert "| 0.9000 | 0.9327 | 2229248 | 2229248 |" in lines["Network 0 (rank 1)"]
    assert "| 0.8800 | 0.9301 | 1737728 | 1737728 |" in lines["Network 2 (rank 3)"]
    assert "2163712" in lines["Network 3 (rank 4)"] and "| 0 |" in lines["Network 3 (rank 4)"]  # n = 0: no rank 4


def test_search_reads_the_eval_view_of_the_ntu_fixture(tmp_path):
    """On the SYNTHETIC data=ntu fixture: the search's splits are the MFAS search split (fixture subjects 1, 4, 8, 13
    train; 2, 5 dev), through data.transforms' eval pipelines (ImageNet normalisation, as the encoders were trained)
    and without the training crop: reading a training sample twice gives the same tensors."""
    from repro.data.registry import write_fixture
    from repro.search.run import compose_search, search_datasets

    write_fixture("ntu", tmp_path / "data")
    cfg = compose_search(["data=ntu", "backbone=ntu_resnet", "search=mfas_ntu", f"paths.data_dir={tmp_path / 'data'}",
                          "data.reader.frame_size=32", "data.num_workers=0", f"paths.log_dir={tmp_path}"])
    datasets, labels, synthetic = search_datasets(cfg, [], ["skeleton", "video"])
    assert synthetic and {s: len(d) for s, d in datasets.items()} == {"train": 32, "val": 16} and len(labels) == 32
    a, b = datasets["train"][5], datasets["train"][5]
    assert a["video"].shape == (8, 3, 32, 32) and torch.equal(a["video"], b["video"])
    assert torch.equal(a["skeleton"], b["skeleton"])
    assert a["video"].abs().max() < 5  # normalised (raw frames are 0..255)


def test_a_subset_of_taps_reads_its_own_stages():
    """Regression (MM-IMDB's 8 of VGG's 12 taps): codes index the space's taps, so the source must be selected by
    name — code 0 of a space over stages [b, d] reads stage b's features, not the encoder's first stage a."""
    from repro.search.features import CachedFeatures

    arrays = {name: np.full((6, 2), float(k), dtype=np.float32) for k, name in enumerate("abcd")}
    source = CachedFeatures({"train": {"x": [arrays[n] for n in "abcd"], "y": [arrays["a"]], "labels": np.zeros(6)}},
                            x_names=list("abcd"), y_names=["a"])
    space = SearchSpace.from_encoders({"x": Widths("abcd", [2] * 4), "y": Widths("a", [2])}, ["x", "y"],
                                      taps={"x": ["b", "d"]})
    selected = select_taps(source, *space.stage_indices(source.x_names, source.y_names))
    x, _, _ = next(selected.batches("train", 3))
    assert selected.x_names == ["b", "d"] and x[0][0, 0].item() == 1.0 and x[1][0, 0].item() == 3.0


@pytest.mark.slow
def test_mfas_t5_smoke_search_on_the_ntu_fixture(tmp_path):
    """`make table-mfas-t5 SMOKE=1`: search.py on the SYNTHETIC data=ntu fixture (pre-training both encoders, the
    feature cache, a 2-step search); the record states the space with its alias, the cache size and every top
    architecture's fusion parameters; found.yaml's commands null the preset's default architecture. ~21 s on CPU."""
    from repro.runs import read_search_record
    from repro.tables import render_table, run_table

    assert run_table("mfas_t5", smoke=True, out_root=tmp_path) == 0
    search_dir = tmp_path / "tables" / "mfas_t5-smoke" / "runs" / "network-0-rank-1" / "seed_0"
    record = read_search_record(search_dir)
    assert record["synthetic"] is True and record["space"]["aliases"] == [["video", "layer4_pooled", "layer4"]]
    reader = record["config"]["data"]["reader"]
    assert reader["protocol"] == "mfas_search" and reader["temporal_crop"] is None  # search.reader, via search.py
    assert record["timing"]["cache"]["bytes"] == (32 + 16) * 5_504 * 4  # mfas_search split of the fixture
    assert len(record["evaluations"]) == 32 + 4
    assert all(t["fusion_params"] == fusion_layer_params(t["codes"], [128, 256, 1024, 512],
                                                         [512, 1024, 2048, 2048], 256) for t in record["top"])
    assert "fusion.arch=null" in (search_dir / "found.yaml").read_text()
    md = render_table("mfas_t5", smoke=True, out_root=tmp_path)
    assert "SYNTHETIC" in md and "| 2229248 |" in md


def test_found_architecture_without_a_search_space_names_the_backbone(encoders):
    """data=ntu's default backbone (I3D) has no search_space: fusion=mfas_found says which backbone to pick."""
    from repro.config import compose_train

    cfg = compose_train(["data=ntu", "fusion=mfas_found"])
    assert cfg.fusion.net.nonlinearities is None and cfg.fusion.net.modalities is None
    with pytest.raises(SearchSpaceError, match="backbone=ntu_resnet") as err:
        MFASNet(dict(encoders), CLASSES, arch=cfg.fusion.arch, nonlinearities=None)
    assert "\n" not in str(err.value)
    assert compose_train(["data=ntu", "fusion=mfas_found", "backbone=ntu_resnet"]).fusion.net.nonlinearities == [
        "relu", "sigmoid"]
