"""MARN — Multi-attention Recurrent Network (Zadeh, Liang, Poria, Vij, Cambria, Morency, AAAI 2018, §3), the
RMFN Table 5 baseline; Multi-Attention Block as in the SDK's ``fusion/multiple_attention`` (IMPLEMENTATION-NOTES §2).

The same LSTHM system as RMFN (`repro.models.sequence.lsthm`); per time step t the Multi-Attention Block (MAB)
reads h_t = [h^l_t, h^v_t, h^a_t] (d = sum of the LSTHM sizes):

    a_t = A(h_t) reshaped (K_att, d), softmax over d for each of the K_att attentions  (A: one MLP -> K_att·d)
    h̃_t = [a^1_t ⊙ h_t, ..., a^{K_att}_t ⊙ h_t]
    s^m_t = C_m(h̃^m_t)   where h̃^m_t (K_att·d_m) are modality m's columns of every attended copy
            (C_m: the per-modality dimension-reduction network, Linear -> tanh -> Dropout to `reduce_dim[m]`;
            tanh, not ReLU: attended values are ~h/d, so a ReLU unit is set by its bias alone and can die at init)
    z_t = tanh(G([s^l_t, s^v_t, s^a_t]))   (G: Linear-ReLU-Dropout-Linear to `z_dim`, hidden `fuse_hidden`)

z_t enters every LSTHM at t+1; the prediction is an MLP on [h^l_T, h^v_T, h^a_T, z_T].
`extras["marn_attention"]` is (B, T, K_att, d) (zero rows at padding steps); `attention_slices[m]` gives
modality m's columns. The paper gives no sizes for these networks; the defaults are listed in configs/fusion/marn.yaml.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.models.blocks import mlp, per_modality
from repro.models.sequence.lsthm import LSTHMFusionNet


class MultiAttentionBlock(nn.Module):
    """h_t (B, d) -> z_t (B, z_dim), attentions (B, K_att, d)."""

    def __init__(self, slices: dict[str, tuple[int, int]], attentions: int, attention_hidden: int,
                 reduce_dim: dict[str, int], fuse_hidden: int, z_dim: int, dropout: float):
        super().__init__()
        self.slices = dict(slices)
        self.d = max(stop for _, stop in self.slices.values())
        self.attentions = attentions
        self.attend = mlp(self.d, attention_hidden, attentions * self.d, dropout, dropout_at_zero=True)  # A
        self.reduce = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(attentions * (stop - start), reduce_dim[m]), nn.Tanh(), nn.Dropout(dropout))
            for m, (start, stop) in self.slices.items()
        })  # C_m
        self.fuse = mlp(sum(reduce_dim.values()), fuse_hidden, z_dim, dropout, dropout_at_zero=True)  # G

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size = h.shape[0]
        attention = torch.softmax(self.attend(h).view(batch_size, self.attentions, self.d), dim=-1)
        attended = attention * h.unsqueeze(1)  # (B, K_att, d)
        reduced = [self.reduce[m](attended[:, :, start:stop].reshape(batch_size, -1))
                   for m, (start, stop) in self.slices.items()]
        return torch.tanh(self.fuse(torch.cat(reduced, dim=-1))), attention


class MARN(LSTHMFusionNet):
    """Multi-attention Recurrent Network on word-aligned sequences (see module docstring)."""

    owner = "MARN"
    attention_key = "marn_attention"

    def __init__(self, encoders, num_classes: int, hidden=None, attentions: int = 4, attention_hidden: int = 128,
                 reduce_dim=None, fuse_hidden: int = 128, z_dim: int = 128, output_hidden: int = 128,
                 dropout: float = 0.2, gate: str = "sigmoid"):
        if int(attentions) < 1 or int(z_dim) < 1:
            raise ValueError(f"MARN needs attentions >= 1 and z_dim >= 1, got {attentions} and {z_dim} "
                             "(fusion.net.attentions / fusion.net.z_dim)")
        hidden = {"text": 88, "vision": 16, "audio": 48} if hidden is None else hidden
        super().__init__(encoders, num_classes, hidden, z_dim, output_hidden, dropout, gate)
        reduce_dim = {"text": 64, "vision": 16, "audio": 32} if reduce_dim is None else reduce_dim
        reduce_dim = per_modality(reduce_dim, self.order, "reduce_dim")
        self.mab = MultiAttentionBlock(self.attention_slices, int(attentions), int(attention_hidden), reduce_dim,
                                       int(fuse_hidden), self.z_dim, float(dropout))

    def fuse_step(self, h):
        return self.mab(h)
