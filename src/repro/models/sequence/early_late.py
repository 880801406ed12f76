"""Early- and late-fusion LSTM baselines for multimodal sequences (EF-LSTM / LF-LSTM rows of MulT and MICA,
mica.txt §4; RMFN's EF-LSTM, EF-SLSTM, EF-BLSTM, EF-SBLSTM baselines, rmfn.txt §4.3).

- `EarlyFusionLSTM`: the modalities' features are concatenated at every step (this needs word-aligned data:
  equal T for every modality), one LSTM runs over the joint sequence (`layers` > 1 = stacked "S", `bidirectional`
  = "B"), its state at the last real step (a step is real if any modality is real there) goes to an MLP.
- `LateFusionLSTM`: one LSTM per modality, each read at its own last real step, the summaries concatenated and
  classified by an MLP. Works on unaligned data (different T per modality).

The MLP is Linear -> ReLU -> Dropout per entry of `mlp_hidden`, then Linear(num_classes) (as the MFN authors'
EF-LSTM: last hidden -> fc -> ReLU -> dropout -> fc, IMPLEMENTATION-NOTES §2.1).
"""

from __future__ import annotations

import torch

from repro.models.blocks import mlp, per_modality
from repro.models.net import NetOutput
from repro.models.sequence import SequenceFusionNet
from repro.models.sequence.recurrent import MaskedLSTM


class EarlyFusionLSTM(SequenceFusionNet):
    def __init__(
        self,
        encoders,
        num_classes: int,
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        mlp_hidden=(64,),
        dropout: float = 0.0,
        use_mask: bool = True,
    ):
        super().__init__(encoders, num_classes)
        self.lstm = MaskedLSTM(sum(self.dims.values()), int(hidden), num_layers=int(layers),
                               bidirectional=bool(bidirectional), use_mask=use_mask)
        self.classifier = mlp(self.lstm.out_features, mlp_hidden, num_classes, dropout)

    def forward(self, batch):
        xs, masks = self.sequences(batch)
        steps = {m: x.shape[1] for m, x in xs.items()}
        if len(set(steps.values())) != 1:
            raise ValueError(f"EarlyFusionLSTM concatenates the modalities per step and needs aligned data (equal "
                             f"steps), got {steps}; use the word-aligned release of the data or fusion=lf_lstm")
        joint = torch.cat([xs[m] for m in self.modalities], dim=-1)
        mask = torch.stack([masks[m] for m in self.modalities]).any(dim=0)
        _, last = self.lstm(joint, mask)
        return NetOutput(logits=self.classifier(last))


class LateFusionLSTM(SequenceFusionNet):
    def __init__(
        self,
        encoders,
        num_classes: int,
        hidden=64,
        layers: int = 1,
        bidirectional: bool = False,
        mlp_hidden=(64,),
        dropout: float = 0.0,
        use_mask: bool = True,
    ):
        super().__init__(encoders, num_classes)
        sizes = per_modality(hidden, self.modalities, "hidden")
        self.lstms = torch.nn.ModuleDict({
            m: MaskedLSTM(self.dims[m], sizes[m], num_layers=int(layers), bidirectional=bool(bidirectional),
                          use_mask=use_mask)
            for m in self.modalities
        })
        joint = sum(lstm.out_features for lstm in self.lstms.values())
        self.classifier = mlp(joint, mlp_hidden, num_classes, dropout)

    def forward(self, batch):
        xs, masks = self.sequences(batch)
        summaries = [self.lstms[m](xs[m], masks[m])[1] for m in self.modalities]
        return NetOutput(logits=self.classifier(torch.cat(summaries, dim=-1)))
