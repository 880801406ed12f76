"""RMFN — Recurrent Multistage Fusion Network (Liang, Liu, Zadeh, Morency, EMNLP 2018, §3, eq. 1–13, Figure 2).

No official code exists (IMPLEMENTATION-NOTES §2); this follows the paper's equations. Per time step t the
Multistage Fusion Process (MFP) reads h_t = [h^l_t, h^v_t, h^a_t] (d = sum of the LSTHM sizes) and runs K stages:

HIGHLIGHT (eq. 1–4): an LSTM cell of hidden size d decoding over the stages. Its memory at stage 0 is
    c^{HIGHLIGHT[0]} = M(h_t) = tanh(W_M h_t + b_M)        (eq. 2; M is one tanh layer: memory-sized, bounded)
    h^{HIGHLIGHT[0]} = 0, and its stage-1 input is the uniform attention 1/d (`highlight_start="uniform"`):
the decoder's "start symbol" in the same space as its later inputs (a distribution over the d dimensions),
so h_t enters through the memory exactly as eq. 2 says. `highlight_start="hidden"` feeds h_t instead.
    a^{[k]} = softmax(h^{HIGHLIGHT[k]})  over the d dimensions (eq. 3), fed as the input of stage k+1
    h̃^{[k]} = h_t ⊙ a^{[k]}                                              (eq. 4)
FUSE (eq. 5): an LSTM cell of hidden size `fuse_dim` over the stages, input h̃^{[k]}, output s^{[k]}.
    "initial FUSE memory c^{FUSE[0]} initialized using random orthogonal matrices": read as a LEARNED initial
    memory vector (shared by all steps and samples) initialised as a row of a random orthogonal matrix (a random
    unit vector, `nn.init.orthogonal_`), with h^{FUSE[0]} = 0; following the cited works (Arjovsky et al.,
    Le et al.: orthogonal/identity recurrent matrices) the FUSE recurrent weights U_i, U_f, U_c, U_o are also
    initialised orthogonal. (A third-party version draws torch.rand noise every call: not followed.)
SUMMARIZE (eq. 6): z_t = tanh(MLP([s^{[1]}, ..., s^{[K]}])) (Linear-ReLU-Dropout-Linear, hidden
    `summarize_hidden`; tanh keeps z, which enters every LSTHM gate at t+1, bounded like h).
Prediction (eq. 13): MLP([h^l_T, h^v_T, h^a_T, z_T]) -> num_classes.

Switches (RMFN Tables 4–5): `stages=K` (any K >= 1); `highlight=False` ("no HIGHLIGHT": h̃^{[k]} = h_t, no
HIGHLIGHT parameters, no attention export); `mfp=False` ("no MFP": LSTHMs without V, E = hidden states only, no
MFP parameters). `extras["rmfn_attention"]` (B, T, K, d) holds every stage's a^{[k]}_t (zero rows at padding
steps, where nothing is updated); `attention_slices[m]` gives modality m's columns of d (order `self.order`).
Note: as eq. 3 softmaxes an LSTM output in (-1, 1), the weights stay within a factor e^2 of each other.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.models.blocks import mlp
from repro.models.sequence.lsthm import LSTHMFusionNet

HIGHLIGHT_STARTS = ("uniform", "hidden")


class MultistageFusion(nn.Module):
    """The MFP of one time step: h_t (B, d) -> z_t (B, z_dim), attentions (B, K, d) or None."""

    def __init__(self, d: int, stages: int, fuse_dim: int, z_dim: int, summarize_hidden: int, dropout: float,
                 highlight: bool = True, highlight_start: str = "uniform"):
        super().__init__()
        if highlight_start not in HIGHLIGHT_STARTS:
            raise ValueError(f"RMFN highlight_start must be one of {HIGHLIGHT_STARTS}, got {highlight_start!r} "
                             "(fusion.net.highlight_start)")
        self.stages = stages
        self.highlight_start = highlight_start
        self.uses_highlight = highlight
        if highlight:
            self.highlight_memory = nn.Linear(d, d)  # M of eq. 2
            self.highlight = nn.LSTMCell(d, d)
        self.fuse = nn.LSTMCell(d, fuse_dim)
        self.fuse_memory = nn.Parameter(torch.empty(1, fuse_dim))  # c^{FUSE[0]}
        self.summarize = mlp(stages * fuse_dim, summarize_hidden, z_dim, dropout, dropout_at_zero=True)
        self.reset_fuse_parameters()

    def reset_fuse_parameters(self) -> None:
        nn.init.orthogonal_(self.fuse_memory)
        for block in self.fuse.weight_hh.detach().chunk(4, dim=0):
            nn.init.orthogonal_(block)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, d = h.shape
        # a broadcast sum, not .expand(): a view of a parameter made under no_grad has no grad_fn, which the FLOP
        # counter's module tracker rejects
        memory = h.new_zeros(batch_size, self.fuse.hidden_size)
        fuse_state = (memory, memory + self.fuse_memory)
        if self.uses_highlight:
            highlight_state = (h.new_zeros(batch_size, d), torch.tanh(self.highlight_memory(h)))
            highlight_input = h.new_full((batch_size, d), 1.0 / d) if self.highlight_start == "uniform" else h
        fused, attentions = [], []
        for _ in range(self.stages):
            if self.uses_highlight:
                highlight_state = self.highlight(highlight_input, highlight_state)
                attention = torch.softmax(highlight_state[0], dim=-1)  # eq. 3
                attentions.append(attention)
                highlight_input = attention
                highlighted = h * attention  # eq. 4
            else:
                highlighted = h
            fuse_state = self.fuse(highlighted, fuse_state)  # eq. 5
            fused.append(fuse_state[0])
        z = torch.tanh(self.summarize(torch.cat(fused, dim=-1)))  # eq. 6
        return z, (torch.stack(attentions, dim=1) if attentions else None)


class RMFN(LSTHMFusionNet):
    """Recurrent Multistage Fusion Network on word-aligned sequences (see module docstring)."""

    owner = "RMFN"
    attention_key = "rmfn_attention"

    def __init__(self, encoders, num_classes: int, hidden=None, stages: int = 3, highlight: bool = True,
                 mfp: bool = True, z_dim: int = 128, fuse_dim: int = 128, summarize_hidden: int = 128,
                 output_hidden: int = 128, dropout: float = 0.2, gate: str = "sigmoid",
                 highlight_start: str = "uniform"):
        if int(stages) < 1:
            raise ValueError(f"RMFN stages must be >= 1, got {stages} (fusion.net.stages)")
        if mfp and int(z_dim) < 1:
            raise ValueError(f"RMFN with mfp=true needs z_dim >= 1, got {z_dim} (fusion.net.z_dim)")
        hidden = {"text": 88, "vision": 16, "audio": 48} if hidden is None else hidden
        super().__init__(encoders, num_classes, hidden, z_dim if mfp else 0, output_hidden, dropout, gate)
        self.stages = int(stages)
        self.mfp = (MultistageFusion(self.hidden_dim, self.stages, int(fuse_dim), self.z_dim, int(summarize_hidden),
                                     float(dropout), bool(highlight), highlight_start) if mfp else None)

    def fuse_step(self, h):
        return self.mfp(h)
