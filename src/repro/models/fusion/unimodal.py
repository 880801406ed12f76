"""Unimodal baseline: one modality's network alone — an image/audio encoder's own classifier (the "video only" /
"audio only" rows of MSAF T1, LeNet-3 / LeNet-5 rows of MFAS T2, Maxout MLP (text) of MFAS T3), or, with `hidden`,
an LSTM over one modality's feature sequence (MSAF T3 "LSTM (Visual/Audio/Text)" rows, msaf.txt §4.2; the authors'
``cmu_mosei/networks/{visual,audio,text}_lstm.py``, IMPLEMENTATION-NOTES §1.3).

The other encoders are dropped at construction so that parameter counts, FLOPs and the batch contract
(`inputs` only asks for the kept modality) are those of the single network.

The LSTM form: `layers` stacked single-layer LSTMs (in -> hidden -> hidden ...; one multi-layer ``nn.LSTM`` without
inter-layer dropout is the same function with the same parameters) -> output at the last real step -> Dropout ->
Linear. MSAF-MOSEI: two LSTMs, hidden 32 (visual) / 64 (audio) / 128 (text, BERT), Dropout 0.1. The CMU presets
set `hidden`; one {modality: size} mapping can serve every unimodal preset.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from repro.models.blocks import per_modality
from repro.models.net import FusionNet, NetOutput
from repro.models.sequence import feature_size, step_masks
from repro.models.sequence.recurrent import MaskedLSTM


class UnimodalNet(FusionNet):
    def __init__(
        self,
        encoders,
        num_classes: int,
        modality: str,
        hidden: int | Mapping[str, int] | None = None,
        layers: int = 2,
        dropout: float = 0.1,
        use_mask: bool = True,
    ):
        names = list(encoders.keys())
        if modality not in names:
            raise KeyError(f"unimodal modality {modality!r} is not one of the encoders {names}")
        super().__init__({modality: encoders[modality]}, num_classes)
        self.modality = modality
        self.lstm = None
        if hidden is not None:  # an LSTM over the encoder's feature sequence
            self.dims = {modality: feature_size(modality, encoders[modality])}
            size = per_modality(hidden, [modality], "hidden")[modality]
            self.lstm = MaskedLSTM(self.dims[modality], size, num_layers=int(layers), use_mask=use_mask)
            self.dropout = nn.Dropout(float(dropout))
            self.classifier = nn.Linear(self.lstm.out_features, num_classes)

    def forward(self, batch):
        x = self.encoders[self.modality](self.inputs(batch)[self.modality])
        if self.lstm is None:
            logits = x
        else:
            _, last = self.lstm(x, step_masks({self.modality: x}, batch)[self.modality])
            logits = self.classifier(self.dropout(last))
        return NetOutput(logits=logits, extras={"modality_logits": logits.unsqueeze(1)})
