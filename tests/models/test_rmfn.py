"""LSTHM cell (RMFN eq. 7–12), RMFN (eq. 1–13, Tables 4–5 switches) and MARN on tiny SYNTHETIC random tensors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from repro.data.base import DataError
from repro.models.backbones.sequence_features import SequenceFeatures
from repro.models.sequence.lsthm import LSTHMCell, LSTHMSystem, hard_sigmoid
from repro.models.sequence.marn import MARN
from repro.models.sequence.rmfn import RMFN, MultistageFusion

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DIMS = {"text": 4, "vision": 3, "audio": 2}
HIDDEN = {"text": 5, "vision": 3, "audio": 2}  # d = 10
SMALL = {"hidden": HIDDEN, "z_dim": 6, "output_hidden": 9, "dropout": 0.0}
RMFN_SMALL = {**SMALL, "fuse_dim": 7, "summarize_hidden": 8}
MARN_SMALL = {**SMALL, "attentions": 2, "attention_hidden": 8, "reduce_dim": {"text": 3, "vision": 2, "audio": 2},
              "fuse_hidden": 5}


def encoders(order=("text", "vision", "audio")):
    return {m: SequenceFeatures(DIMS[m]) for m in order}


def random_batch(batch_size=3, steps=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch_size, steps, d, generator=g) for m, d in DIMS.items()}


def make(cls, num_classes=1, seed=0, **overrides):
    torch.manual_seed(seed)
    config = {**(RMFN_SMALL if cls is RMFN else MARN_SMALL), **overrides}
    return cls(encoders(), num_classes, **config).eval()


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- LSTHM


def set_cell_weights(cell: LSTHMCell) -> None:
    """input 2, hidden 1, z 1: gate rows i, f, o, c̄."""
    with torch.no_grad():
        cell.W.weight.copy_(torch.tensor([[0.5, -1.0], [1.0, 0.0], [0.0, 2.0], [-0.5, 0.5]]))
        cell.W.bias.copy_(torch.tensor([0.1, 0.2, -0.1, 0.0]))
        cell.U.weight.copy_(torch.tensor([[1.0], [-1.0], [0.5], [2.0]]))
        cell.V.weight.copy_(torch.tensor([[0.3], [0.0], [-0.2], [1.0]]))


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
def test_lsthm_cell_matches_hand_computation(gate):
    cell = LSTHMCell(2, 1, z_dim=1, gate=gate)
    set_cell_weights(cell)
    x, h, c, z = torch.tensor([[1.0, 0.5]]), torch.tensor([[0.4]]), torch.tensor([[-0.3]]), torch.tensor([[2.0]])
    sig = (lambda v: 1 / (1 + math.exp(-v))) if gate == "sigmoid" else (lambda v: min(max(0.2 * v + 0.5, 0.0), 1.0))
    # pre-activations W x + U h + V z + b, by hand
    pre_i = 0.5 * 1 - 1.0 * 0.5 + 0.1 + 1.0 * 0.4 + 0.3 * 2  # 1.1
    pre_f = 1.0 * 1 + 0.2 - 1.0 * 0.4 + 0.0  # 0.8
    pre_o = 2.0 * 0.5 - 0.1 + 0.5 * 0.4 - 0.2 * 2  # 0.7
    pre_c = -0.5 * 1 + 0.5 * 0.5 + 2.0 * 0.4 + 1.0 * 2  # 2.55
    c_new = sig(pre_f) * -0.3 + sig(pre_i) * math.tanh(pre_c)
    h_new = sig(pre_o) * math.tanh(c_new)
    h_out, c_out = cell(x, (h, c), z)
    assert c_out.item() == pytest.approx(c_new, abs=1e-6)
    assert h_out.item() == pytest.approx(h_new, abs=1e-6)


def test_hard_sigmoid_is_the_keras_one():
    assert hard_sigmoid(torch.tensor([-3.0, 0.0, 1.0, 3.0])).tolist() == pytest.approx([0.0, 0.5, 0.7, 1.0])


def test_lsthm_without_z_has_no_v_and_bad_gate_is_rejected():
    cell = LSTHMCell(2, 3, z_dim=0)
    assert cell.V is None and n_params(cell) == 2 * 12 + 12 + 3 * 12
    with pytest.raises(ValueError, match="needs z"):
        LSTHMCell(2, 3, z_dim=2)(torch.zeros(1, 2), (torch.zeros(1, 3), torch.zeros(1, 3)))
    with pytest.raises(ValueError, match="fusion.net.gate"):
        LSTHMCell(2, 3, gate="relu")


def test_lsthm_system_masked_rows_keep_their_state():
    torch.manual_seed(0)
    system = LSTHMSystem({"text": 4, "audio": 2}, {"text": 3, "audio": 2}, z_dim=2)
    xs = {"text": torch.randn(3, 4), "audio": torch.randn(3, 2)}
    state = {m: (torch.randn(3, h), torch.randn(3, h)) for m, h in (("text", 3), ("audio", 2))}
    new = system.step(system.project_inputs(xs), state, torch.randn(3, 2), torch.tensor([True, False, True]))
    for m in state:
        for old, now in zip(state[m], new[m]):
            assert torch.equal(now[1], old[1])
            assert not torch.allclose(now[0], old[0]) and not torch.allclose(now[2], old[2])


# ---------------------------------------------------------------- RMFN / MARN shared behaviour


def left_pad(batch, pad):
    padded = {m: torch.cat([torch.zeros(x.shape[0], pad, x.shape[2]), x], dim=1) for m, x in batch.items()}
    batch_size, steps = batch["text"].shape[:2]
    mask = torch.arange(pad + steps).expand(batch_size, -1) >= pad
    padded.update({f"{m}_mask": mask for m in batch})
    return padded


@pytest.mark.parametrize("cls,overrides", [(RMFN, {}), (RMFN, {"mfp": False}), (RMFN, {"highlight": False}),
                                           (MARN, {})])
def test_left_padding_is_a_no_op(cls, overrides):
    net = make(cls, **overrides)
    batch = random_batch(steps=4)
    with torch.no_grad():
        plain, padded = net(batch), net(left_pad(batch, 2))
    assert torch.allclose(plain.logits, padded.logits, atol=1e-6)
    for key, attention in plain.extras.items():
        assert torch.allclose(padded.extras[key][:, 2:], attention, atol=1e-6)
        assert torch.count_nonzero(padded.extras[key][:, :2]) == 0  # documented: zero rows at padding steps


# ---------------------------------------------------------------- RMFN's MFP (eq. 1-6) by hand


def lstm_step(x, h, c, cell: torch.nn.LSTMCell):
    """One LSTM step written out (torch's gate order i, f, g, o), from the cell's weights only."""
    gates = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new


def mfp_by_hand(mfp, h, stages: int, start: str = "uniform", memory: str = "M"):
    """RMFN eq. 2-6 step by step with plain torch ops: z_t and the attentions a^[1..K] (B, K, d).

    memory="M": c^{HIGHLIGHT[0]} = M(h_t) = tanh(W_M h_t + b_M) (eq. 2); "zeros" is the wrong alternative, used to
    check that the comparison can tell them apart.
    """
    batch_size, d = h.shape
    w_m, b_m = mfp.highlight_memory.weight, mfp.highlight_memory.bias
    c_hl = torch.tanh(h @ w_m.T + b_m) if memory == "M" else torch.zeros(batch_size, d)  # eq. 2
    h_hl = torch.zeros(batch_size, d)
    x_hl = torch.full((batch_size, d), 1.0 / d) if start == "uniform" else h  # the decoder's start symbol
    s, c_fuse = torch.zeros(batch_size, mfp.fuse.hidden_size), mfp.fuse_memory.expand(batch_size, -1)  # c^{FUSE[0]}
    fused, attentions = [], []
    for _ in range(stages):
        h_hl, c_hl = lstm_step(x_hl, h_hl, c_hl, mfp.highlight)  # HIGHLIGHT LSTM, state chained from stage k-1
        a = torch.exp(h_hl) / torch.exp(h_hl).sum(-1, keepdim=True)  # eq. 3
        s, c_fuse = lstm_step(h * a, s, c_fuse, mfp.fuse)  # eq. 4 (h ⊙ a) into the FUSE LSTM, eq. 5
        fused.append(s)
        attentions.append(a)
        x_hl = a  # a^[k] is the HIGHLIGHT input of stage k+1
    first, last = mfp.summarize[0], mfp.summarize[-1]  # S of eq. 6: Linear-ReLU-(Dropout 0)-Linear, then tanh
    z = torch.tanh(torch.relu(torch.cat(fused, -1) @ first.weight.T + first.bias) @ last.weight.T + last.bias)
    return z, torch.stack(attentions, dim=1)


@pytest.mark.parametrize("start", ["uniform", "hidden"])
def test_mfp_matches_the_equations_by_hand(start):
    """HIGHLIGHT's memory starts at M(h_t) (eq. 2) and both LSTMs chain their state from stage to stage."""
    d, stages = 4, 3
    torch.manual_seed(0)
    mfp = MultistageFusion(d, stages, fuse_dim=3, z_dim=2, summarize_hidden=5, dropout=0.0,
                           highlight_start=start).eval()
    with torch.no_grad():  # non-zero everything, so a missing term cannot hide behind a zero
        for p in mfp.parameters():
            p.copy_(torch.randn_like(p))
    h = torch.randn(2, d)
    with torch.no_grad():
        z, attention = mfp(h)
        z_hand, attention_hand = mfp_by_hand(mfp, h, stages, start)
        z_zero_memory, attention_zero_memory = mfp_by_hand(mfp, h, stages, start, memory="zeros")
    assert attention.shape == (2, stages, d) and z.shape == (2, 2)
    torch.testing.assert_close(attention, attention_hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z, z_hand, rtol=1e-5, atol=1e-6)
    # the check has power: a HIGHLIGHT memory not initialised from M(h_t) gives other attentions
    assert (attention - attention_zero_memory).abs().max() > 1e-3


def test_mfp_one_stage_by_hand_with_tiny_numbers():
    """K = 1, d = 2, fuse 1, summarize without hidden layer: every number written out (eq. 2-6)."""
    mfp = MultistageFusion(2, 1, fuse_dim=1, z_dim=1, summarize_hidden=0, dropout=0.0).eval()
    with torch.no_grad():
        mfp.highlight_memory.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        mfp.highlight_memory.bias.copy_(torch.tensor([0.0, 0.5]))
        for cell in (mfp.highlight, mfp.fuse):
            cell.weight_ih.fill_(0.0), cell.weight_hh.fill_(0.0), cell.bias_ih.fill_(0.0), cell.bias_hh.fill_(0.0)
        mfp.highlight.bias_ih.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0]))  # rows i | f | g | o
        mfp.fuse.weight_ih.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
        mfp.fuse_memory.fill_(0.5)
        mfp.summarize[0].weight.fill_(2.0), mfp.summarize[0].bias.fill_(0.0)
        z, attention = mfp(torch.tensor([[1.0, 2.0]]))
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    c_m = [math.tanh(1.0), math.tanh(-2.0 + 0.5)]  # eq. 2: M(h) = tanh(W_M h + b_M)
    # HIGHLIGHT stage 1: all gate pre-activations 0 except o = (1, -1): i = f = 1/2, g = 0
    c_hl = [0.5 * c for c in c_m]
    h_hl = [sig(1.0) * math.tanh(c_hl[0]), sig(-1.0) * math.tanh(c_hl[1])]
    e = [math.exp(v) for v in h_hl]
    a = [v / sum(e) for v in e]  # eq. 3
    highlighted = [1.0 * a[0], 2.0 * a[1]]  # eq. 4
    # FUSE stage 1 (eq. 5): g = tanh(h̃_1 + h̃_2), i = f = o = 1/2, memory from c^{FUSE[0]} = 0.5
    c_fuse = 0.5 * 0.5 + 0.5 * math.tanh(sum(highlighted))
    s = 0.5 * math.tanh(c_fuse)
    assert attention[0, 0].tolist() == pytest.approx(a, abs=1e-6)
    assert z.item() == pytest.approx(math.tanh(2.0 * s), abs=1e-6)  # eq. 6


