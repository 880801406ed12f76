"""MESM's LF-LSTM (`lf_rnn`) and LF-Transformer (`lf_transformer`) baselines (repro.models.sequence.lf_baselines):
parameter counts of the authors' sizes computed by hand, the weighted late fusion, padding handled by masks (default)
or as the authors' code (quirk_padding), and learning on the SYNTHETIC HCF fixture with a plain BCEWithLogitsLoss
(the emotion_bce task kind is not needed here). MulT runs on the same batches (its `supports` names hcf_emotion)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repro.models.backbones.sequence_features import SequenceFeatures
from repro.models.sequence.lf_baselines import LFRNN, LFTransformer, trailing_padding, trim_to_batch

SIZES = {"text": 300, "audio": 144, "vision": 35}  # the authors' hfc sizes


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def encoders(sizes=SIZES):
    return {m: SequenceFeatures(d) for m, d in sizes.items()}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def lstm_params(d: int) -> int:
    """Bidirectional nn.LSTM(d -> d): per direction 4d(d + d) weights + 2 x 4d biases."""
    return 2 * (4 * d * (d + d) + 8 * d)


def head_params(w: int, c: int = 6) -> int:
    return (w * (w // 2) + w // 2) + ((w // 2) * c + c)


def encoder_layer_params(d: int, ffn: int = 2048) -> int:
    """nn.TransformerEncoderLayer: in_proj 3d·d + 3d, out_proj d·d + d, FFN d·ffn + ffn + ffn·d + d, 2 LayerNorms 4d."""
    return (3 * d * d + 3 * d) + (d * d + d) + (d * ffn + ffn) + (ffn * d + d) + 4 * d


def test_lf_rnn_parameter_count_is_the_authors():
    net = LFRNN(encoders(), 6)
    # hand values: text 16·300² + 16·300 = 1,444,800; audio 334,080; vision 20,160 (LSTMs)
    assert [lstm_params(d) for d in SIZES.values()] == [1_444_800, 334_080, 20_160]
    assert {m: count(net.lstms[m]) for m in SIZES} == {"text": 1_444_800, "audio": 334_080, "vision": 20_160}
    # heads Linear(2D, D) + Linear(D, 6): 182,106 / 42,486 / 2,701
    assert {m: count(net.heads[m]) for m in SIZES} == {"text": 182_106, "audio": 42_486, "vision": 2_701}
    assert count(net.weighted_fusion) == 3
    assert count(net) == 2_026_336 == sum(lstm_params(d) + head_params(2 * d) for d in SIZES.values()) + 3


def test_lf_transformer_parameter_count_is_the_authors():
    net = LFTransformer(encoders(), 6)
    per_modality = {m: 2 * encoder_layer_params(d) + d + head_params(d) for m, d in SIZES.items()}
    assert per_modality == {"text": 3_233_452, "audio": 1_363_246, "vision": 302_001}
    assert {m: count(net.transformers[m]) + count(net.heads[m]) for m in SIZES} == per_modality
    assert count(net) == 4_898_702
    layer = net.transformers["text"].encoder.layers[0]
    assert layer.self_attn.num_heads == 4 and layer.linear1.out_features == 2048 and not layer.norm_first
    assert [net.transformers[m].encoder.layers[0].self_attn.num_heads for m in SIZES] == [4, 2, 5]


def test_heads_must_divide_the_feature_size():
    match = r"vision feature size 35 is not divisible by 4 heads; set fusion.net.heads.vision"
    with pytest.raises(ValueError, match=match):
        LFTransformer(encoders(), 6, heads={"vision": 4})


def _batch(lengths: dict[str, list[int]], steps: dict[str, int], seed: int = 0, left: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    batch = {}
    for m, d in SIZES.items():
        n = len(lengths[m])
        x = torch.randn(n, steps[m], d, generator=g)
        t = torch.arange(steps[m])
        ln = torch.tensor(lengths[m])[:, None]
        mask = t[None] >= steps[m] - ln if left else t[None] < ln
        batch[m], batch[f"{m}_mask"] = x * mask[..., None], mask
    return batch


LENGTHS = {"text": [5, 3, 1], "audio": [7, 7, 2], "vision": [4, 2, 3]}
STEPS = {"text": 5, "audio": 7, "vision": 4}


def _alone(batch: dict, i: int) -> dict:
    """Sample i on its own, cut to its real steps (no padding at all)."""
    out = {}
    for m in SIZES:
        keep = batch[f"{m}_mask"][i]
        out[m], out[f"{m}_mask"] = batch[m][i:i + 1, keep], keep[keep][None]
    return out


@pytest.mark.parametrize("cls", [LFRNN, LFTransformer])
def test_weighted_fusion_and_shapes(cls):
    torch.manual_seed(0)
    net = cls(encoders(), 6).eval()
    out = net(_batch(LENGTHS, STEPS))
    assert out.logits.shape == (3, 6) and out.extras["modality_logits"].shape == (3, 3, 6)
    w = net.weighted_fusion.weight[0]  # (3,): text, audio, vision
    expected = sum(w[k] * out.extras["modality_logits"][:, k] for k in range(3))
    torch.testing.assert_close(out.logits, expected)
    alone = cls({"audio": SequenceFeatures(144)}, 6).eval()
    assert alone.weighted_fusion is None
    single = alone({"audio": torch.randn(2, 4, 144)})
    torch.testing.assert_close(single.logits, single.extras["modality_logits"][:, 0])


@pytest.mark.parametrize("cls", [LFRNN, LFTransformer])
@pytest.mark.parametrize("left", [False, True])
def test_default_padding_never_reaches_a_summary(cls, left):
    torch.manual_seed(0)
    net = cls(encoders(), 6).eval()
    batch = _batch(LENGTHS, STEPS, left=left)
    for m in SIZES:  # garbage at the padding steps must not matter either
        batch[m] = torch.where(batch[f"{m}_mask"][..., None], batch[m], torch.full_like(batch[m], 7.0))
    logits = net(batch).logits
    for i in range(3):
        torch.testing.assert_close(logits[i], net(_alone(batch, i)).logits[0], atol=1e-5, rtol=1e-5)


def test_trim_to_batch_and_trailing_padding_by_hand():
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    xs, masks = trim_to_batch({"a": torch.ones(2, 5, 3)}, {"a": mask})
    assert xs["a"].shape == (2, 2, 3) and masks["a"].tolist() == [[True, True], [True, False]]
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1]], dtype=torch.bool)
    assert trim_to_batch({"a": torch.ones(2, 4, 1)}, {"a": left})[0]["a"].shape == (2, 4, 1)  # nothing trailing
    assert trailing_padding(mask).tolist() == [[False, False, True, True, True], [False, True, True, True, True]]
    assert not trailing_padding(left).any()
    assert trailing_padding(torch.zeros(1, 3, dtype=torch.bool)).all()


@pytest.mark.parametrize("cls", [LFRNN, LFTransformer])
def test_quirk_padding_is_the_authors_per_batch_padding(cls):
    torch.manual_seed(0)
    net = cls(encoders(), 6, quirk_padding=True).eval()
    batch = _batch(LENGTHS, STEPS)
    logits = net(batch).logits
    # padding the data set further (the reader pads to its longest sequence) changes nothing: trimmed to the batch
    longer = {k: (torch.nn.functional.pad(v, (0, 0, 0, 6)) if v.dim() == 3 else torch.nn.functional.pad(v, (0, 6)))
              for k, v in batch.items()}
    torch.testing.assert_close(net(longer).logits, logits)
    # ... but the batch's own padding does: a padded sample differs from itself alone (the authors' artefact)
    assert not torch.allclose(logits[1], net(_alone(batch, 1)).logits[0], atol=1e-4)


def test_quirk_lf_rnn_reads_text_at_the_last_padded_position():
    torch.manual_seed(0)
    net = LFRNN(encoders(), 6, quirk_padding=True).eval()
    batch = _batch(LENGTHS, STEPS)
    xs, masks = trim_to_batch(*net.sequences(batch))
    text = net.summarise("text", xs["text"], masks["text"])  # (3, 600): forward | backward at the last position
    # samples 1 and 2 end in padding: the backward half is the LSTM's response to one zero step, identical for both
    torch.testing.assert_close(text[1, 300:], text[2, 300:])
    assert not torch.allclose(text[0, 300:], text[1, 300:])  # sample 0 is real at the last position
    # audio: h_n of the unpacked run = the default's summary for a sample without padding (samples 0, 1: 7 steps)
    default = LFRNN(encoders(), 6).eval()
    default.load_state_dict(net.state_dict())
    quirk_audio = net.summarise("audio", xs["audio"], masks["audio"])
    torch.testing.assert_close(quirk_audio[:2], default.summarise("audio", xs["audio"], masks["audio"])[:2])


def test_quirk_lf_transformer_masks_only_trailing_audio_padding():
    torch.manual_seed(0)
    net = LFTransformer(encoders(), 6, quirk_padding=True).eval()
    right = _batch(LENGTHS, STEPS)
    alone = [net.summarise("audio", *(_alone(right, i)[k] for k in ("audio", "audio_mask"))) for i in range(3)]
    in_batch = net.summarise("audio", right["audio"], right["audio_mask"])
    torch.testing.assert_close(in_batch[2], alone[2][0], atol=1e-5, rtol=1e-5)  # right padding masked (their lens)
    left = _batch(LENGTHS, STEPS, left=True)
    in_batch = net.summarise("audio", left["audio"], left["audio_mask"])
    assert not torch.allclose(in_batch[2], alone[2][0], atol=1e-4)  # left padding attended, as on MOSEI's arrays


def _fixture_batch(tmp_path, data: str) -> dict:
    from repro.data.fixtures_mesm_hcf import write_iemocap_hcf, write_mosei_hcf
    from repro.data.mesm_hcf import IemocapHCFReader, MoseiHCFReader

    write, reader = {"iemocap": (write_iemocap_hcf, IemocapHCFReader), "mosei": (write_mosei_hcf, MoseiHCFReader)}[data]
    train = reader(write(tmp_path)).load()["train"]
    return torch.utils.data.default_collate([train[i] for i in range(len(train))])


@pytest.mark.parametrize("cls,data", [(LFRNN, "iemocap"), (LFTransformer, "iemocap"), (LFRNN, "mosei"),
                                      (LFTransformer, "mosei")])
def test_a_few_steps_on_the_fixture_reduce_the_bce(cls, data, tmp_path):
    torch.manual_seed(0)
    batch = _fixture_batch(tmp_path, data)
    sizes = {m: batch[m].shape[-1] for m in SIZES}
    net = cls(encoders(sizes), 6)
    label = batch["label"]
    pos_weight = (len(label) - label.sum(0)) / label.sum(0)  # MESM's bce: #neg / #pos per emotion (train labels)
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)  # the authors' 5e-4 needs more than a test's steps
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = criterion(net(batch).logits, label)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 2.0)  # --clip 2
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_mult_runs_on_the_hcf_batches(tmp_path):
    from repro.config import fusion_supports
    from repro.models.sequence.mult import MulT

    assert "hcf_emotion" in fusion_supports("mult")
    torch.manual_seed(0)
    batch = _fixture_batch(tmp_path, "iemocap")
    net = MulT(encoders(), 6, d=8, heads=2, layers=1, checkpoint_ffn=False)
    out = net(batch)
    loss = nn.BCEWithLogitsLoss()(out.logits, batch["label"])
    loss.backward()
    assert out.logits.shape == (12, 6) and torch.isfinite(loss)
