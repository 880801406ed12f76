"""CTC-aligned EF-LSTM (repro.models.sequence.ctc; MulT's CTC baselines, Graves et al. 2006 CTC): the aligner's
probability-weighted sum, padding, the CTC loss against hand-computed values, a learnable SYNTHETIC alignment, the
network's losses and config errors. All inputs are SYNTHETIC tensors (no reproduction)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from repro.config import compose_train
from repro.models.backbones.sequence_features import SequenceFeatures
from repro.models.sequence.ctc import CTCAligner, CTCEarlyFusionLSTM, ctc_alignment_loss

DIMS = {"text": 6, "audio": 4, "vision": 3}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def left_mask(lengths, steps) -> torch.Tensor:
    """(B, steps) True on the last `lengths[b]` steps (the CMU releases left-pad)."""
    return torch.arange(steps).unsqueeze(0) >= steps - torch.tensor(lengths).unsqueeze(1)


def make_net(dims=DIMS, target_steps=5, **kw) -> CTCEarlyFusionLSTM:
    encoders = nn.ModuleDict({m: SequenceFeatures(in_features=d) for m, d in dims.items()})
    return CTCEarlyFusionLSTM(encoders, num_classes=2, target_steps=target_steps, hidden=8, mlp_hidden=[8], **kw)


def make_batch(steps=None, lengths=None, dims=DIMS) -> dict:
    steps = steps or {"text": 5, "audio": 12, "vision": 9}
    lengths = lengths or {"text": [5, 3, 2], "audio": [12, 7, 1], "vision": [9, 9, 4]}
    batch = {"label": torch.tensor([0, 1, 1])}
    for m, d in dims.items():
        mask = left_mask(lengths[m], steps[m])
        batch[m] = torch.randn(3, steps[m], d) * mask.unsqueeze(-1)  # zeros at the pads, as released
        batch[f"{m}_mask"] = mask
    return batch


class FixedScores(nn.Module):
    """Stands in for the aligner's LSTM: returns given scores (B, T_s, C)."""

    def __init__(self, scores: torch.Tensor):
        super().__init__()
        self.scores = scores

    def forward(self, x, mask):
        return self.scores, None


# Frame probabilities over (blank, position 1, position 2) and a 2-d source of 3 frames.
PROBS = torch.tensor([[[0.2, 0.7, 0.1], [0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]])
SOURCE = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]]])


def fixed_aligner() -> CTCAligner:
    aligner = CTCAligner(in_features=2, target_steps=2)
    aligner.lstm = FixedScores(PROBS.log())  # softmax(log p) = p
    return aligner


def test_pseudo_aligned_output_is_the_probability_weighted_sum():
    aligned, scores, weights = fixed_aligner()(SOURCE, torch.ones(1, 3, dtype=torch.bool), 2)
    # position 1: 0.7*(1,0) + 0.25*(0,2) + 0.1*(3,1); position 2: 0.1*(1,0) + 0.25*(0,2) + 0.8*(3,1)
    assert torch.allclose(aligned, torch.tensor([[[1.0, 0.6], [2.5, 1.3]]]), atol=1e-6)
    assert torch.allclose(weights, PROBS[..., 1:].transpose(1, 2), atol=1e-6)
    assert scores.shape == (1, 3, 3)


def test_padded_source_frames_get_zero_weight():
    mask = torch.tensor([[False, True, True]])  # frame 0 is left padding
    aligned, _, weights = fixed_aligner()(SOURCE, mask, 2)
    assert torch.all(weights[..., 0] == 0)
    assert torch.allclose(aligned, torch.tensor([[[0.3, 0.6], [2.4, 1.3]]]), atol=1e-6)


def test_real_aligner_ignores_what_the_padding_holds():
    aligner = CTCAligner(in_features=4, target_steps=3)
    x = torch.randn(2, 6, 4)
    mask = left_mask([4, 2], 6)
    noisy = torch.where(mask.unsqueeze(-1), x, torch.randn_like(x) * 10)
    a, scores_a, w = aligner(x, mask, 3)
    b, scores_b, _ = aligner(noisy, mask, 3)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.all(w[~mask.unsqueeze(1).expand_as(w)] == 0)
    assert torch.allclose(ctc_alignment_loss(scores_a, mask, left_mask([3, 2], 3)),
                          ctc_alignment_loss(scores_b, mask, left_mask([3, 2], 3)))


def test_ctc_loss_matches_hand_computed_paths():
    # Uniform scores over (blank, pos 1): 2 frames emit "1" by the paths 11, b1, 1b -> p = 3/4.
    real = torch.ones(1, 2, dtype=torch.bool)
    loss = ctc_alignment_loss(torch.zeros(1, 2, 2), real, real[:, :1])
    assert loss.item() == pytest.approx(-math.log(0.75), rel=1e-5)
    # Left padding on both sides: 3 source steps, 2 real; 2 text steps, only step 2 real -> target = position 2.
    # Uniform over 3 classes: paths 22, b2, 2b -> 3/9. The padded frame's extreme scores must not matter.
    scores = torch.zeros(1, 3, 3)
    scores[0, 0] = torch.tensor([50.0, -50.0, 0.0])
    loss = ctc_alignment_loss(scores, torch.tensor([[False, True, True]]), torch.tensor([[False, True]]))
    assert loss.item() == pytest.approx(math.log(3), rel=1e-5)