def test_marn_attention_has_one_row_per_attention_and_step():
    assert make(MARN)(random_batch(steps=6)).extras["marn_attention"].shape == (3, 6, 2, 10)


def test_rmfn_attention_export_is_each_step_mfp_output():
    """extras["rmfn_attention"] (B, T, K, d) holds, at each step, the attentions of the MFP on that step's h_t."""
    net = make(RMFN, stages=2)
    calls = []
    net.mfp.register_forward_hook(lambda _m, _args, out: calls.append(out[1]))
    with torch.no_grad():
        attention = net(random_batch(steps=4)).extras["rmfn_attention"]
    assert attention.shape == (3, 4, 2, 10) and len(calls) == 4
    torch.testing.assert_close(attention, torch.stack(calls, dim=1))


def test_concatenation_order_and_slices_are_text_vision_audio():
    net = RMFN(encoders(order=("audio", "text", "vision")), 1, **RMFN_SMALL)
    assert net.order == ["text", "vision", "audio"]
    assert net.attention_slices == {"text": (0, 5), "vision": (5, 8), "audio": (8, 10)}
    assert [net.lsthm.cells[m].hidden_dim for m in net.order] == [5, 3, 2]


def lsthm_params(z_dim: int) -> int:
    return sum(4 * h * (DIMS[m] + 1 + h + z_dim) for m, h in HIDDEN.items())


