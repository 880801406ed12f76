"""Unimodal baseline: one modality's encoder alone (the "video only" / "audio only" rows of MSAF T1,
LeNet-3 / LeNet-5 rows of MFAS T2).

The other encoders are dropped at construction so that parameter counts, FLOPs and the batch contract
(`inputs` only asks for the kept modality) are those of the single network.
"""

from __future__ import annotations

from repro.models.net import FusionNet, NetOutput


class UnimodalNet(FusionNet):
    def __init__(self, encoders, num_classes: int, modality: str):
        names = list(encoders.keys())
        if modality not in names:
            raise KeyError(f"unimodal modality {modality!r} is not one of the encoders {names}")
        super().__init__({modality: encoders[modality]}, num_classes)
        self.modality = modality

    def forward(self, batch):
        x = self.inputs(batch)[self.modality]
        logits = self.encoders[self.modality](x)
        return NetOutput(logits=logits, extras={"modality_logits": logits.unsqueeze(1)})