def test_ctc_reductions_and_infeasible_samples():
    scores = torch.zeros(2, 4, 4, requires_grad=True)
    source = left_mask([4, 1], 4)  # sample 2: 1 real frame for 3 real text steps -> impossible
    target = left_mask([1, 3], 3)
    summed = ctc_alignment_loss(scores, source, target, "sum")
    summed.backward()
    assert torch.isfinite(summed) and summed > 0 and torch.isfinite(scores.grad).all()
    assert torch.all(scores.grad[1] == 0)  # zero_infinity: no gradient from the impossible sample
    assert ctc_alignment_loss(scores, source, target, "batch_mean").item() == pytest.approx(summed.item() / 2)
    # PyTorch's mean divides each sample by its target length (1 here) before averaging.
    assert ctc_alignment_loss(scores, source, target, "mean").item() == pytest.approx(summed.item() / 2)
    with pytest.raises(ValueError, match="ctc_reduction"):
        ctc_alignment_loss(scores, source, target, "avg")


def test_ctc_loss_decreases_on_a_learnable_alignment():
    """SYNTHETIC: frame features one-hot-code the text position they belong to (2-3 frames per word)."""
    generator = torch.Generator().manual_seed(0)
    words, batch = 4, 8
    frames, masks = [], []
    for _ in range(batch):
        spans = torch.randint(2, 4, (words,), generator=generator)
        codes = torch.repeat_interleave(torch.eye(words), spans, dim=0)
        pad = 12 - codes.shape[0]
        frames.append(torch.cat([torch.zeros(pad, words), codes]))
        masks.append(torch.arange(12) >= pad)
    x, source = torch.stack(frames), torch.stack(masks)
    target = torch.ones(batch, words, dtype=torch.bool)
    aligner = CTCAligner(in_features=words, target_steps=words, hidden=16)
    optimizer = torch.optim.Adam(aligner.parameters(), lr=0.03)
    losses = []
    for _ in range(40):
        loss = ctc_alignment_loss(aligner(x, source, words)[1], source, target, "batch_mean")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0]
    # Greedy CTC decoding (best class per real frame, repeats merged, blanks dropped) now reads 1..words in every
    # sample. (Where each position spikes is not fixed by CTC: a unidirectional LSTM may emit late.)
    scores = aligner(x, source, words)[1]
    for b in range(batch):
        best = scores[b][source[b]].argmax(dim=-1).tolist()
        decoded = [c for i, c in enumerate(best) if c != 0 and (i == 0 or c != best[i - 1])]
        assert decoded == list(range(1, words + 1))


def test_network_shapes_losses_and_eval_mode():
    net = make_net()
    batch = make_batch()
    out = net(batch)
    assert out.logits.shape == (3, 2)
    assert out.extras["alignment_audio"].shape == (3, 5, 12)
    assert out.extras["alignment_vision"].shape == (3, 5, 9)
    assert set(out.aux_losses) == {"ctc"} and torch.isfinite(out.aux_losses["ctc"]) and out.aux_losses["ctc"] > 0
    loss, parts = net.compute_loss(out, batch["label"], nn.functional.cross_entropy)
    loss.backward()
    for m in ("audio", "vision"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.aligners[m].parameters())
    assert set(parts) == {"task", "ctc"}
    net.eval()
    assert net(batch).aux_losses == {}  # val/loss = task loss, as the released code selects on
    net.ctc_in_eval = True
    assert "ctc" in net(batch).aux_losses


def test_ctc_weight_scales_and_zero_disables():
    batch = make_batch()
    torch.manual_seed(1)
    one = make_net(ctc_weight=1.0)(batch).aux_losses["ctc"]
    torch.manual_seed(1)
    half = make_net(ctc_weight=0.5)(batch).aux_losses["ctc"]
    assert half.item() == pytest.approx(0.5 * one.item(), rel=1e-5)
    assert make_net(ctc_weight=0.0)(batch).aux_losses == {}


def test_padded_text_steps_do_not_change_the_output():
    net = make_net().eval()
    batch = make_batch()
    noisy = dict(batch)
    for m in DIMS:
        pads = ~batch[f"{m}_mask"].unsqueeze(-1)
        noisy[m] = batch[m] + pads * torch.randn_like(batch[m]) * 5
    assert torch.allclose(net(batch).logits, net(noisy).logits, atol=1e-5)


def test_config_errors_are_one_line():
    with pytest.raises(ValueError, match="target='text'") as err:
        make_net(dims={"audio": 4, "vision": 3})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="besides"):
        make_net(dims={"text": 6})
    with pytest.raises(ValueError, match="target_steps"):
        make_net(target_steps=None)
    with pytest.raises(ValueError, match="ctc_reduction"):
        make_net(ctc_reduction="avg")
    with pytest.raises(ValueError, match="target_steps") as err:
        make_net(target_steps=3)(make_batch())  # 5 text steps > 3 positions
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("data", ["mosi_unaligned", "mosei_unaligned", "iemocap_unaligned"])
def test_presets_set_the_text_length(data, tmp_path):
    cfg = compose_train([f"data={data}", "fusion=ctc_ef_lstm"], output_dir=tmp_path, data_dir=tmp_path)
    assert cfg.fusion.net.target_steps == cfg.data.modalities.text[0]