def test_rmfn_parameter_count_matches_formula():
    d, z, f, s, o, k, classes = 10, 6, 7, 8, 9, 3, 1
    highlight = (d * d + d) + (4 * d * (d + d) + 8 * d)  # M of eq. 2 + LSTMCell(d, d) (two biases in torch)
    fuse = 4 * f * (d + f) + 8 * f + f  # LSTMCell(d, f) + learned initial memory
    summarize = k * f * s + s + s * z + z
    output = (d + z) * o + o + o * classes + classes
    assert n_params(make(RMFN, stages=k)) == lsthm_params(z) + highlight + fuse + summarize + output
    no_highlight = make(RMFN, stages=k, highlight=False)
    assert n_params(no_highlight) == lsthm_params(z) + fuse + summarize + output
    assert not any("highlight" in name for name, _ in no_highlight.named_parameters())


def test_marn_parameter_count_matches_formula():
    d, z, k_att, a, g, o = 10, 6, 2, 8, 5, 9
    reduce = {"text": 3, "vision": 2, "audio": 2}
    attend = d * a + a + a * k_att * d + k_att * d
    reduction = sum(k_att * HIDDEN[m] * r + r for m, r in reduce.items())
    fuse = sum(reduce.values()) * g + g + g * z + z
    output = (d + z) * o + o + o + 1
    assert n_params(make(MARN)) == lsthm_params(z) + attend + reduction + fuse + output


