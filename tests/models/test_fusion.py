"""Fusion networks on the AV-MNIST LeNets: forward/backward, registry, and each method's equations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from repro.models.backbones.lenet import LeNet
from repro.models.fusion import REGISTRY
from repro.models.fusion.centralnet import CentralNet
from repro.models.fusion.gmu import GMUNet
from repro.models.fusion.late import LateAverageNet, LateProductNet, MultiplicativeCombinationNet
from repro.models.fusion.mcbp import CountSketch, MCBPNet, compact_bilinear
from repro.models.fusion.msaf import MSAFNet
from repro.models.fusion.unimodal import UnimodalNet

POINTS = [{"image": "conv2", "audio": "conv4"}, {"image": "conv3", "audio": "conv5"}]
HPARAMS = {
    "unimodal": {"modality": "image"},
    "concat": {"hidden": [16]},
    "gmu": {"hidden": 16},
    "centralnet": {"points": [{"image": "conv1", "audio": "conv1"}, *POINTS], "central_layer": "conv1d"},
    "mcbp": {"output_dim": 256},
    "mmtm": {"points": POINTS},
    "msaf": {"points": POINTS, "block_channels": [8, 16], "block_dropout": 0.2},
}
HAS_FUSION_PARAMS = {"concat", "two_stream", "gmu", "centralnet", "mcbp", "mmtm", "msaf"}


def encoders():
    return {"image": LeNet(1, 8, 3, 10), "audio": LeNet(1, 8, 5, 10)}


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(4, 1, 28, 28, generator=g),
        "audio": torch.randn(4, 1, 112, 112, generator=g),
        "label": torch.randint(10, (4,), generator=g),
    }


def test_registry_names():
    assert set(REGISTRY) == {
        "unimodal", "late_avg", "late_product", "multiplicative", "concat", "two_stream",
        "gmu", "centralnet", "mcbp", "mmtm", "msaf",
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_forward_backward(name, batch):
    torch.manual_seed(0)
    net = REGISTRY[name](encoders=encoders(), num_classes=10, **HPARAMS.get(name, {}))
    net.train()
    out = net(batch)
    assert out.logits.shape == (4, 10)
    assert torch.isfinite(out.logits).all()
    loss, parts = net.compute_loss(out, batch["label"], F.cross_entropy)
    assert torch.isfinite(loss) and "task" in parts
    loss.backward()
    fusion = net.fusion_parameters()
    if name in HAS_FUSION_PARAMS:
        assert fusion, f"{name} should have fusion parameters"
        grads = [p.grad for p in fusion if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    else:
        assert fusion == []
    enc_grads = [p.grad for p in net.encoders.parameters() if p.grad is not None]
    assert enc_grads and all(torch.isfinite(g).all() for g in enc_grads)
    net.eval()
    with torch.no_grad():
        assert torch.isfinite(net(batch).logits).all()


def test_unimodal_drops_other_encoders(batch):
    encs = encoders()
    net = UnimodalNet(encoders=encs, num_classes=10, modality="audio")
    assert net.modalities == ["audio"]
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in encs["audio"].parameters())
    out = net({"audio": batch["audio"]})  # no image needed
    assert torch.equal(out.logits, encs["audio"](batch["audio"]))
    with pytest.raises(KeyError):
        UnimodalNet(encoders=encoders(), num_classes=10, modality="video")


def test_late_average_is_mean_of_unimodal_outputs(batch):
    torch.manual_seed(0)
    encs = encoders()
    net = LateAverageNet(encoders=encs, num_classes=10).eval()
    with torch.no_grad():
        zi, za = encs["image"](batch["image"]), encs["audio"](batch["audio"])
        out = net(batch)
        assert torch.allclose(out.logits.exp(), (zi.softmax(-1) + za.softmax(-1)) / 2, atol=1e-6)
        assert torch.allclose(out.logits.exp().sum(-1), torch.ones(4), atol=1e-5)
        net_l = LateAverageNet(encoders=encs, num_classes=10, space="logits").eval()
        assert torch.allclose(net_l(batch).logits, (zi + za) / 2, atol=1e-6)


def test_late_product_is_normalised_product(batch):
    torch.manual_seed(0)
    encs = encoders()
    net = LateProductNet(encoders=encs, num_classes=10).eval()
    with torch.no_grad():
        p = encs["image"](batch["image"]).softmax(-1) * encs["audio"](batch["audio"]).softmax(-1)
        assert torch.allclose(net(batch).logits.exp(), p / p.sum(-1, keepdim=True), atol=1e-6)


def test_multiplicative_loss_by_hand():
    net = MultiplicativeCombinationNet(encoders=encoders(), num_classes=3, beta=0.5)
    # one sample, M = 3 modalities, K = 3 classes, true class 1
    probs = torch.tensor([[[0.2, 0.5, 0.3], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]]])
    logits = probs.log().requires_grad_(True)
    target = torch.tensor([1])
    p_y = [0.5, 0.8, 0.3]
    exponent = 0.5 / 2  # beta / (M - 1)
    q = [(1 - 0.8) * (1 - 0.3), (1 - 0.5) * (1 - 0.3), (1 - 0.5) * (1 - 0.8)]
    expected = -sum(qi**exponent * math.log(pi) for qi, pi in zip(q, p_y))
    loss = net.multiplicative_loss(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # q is a constant: the gradient w.r.t. modality m's logits is q_m^e * (p_m - onehot)
    loss.backward()
    onehot = F.one_hot(target, 3).float()
    for m in range(3):
        assert torch.allclose(logits.grad[0, m], q[m] ** exponent * (probs[0, m] - onehot[0]), atol=1e-5)


def test_multiplicative_uses_its_own_loss(batch):
    net = MultiplicativeCombinationNet(encoders=encoders(), num_classes=10, beta=0.3)
    out = net(batch)
    loss, parts = net.compute_loss(out, batch["label"], lambda *_: torch.tensor(1e9))
    assert loss.item() == pytest.approx(net.multiplicative_loss(out.extras["modality_logits"], batch["label"]).item())
    assert torch.allclose(out.logits.exp().sum(-1), torch.ones(4), atol=1e-5)


def test_gmu_gates_in_unit_interval_and_sum(batch):
    net = GMUNet(encoders=encoders(), num_classes=10, hidden=16)
    out = net(batch)
    z = out.extras["gmu_gates"]
    assert z.shape == (4, 2, 16)
    assert ((z > 0) & (z < 1)).all()
    assert torch.allclose(z.sum(dim=1), torch.ones(4, 16))  # bimodal form: z and 1 - z
    multi = GMUNet(encoders=encoders(), num_classes=10, hidden=16, bimodal_gate=False)
    z = multi(batch).extras["gmu_gates"]
    assert z.shape == (4, 2, 16) and ((z > 0) & (z < 1)).all()


def test_gmu_equation(batch):
    net = GMUNet(encoders=encoders(), num_classes=10, hidden=8).eval()
    with torch.no_grad():
        xi = net.encoders["image"].embed(batch["image"])
        xa = net.encoders["audio"].embed(batch["audio"])
        hi, ha = torch.tanh(net.project["image"](xi)), torch.tanh(net.project["audio"](xa))
        z = torch.sigmoid(net.gate(torch.cat([xi, xa], 1)))
        expected = net.classifier(z * hi + (1 - z) * ha)
        assert torch.allclose(net(batch).logits, expected, atol=1e-6)


def test_count_sketch_convolution_is_sketch_of_outer_product():
    """Psi_1(x) * Psi_2(y) (circular convolution) == count sketch of x (x) y with h(i,j) = h1(i)+h2(j) mod d."""
    g = torch.Generator().manual_seed(0)
    n1, n2, d = 7, 5, 16
    s1, s2 = CountSketch(n1, d, g), CountSketch(n2, d, g)
    x, y = torch.randn(3, n1, generator=g), torch.randn(3, n2, generator=g)
    conv = compact_bilinear([s1(x), s2(y)])
    outer = (x[:, :, None] * y[:, None, :]).reshape(3, -1)
    h = ((s1.h[:, None] + s2.h[None, :]) % d).reshape(-1)
    s = (s1.s[:, None] * s2.s[None, :]).reshape(-1)
    direct = torch.zeros(3, d).index_add(1, h, outer * s)
    assert torch.allclose(conv, direct, atol=1e-5)


def test_count_sketch_preserves_outer_product_inner_products():
    """E[<Psi(x (x) y), Psi(x' (x) y')>] = <x, x'><y, y'> over random hashes (Pham & Pagh; Gao et al.)."""
    g = torch.Generator().manual_seed(0)
    n, d, draws = 32, 64, 400
    x, xp = torch.randn(n, generator=g), torch.randn(n, generator=g)
    y, yp = torch.randn(n, generator=g), torch.randn(n, generator=g)
    xp = xp + x  # correlated pairs: a clearly non-zero target
    yp = yp + y
    target = (x @ xp) * (y @ yp)
    estimates = []
    for _ in range(draws):
        s1, s2 = CountSketch(n, d, g), CountSketch(n, d, g)
        a = compact_bilinear([s1(x[None]), s2(y[None])])
        b = compact_bilinear([s1(xp[None]), s2(yp[None])])
        estimates.append((a * b).sum())
    est = torch.stack(estimates)
    stderr = est.std() / math.sqrt(draws)
    assert abs(est.mean() - target) < 4 * stderr + 0.02 * abs(target)
    # and the single-draw estimate is unbiased but noisy: its spread is much larger than the mean's error
    assert est.std() > stderr


def test_mcbp_feature_is_unit_norm_and_buffers_fixed(batch):
    a = MCBPNet(encoders=encoders(), num_classes=10, output_dim=128, seed=3)
    b = MCBPNet(encoders=encoders(), num_classes=10, output_dim=128, seed=3)
    assert torch.equal(a.sketch["image"].h, b.sketch["image"].h)
    assert "sketch.image.h" in a.state_dict()
    emb = {m: a.encoders[m].embed(batch[m]) for m in a.modalities}
    phi = a.pooled(emb)
    assert phi.shape == (4, 128)
    assert torch.allclose(phi.norm(dim=1), torch.ones(4), atol=1e-5)


def test_centralnet_multitask_loss_and_central_prediction(batch):
    net = CentralNet(encoders=encoders(), num_classes=10, points=HPARAMS["centralnet"]["points"],
                     central_layer="conv1d")  # fmt: skip
    out = net(batch)
    # widths: point 0 max(8, 8) = 8; point 1 max(8, 16, 64) = 64; point 2 max(64, 32, 128) = 128
    assert net.widths == [8, 64, 128]
    assert out.extras["central2_hidden"].shape == (4, 128)
    assert torch.allclose(out.logits, net.classifier(out.extras["central2_hidden"]))
    loss, parts = net.compute_loss(out, batch["label"], F.cross_entropy)
    ml = out.extras["modality_logits"]
    expected = (F.cross_entropy(out.logits, batch["label"]) + F.cross_entropy(ml[:, 0], batch["label"])
                + F.cross_entropy(ml[:, 1], batch["label"]))  # fmt: skip
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(parts) == {"task", "unimodal/image", "unimodal/audio"}
    lin = CentralNet(encoders=encoders(), num_classes=10, points=POINTS, central_layer="linear")
    assert lin(batch).logits.shape == (4, 10)


def test_centralnet_weighted_sum_first_point(batch):
    """z_0 = sum_m alpha_m * pad(pool(tap_m)); h_0 = ReLU(layer_0(z_0))."""
    net = CentralNet(encoders=encoders(), num_classes=10, points=[{"image": "conv2", "audio": "conv3"}],
                     central_layer="linear").eval()  # fmt: skip
    with torch.no_grad():
        net.alpha_modal[0]["image"].fill_(0.25)
        net.alpha_modal[0]["audio"].fill_(2.0)
        ti = net.encoders["image"].taps(batch["image"])[1]
        ta = net.encoders["audio"].taps(batch["audio"])[2]
        z = 0.25 * F.pad(net.encoders["image"].pool(ti), (0, 16)) + 2.0 * net.encoders["audio"].pool(ta)
        out = net(batch)
        assert torch.allclose(out.extras["central0_hidden"], F.relu(net.central[0](z)), atol=1e-6)


def test_msaf_net_records_attention_and_sums_logits(batch):
    net = MSAFNet(encoders=encoders(), num_classes=10, points=POINTS, block_channels=[8, 16]).eval()
    out = net(batch)
    # point 0: image 16 ch (2 blocks of 8) + audio 64 ch (8 blocks); point 1: 32/16 = 2 + 128/16 = 8 blocks
    assert out.extras["msaf0_attention"].shape == (4, 10, 8)
    assert out.extras["msaf1_attention"].shape == (4, 10, 16)
    assert torch.allclose(out.extras["msaf1_attention"].sum(1), torch.ones(4, 16), atol=1e-6)
    assert torch.allclose(out.logits, out.extras["modality_logits"].sum(1), atol=1e-6)


def test_msaf_net_lambda_one_equals_late_sum(batch):
    """With lambda = 1 every MSAF is the identity: the network is the sum of the unimodal networks."""
    encs = encoders()
    net = MSAFNet(encoders=encs, num_classes=10, points=POINTS, block_channels=8, lowest_atten=1.0).eval()
    with torch.no_grad():
        expected = encs["image"](batch["image"]) + encs["audio"](batch["audio"])
        assert torch.allclose(net(batch).logits, expected, atol=1e-5)


def test_msaf_net_rejects_mismatched_hparams():
    with pytest.raises(ValueError):
        MSAFNet(encoders=encoders(), num_classes=10, points=POINTS, block_channels=[8, 16, 32])
