"""FE2E (src/repro/models/e2e/, mesm.txt §4.2): CNN parameter counts and conv MACs against hand computations and
torch's FlopCounterMode, one forward/backward on a contract-shaped batch, learning on a fixed batch, the text branch
under `encoders.text` for the lr/10 group, modality subsets, bad input. Batches are random (SYNTHETIC); the text
encoder is the random tiny ALBERT."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from repro.models.complexity import batch_to
from repro.models.e2e import FE2E, AlbertText, FrameSpec
from repro.models.e2e.cnn import DenseFrameCNN
from repro.models.e2e.flops import dense_macs
from repro.optimization import matches, parameter_groups

torch.set_num_threads(1)

FACE = {"in_channels": 3, "size": [48, 48]}
CHUNK = {"in_channels": 1, "size": [128, 32]}


def vgg_block_params(a: int, b: int) -> int:
    """conv 3×3 a->b with bias, BN(b), conv 3×3 b->b with bias, BN(b)."""
    return (9 * a * b + b) + 2 * b + (9 * b * b + b) + 2 * b


def encoders() -> dict:
    return {"text": AlbertText(tiny=True), "audio": FrameSpec(**CHUNK), "video": FrameSpec(**FACE)}


def contract_batch(seed: int = 0, video_counts=(2, 1), audio_counts=(1, 2)) -> dict:
    """A random batch in the raw readers' contract shapes (SYNTHETIC)."""
    g = torch.Generator().manual_seed(seed)
    vc, ac = torch.tensor(video_counts), torch.tensor(audio_counts)
    b = len(video_counts)
    mask = torch.ones(b, 12, dtype=torch.bool)
    mask[0, 8:] = False
    return {"video": torch.randn(int(vc.sum()), 3, 48, 48, generator=g), "video_counts": vc,
            "audio": torch.randn(int(ac.sum()), 1, 128, 32, generator=g), "audio_counts": ac,
            "text": torch.randint(4, 260, (b, 12), generator=g) * mask, "text_mask": mask,
            "label": (torch.rand(b, 6, generator=g) < 0.3).float(), "id": [f"s{i}" for i in range(b)]}


def test_cnn_parameter_counts_match_the_hand_count():
    # stem conv 5×5 in->64 with bias + BN(64); VggBlocks 64->64 twice, 64->128, 128->256, 256->512
    blocks = vgg_block_params(64, 64) * 2 + vgg_block_params(64, 128) + vgg_block_params(128, 256) \
        + vgg_block_params(256, 512)
    assert blocks == 4_798_464
    for spec, stem in ((FACE, 25 * 3 * 64 + 64 + 128), (CHUNK, 25 * 64 + 64 + 128)):
        cnn = DenseFrameCNN(FrameSpec(**spec))
        assert sum(p.numel() for p in cnn.parameters()) == stem + blocks
    assert sum(p.numel() for p in DenseFrameCNN(FrameSpec(**FACE)).parameters()) == 4_803_456
    assert sum(p.numel() for p in DenseFrameCNN(FrameSpec(**CHUNK)).parameters()) == 4_800_256


def test_cnn_macs_match_the_hand_count_and_flop_counter():
    # face: stem 48²·25·3·64; at 24²: four 64->64 convs, 64->128, 128->128; at 12²: 128->256, 256->256; at 6²: ...
    face = 48 * 48 * 25 * 3 * 64 + 576 * 9 * (4 * 64 * 64 + 64 * 128 + 128 * 128) \
        + 144 * 9 * (128 * 256 + 256 * 256) + 36 * 9 * (256 * 512 + 512 * 512)
    chunk = 128 * 32 * 25 * 64 + 1024 * 9 * (4 * 64 * 64 + 64 * 128 + 128 * 128) \
        + 256 * 9 * (128 * 256 + 256 * 256) + 64 * 9 * (256 * 512 + 512 * 512)
    assert (face, chunk) == (478_199_808, 837_025_792)
    for spec, macs in ((FACE, face), (CHUNK, chunk)):
        spec = FrameSpec(**spec)
        assert dense_macs(spec) == macs
        cnn = DenseFrameCNN(spec).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            cnn(torch.zeros(1, spec.in_channels, *spec.size))
        assert counter.get_total_flops() == 2 * macs     # FlopCounterMode counts 2 × multiply-adds


