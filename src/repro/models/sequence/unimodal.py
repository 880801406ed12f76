"""Unimodal LSTM baseline on one modality's feature sequence (MSAF T3 "LSTM (Visual/Audio/Text)" rows, msaf.txt
§4.2; the authors' ``cmu_mosei/networks/{visual,audio,text}_lstm.py``, IMPLEMENTATION-NOTES §1.3).

`layers` stacked single-layer LSTMs (in -> hidden -> hidden ...; one multi-layer ``nn.LSTM`` without inter-layer
dropout is the same function with the same parameters) -> output at the last real step -> Dropout -> Linear.
MSAF-MOSEI: two LSTMs, hidden 32 (visual) / 64 (audio) / 128 (text, BERT), Dropout 0.1.

As `repro.models.fusion.unimodal.UnimodalNet`, the other encoders are dropped at construction, so parameter
counts and the batch contract are those of the single network.
"""

from __future__ import annotations

from torch import nn

from repro.models.net import NetOutput
from repro.models.sequence import SequenceFusionNet
from repro.models.sequence.recurrent import MaskedLSTM


class SequenceUnimodalNet(SequenceFusionNet):
    def __init__(
        self,
        encoders,
        num_classes: int,
        modality: str,
        hidden,
        layers: int = 2,
        dropout: float = 0.1,
        use_mask: bool = True,
    ):
        names = list(encoders.keys())
        if modality not in names:
            raise KeyError(f"unimodal modality {modality!r} is not one of the encoders {names}")
        super().__init__({modality: encoders[modality]}, num_classes)
        self.modality = modality
        if hasattr(hidden, "keys"):  # one {modality: size} mapping can serve every unimodal preset
            if modality not in hidden:
                raise ValueError(f"hidden has no size for {modality!r} (keys {sorted(hidden)}); set hidden.{modality}")
            hidden = hidden[modality]
        self.lstm = MaskedLSTM(self.dims[modality], int(hidden), num_layers=int(layers), use_mask=use_mask)
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(self.lstm.out_features, num_classes)

    def forward(self, batch):
        xs, masks = self.sequences(batch)
        _, last = self.lstm(xs[self.modality], masks[self.modality])
        logits = self.classifier(self.dropout(last))
        return NetOutput(logits=logits, extras={"modality_logits": logits.unsqueeze(1)})
