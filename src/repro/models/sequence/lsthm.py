"""Long Short-term Hybrid Memory (LSTHM) and the recurrent skeleton shared by RMFN and MARN.

LSTHM: Zadeh et al., AAAI 2018 (MARN) §"Long-short Term Hybrid Memory"; RMFN (Liang et al., EMNLP 2018) §3.3,
eq. 7–12; the SDK cell ``mmsdk/mmmodelsdk/modules/LSTHM/LSTHM.py`` (IMPLEMENTATION-NOTES §2). For modality m:

    [i, f, o, c̄]_{t+1} = W x_{t+1} + U h_t + V z_t + b       (eq. 7–10; gate blocks in this order)
    i, f, o = σ(·)                                              (σ = sigmoid or hard sigmoid, option `gate`)
    c_{t+1} = f ⊙ c_t + i ⊙ tanh(c̄_{t+1})                       (eq. 11)
    h_{t+1} = o ⊙ tanh(c_{t+1})                                 (eq. 12)

z_t is the cross-modal code of the previous step (RMFN's MFP output, MARN's Multi-Attention Block output);
``z_dim=0`` drops the V term (RMFN "no MFP"). The equations have one bias per gate, so W carries it and U, V
have none (the SDK gives each of W, U, V its own bias: the same function with redundant parameters).
"Hard sigmoid" is the Keras/Theano one of the MARN era, clip(0.2 x + 0.5, 0, 1).

`LSTHMSystem` holds one cell per modality. Its step is masked: where mask[b] is False, row b keeps its (h, c),
so the CMU releases' LEFT zero-padding is a no-op (the state entering the first real word is the initial zero
state). `LSTHMFusionNet` is the whole-sequence network: per step the LSTHMs read x_t and z_{t-1}, their outputs
are concatenated (text, vision, audio order, as RMFN's [h^l, h^v, h^a]) and a fusion module turns them into z_t;
the prediction is an MLP on E = [h^l_T, h^v_T, h^a_T, z_T] (RMFN eq. 13). Initial h, c and z are zeros.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from repro.data.base import DataError
from repro.models.blocks import mlp, per_modality
from repro.models.net import NetOutput
from repro.models.sequence import SequenceFusionNet

GATES = ("sigmoid", "hard_sigmoid")
# Concatenation order of RMFN §3.2 ([h^l, h^v, h^a]); unknown modality names follow in encoder order.
MODALITY_RANK = {"text": 0, "language": 0, "vision": 1, "visual": 1, "audio": 2, "acoustic": 2}


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras/Theano hard sigmoid: clip(0.2 x + 0.5, 0, 1)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def gate_function(gate: str):
    if gate not in GATES:
        raise ValueError(f"LSTHM gate must be one of {GATES}, got {gate!r} (fusion.net.gate)")
    return torch.sigmoid if gate == "sigmoid" else hard_sigmoid


class LSTHMCell(nn.Module):
    """One LSTHM cell (eq. 7–12): `forward(x, (h, c), z) -> (h, c)`; `project_input` precomputes W x + b."""

    def __init__(self, input_dim: int, hidden_dim: int, z_dim: int = 0, gate: str = "sigmoid"):
        super().__init__()
        self.hidden_dim = int(hidden_dim)
        self.z_dim = int(z_dim)
        self.gate = gate
        self._gate_fn = gate_function(gate)
        self.W = nn.Linear(int(input_dim), 4 * self.hidden_dim)  # its bias is b of eq. 7-10
        self.U = nn.Linear(self.hidden_dim, 4 * self.hidden_dim, bias=False)
        self.V = nn.Linear(self.z_dim, 4 * self.hidden_dim, bias=False) if self.z_dim > 0 else None

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        """W x + b for any leading shape (done once for the whole sequence: it does not depend on the state)."""
        return self.W(x)

    def step(self, wx: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], z: torch.Tensor | None):
        """One update from the projected input ``wx`` = W x_{t+1} + b (B, 4H)."""
        h, c = state
        pre = wx + self.U(h)
        if self.V is not None:
            if z is None:
                raise ValueError("this LSTHM cell has z_dim > 0 and needs z (pass z_dim=0 for a cell without V)")
            pre = pre + self.V(z)
        i, f, o, c_bar = pre.chunk(4, dim=-1)
        i, f, o = self._gate_fn(i), self._gate_fn(f), self._gate_fn(o)
        c = f * c + i * torch.tanh(c_bar)
        return o * torch.tanh(c), c

    def forward(self, x, state, z=None):
        return self.step(self.project_input(x), state, z)

    def extra_repr(self) -> str:
        return f"hidden_dim={self.hidden_dim}, z_dim={self.z_dim}, gate={self.gate!r}"


class LSTHMSystem(nn.Module):
    """One LSTHM per modality (RMFN §3.3), all reading the same z; masked steps keep the state."""

    def __init__(self, input_dims: Mapping[str, int], hidden: Mapping[str, int], z_dim: int = 0,
                 gate: str = "sigmoid"):
        super().__init__()
        self.cells = nn.ModuleDict({m: LSTHMCell(input_dims[m], hidden[m], z_dim, gate) for m in input_dims})

    def initial_state(self, batch_size: int, like: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {m: (like.new_zeros(batch_size, cell.hidden_dim), like.new_zeros(batch_size, cell.hidden_dim))
                for m, cell in self.cells.items()}

    def project_inputs(self, xs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: cell.project_input(xs[m]) for m, cell in self.cells.items()}

    def step(self, wx_t: Mapping[str, torch.Tensor], state, z: torch.Tensor | None, mask_t: torch.Tensor):
        """New state; rows with mask_t False (B,) keep their old (h, c)."""
        keep = mask_t.unsqueeze(-1)
        new_state = {}
        for m, cell in self.cells.items():
            h, c = cell.step(wx_t[m], state[m], z)
            new_state[m] = (torch.where(keep, h, state[m][0]), torch.where(keep, c, state[m][1]))
        return new_state


def ordered_modalities(modalities: list[str]) -> list[str]:
    """Text, vision, audio first (RMFN's concatenation order), others after in the given order."""
    return sorted(modalities, key=lambda m: (MODALITY_RANK.get(m, len(MODALITY_RANK)), modalities.index(m)))


class LSTHMFusionNet(SequenceFusionNet):
    """LSTHM system + a per-step fusion module producing z_t; subclasses implement `fuse_step`.

    `order` is the concatenation order of the hidden states, `attention_slices[m]` = (start, stop) columns of
    modality m in the concatenated h_t (and so in the last axis of the exported attentions).
    """

    owner = "LSTHMFusionNet"

    def __init__(self, encoders, num_classes: int, hidden, z_dim: int, output_hidden: int, dropout: float,
                 gate: str):
        super().__init__(encoders, num_classes)
        self.order = ordered_modalities(self.modalities)
        self.hidden = per_modality(hidden, self.order, "hidden")
        self.hidden_dim = sum(self.hidden.values())
        self.z_dim = int(z_dim)
        if self.z_dim < 0:
            raise ValueError(f"{self.owner} z_dim must be >= 0, got {z_dim} (fusion.net.z_dim)")
        self.attention_slices: dict[str, tuple[int, int]] = {}
        start = 0
        for m in self.order:
            self.attention_slices[m] = (start, start + self.hidden[m])
            start += self.hidden[m]
        self.lsthm = LSTHMSystem({m: self.dims[m] for m in self.order}, self.hidden, self.z_dim, gate)
        self.output = mlp(self.hidden_dim + self.z_dim, int(output_hidden), num_classes, float(dropout),
                          dropout_at_zero=True)

    def aligned_sequences(self, batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Inputs and the word mask (B, T): a step is real if any modality is real there (word-aligned data)."""
        xs, masks = self.sequences(batch)
        lengths = {m: x.shape[1] for m, x in xs.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"{self.owner} needs word-aligned sequences (one length for all modalities), got "
                            f"lengths {lengths}; fix: use the aligned data file (data.reader.aligned=true)")
        mask = torch.stack([masks[m] for m in self.order]).any(dim=0)
        return xs, mask

    def fuse_step(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:  # pragma: no cover
        """z_t (B, z_dim) and attention (B, K, d) or None, from the concatenated hidden states h (B, d)."""
        raise NotImplementedError

    def run(self, batch) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """E (B, d + z_dim), attentions (B, T, K, d) or None (zero rows at masked steps), mask (B, T)."""
        xs, mask = self.aligned_sequences(batch)
        first = xs[self.order[0]]
        batch_size, steps = first.shape[:2]
        wx = self.lsthm.project_inputs(xs)
        state = self.lsthm.initial_state(batch_size, first)
        z = first.new_zeros(batch_size, self.z_dim) if self.z_dim else None
        attentions = []
        for t in range(steps):
            mask_t = mask[:, t]
            state = self.lsthm.step({m: wx[m][:, t] for m in self.order}, state, z, mask_t)
            if z is None:
                continue
            h = torch.cat([state[m][0] for m in self.order], dim=-1)
            z_new, attention = self.fuse_step(h)
            z = torch.where(mask_t.unsqueeze(-1), z_new, z)
            if attention is not None:
                attentions.append(attention * mask_t.view(-1, 1, 1).to(attention.dtype))
        parts = [state[m][0] for m in self.order] + ([z] if z is not None else [])
        stacked = torch.stack(attentions, dim=1) if attentions else None
        return torch.cat(parts, dim=-1), stacked, mask

    @property
    def attention_key(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, batch):
        final, attention, _ = self.run(batch)
        extras = {} if attention is None else {self.attention_key: attention}
        return NetOutput(logits=self.output(final), extras=extras)