def test_no_mfp_removes_z_entirely():
    net = make(RMFN, mfp=False)
    out = net(random_batch())
    assert net.mfp is None and net.z_dim == 0
    assert all(cell.V is None for cell in net.lsthm.cells.values())
    assert net.output[0].in_features == 10  # E = [h^l_T, h^v_T, h^a_T] only
    assert "rmfn_attention" not in out.extras
    assert n_params(net) == lsthm_params(0) + (10 * 9 + 9 + 9 + 1)


def test_no_highlight_exports_no_attention():
    batch = random_batch()
    full, plain = make(RMFN)(batch), make(RMFN, highlight=False)(batch)
    assert "rmfn_attention" in full.extras and "rmfn_attention" not in plain.extras
    assert plain.logits.shape == full.logits.shape


@pytest.mark.parametrize("cls,overrides", [(RMFN, {}), (RMFN, {"highlight_start": "hidden"}),
                                           (RMFN, {"gate": "hard_sigmoid"}), (MARN, {})])
def test_backward_reaches_every_parameter(cls, overrides):
    net = make(cls, num_classes=2, **overrides).train()
    net(random_batch(batch_size=8, steps=4)).logits.square().sum().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


@pytest.mark.parametrize("cls", [RMFN, MARN])
@pytest.mark.parametrize("num_classes", [1, 8, 12])
def test_output_shapes(cls, num_classes):
    assert make(cls, num_classes=num_classes)(random_batch(batch_size=3, steps=2)).logits.shape == (3, num_classes)


@pytest.mark.parametrize("cls", [RMFN, MARN])
def test_unaligned_input_is_one_line_error(cls):
    batch = random_batch()
    batch["audio"] = torch.randn(3, 7, DIMS["audio"])
    with pytest.raises(DataError, match=r"word-aligned.*'audio': 7.*data.reader.aligned=true") as err:
        make(cls)(batch)
    assert "\n" not in str(err.value)


def test_bad_config_values_name_their_key():
    with pytest.raises(ValueError, match="fusion.net.hidden"):
        RMFN(encoders(), 1, **{**RMFN_SMALL, "hidden": {"text": 5, "audio": 2}})
    with pytest.raises(ValueError, match="fusion.net.stages"):
        RMFN(encoders(), 1, **{**RMFN_SMALL, "stages": 0})
    with pytest.raises(ValueError, match="fusion.net.highlight_start"):
        RMFN(encoders(), 1, **{**RMFN_SMALL, "highlight_start": "zeros"})
    with pytest.raises(ValueError, match="fusion.net.reduce_dim"):
        MARN(encoders(), 1, **{**MARN_SMALL, "reduce_dim": {"text": 3}})


@pytest.mark.parametrize("name,cls", [("rmfn", RMFN), ("marn", MARN)])
def test_config_instantiates(name, cls):
    from hydra.utils import instantiate

    cfg = OmegaConf.load(CONFIGS / "fusion" / f"{name}.yaml")
    assert cfg.name == name
    net = instantiate(cfg.net)(encoders=encoders(), num_classes=1)
    assert isinstance(net, cls) and net.hidden == {"text": 88, "vision": 16, "audio": 48}
    assert net(random_batch(batch_size=2, steps=3)).logits.shape == (2, 1)