def test_forward_backward_on_a_contract_batch_and_feature_flops():
    torch.manual_seed(0)
    net = FE2E(encoders(), 6)
    batch = contract_batch()
    out = net(batch)
    assert out.logits.shape == (2, 6) and out.extras["modality_logits"].shape == (2, 3, 6)
    expected = torch.tensor([2 * 478_199_808 + 837_025_792, 478_199_808 + 2 * 837_025_792], dtype=torch.float32)
    assert torch.equal(out.extras["feature_flops"], expected)
    F.binary_cross_entropy_with_logits(out.logits, batch["label"]).backward()
    assert all(p.grad is not None for p in net.parameters())
    # the fusion: a bias-free Linear over the three logit vectors
    assert net.fusion.weight.shape == (1, 3) and net.fusion.bias is None
    manual = (out.extras["modality_logits"] * net.fusion.weight.view(1, 3, 1)).sum(1)
    assert torch.allclose(out.logits, manual, atol=1e-6)


def losses_on_a_fixed_batch(net, batch: dict, steps: int = 6) -> list[float]:
    """The BCE loss before each of `steps` Adam steps (lr 1e-3) on one batch."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(net(batch).logits, batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(1)
    net = FE2E(encoders(), 6, trans_dropout=0.0)
    losses = losses_on_a_fixed_batch(net, contract_batch(1))
    assert losses[-1] < 0.6 * losses[0] and losses == sorted(losses, reverse=True), losses


def test_text_branch_is_the_encoders_text_parameter_group():
    net = FE2E(encoders(), 6)
    named = list(net.named_parameters())
    groups = parameter_groups(named, [{"match": "encoders.text", "lr_scale": 0.1}])
    text = {id(p) for p in groups[1]["params"]}
    albert_and_head = {id(p) for p in net.encoders["text"].parameters()}
    assert text == albert_and_head and any(matches("encoders.text", n) and "head" in n for n, _ in named)
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(named)


def test_modality_subset_and_bad_input():
    torch.manual_seed(2)
    net = FE2E(encoders(), 6, modalities=["video"])
    assert net.modalities == ["video"] and net.fusion is None
    batch = contract_batch(2)
    out = net(batch)
    assert torch.allclose(out.logits, out.extras["modality_logits"][:, 0])
    assert torch.equal(out.extras["feature_flops"], torch.tensor([2.0, 1.0]) * 478_199_808)
    with pytest.raises(ValueError, match="modalities"):
        FE2E(encoders(), 6, modalities=["vision"])
    batch["video_counts"] = torch.tensor([2, 2])
    with pytest.raises(ValueError, match="video_counts"):
        net(batch)


def test_batch_to_cuts_concatenated_frames_by_counts():
    batch = contract_batch(3, video_counts=(2, 3, 1), audio_counts=(1, 1, 4))
    first = batch_to(batch, 2)
    assert first["video"].shape[0] == 5 and first["audio"].shape[0] == 2 and first["text"].shape[0] == 2
    assert torch.equal(first["video"], batch["video"][:5])


def test_missing_albert_folder_is_one_line_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        AlbertText(tiny=False, model_dir=str(tmp_path / "albert-base-v2"))
    message = str(err.value)
    assert "albert-base-v2" in message and "save_pretrained" in message and "\n" not in message


def test_albert_loads_offline_from_a_saved_folder(tmp_path, monkeypatch):
    from transformers import AlbertConfig, AlbertModel

    from repro.models.e2e.text import TINY_ALBERT

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(3)
    saved = AlbertModel(AlbertConfig(**TINY_ALBERT), add_pooling_layer=False)
    saved.save_pretrained(tmp_path / "albert")
    text = AlbertText(tiny=False, model_dir=str(tmp_path / "albert"))
    assert text.hidden_size == 32
    assert torch.equal(text.albert.embeddings.word_embeddings.weight, saved.embeddings.word_embeddings.weight)
