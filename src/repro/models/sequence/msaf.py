"""MSAF for sequences: the CMU-MOSEI network of msaf.txt §3.2 and §4.2 (authors' ``cmu_mosei/networks/
msaf_mosei.py``, IMPLEMENTATION-NOTES §1.3).

Per modality: LSTM layer 1 (in -> hidden[m]; visual 32, audio 64, text 128), its per-step outputs permuted to
(B, C, T) and fused by ONE `repro.models.fusion.msaf.MSAF` module (split_block q = 5: the time axis cut into
5 segments, one MSAF block each), permuted back, LSTM layer 2 (hidden -> hidden), the last step of each
modality, concatenated (32 + 64 + 128 = 224) -> Linear(num_classes). The MSAF attention is recorded in
``extras["msaf0_attention"]`` (B, q, n_blocks, C) (or (B, n_blocks, C) with q = 1).

The config mirrors ``configs/fusion/msaf.yaml``: `points` is a list with ONE mapping {modality: "lstm1"} (the only
tap); the MSAF hyperparameters may be given as a value or a one-element list.

``use_mask`` defaults to **false** here, unlike the other sequence networks: the authors run both LSTMs over all
50 padded steps and read the final position (visual/audio are left-padded, so that is their last real frame;
the BERT text is right-padded, so it is a pad token's output — a QUIRK of the reproduced system), and MSAF's
segments and join averages are taken over the padded 50 positions. Reproducing their table needs that function.
With ``use_mask=true`` both LSTMs skip the padding, layer 1's outputs are zero at pads, and each modality is
read at its last real step; MSAF still segments absolute positions and averages over all of them (pads
contribute zeros), so a modality's padding cannot change the output but does dilute the join descriptor.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.models.fusion.msaf import MSAF, per_point
from repro.models.net import NetOutput
from repro.models.sequence import SequenceFusionNet
from repro.models.sequence.recurrent import MaskedLSTM, per_modality

TAPS = ("lstm1",)
# msaf.txt §4.2: 32, 64 and 128 hidden units for both LSTM layers of the visual, audio and text modality.
DEFAULT_HIDDEN = {"vision": 32, "visual": 32, "audio": 64, "text": 128}


def _single_point(points) -> dict[str, str]:
    """The one {modality: tap} mapping of `points`, checked."""
    points = list(points) if points is not None else []
    if len(points) != 1:
        raise ValueError(f"SequenceMSAFNet has one fusion point (after LSTM layer 1); points has {len(points)} "
                         f"entries, expected [{{modality: lstm1, ...}}]")
    point = {str(m): str(tap) for m, tap in dict(points[0]).items()}
    bad = {m: tap for m, tap in point.items() if tap not in TAPS}
    if bad:
        raise ValueError(f"fusion point taps {bad} are not valid for SequenceMSAFNet; the only tap is {TAPS[0]!r}")
    return point


class SequenceMSAFNet(SequenceFusionNet):
    def __init__(
        self,
        encoders,
        num_classes: int,
        points,
        block_channels,
        reduction=4,
        lowest_atten=0.0,
        block_dropout=0.0,
        split_block=1,
        quirk_double_dropout: bool = False,
        hidden=None,
        use_mask: bool = False,
    ):
        super().__init__(encoders, num_classes)
        point = _single_point(points)
        unknown = [m for m in point if m not in self.encoders]
        if unknown:
            raise KeyError(f"fusion point names modalities {unknown}; encoders are {self.modalities}")
        self.point_modalities = list(point)
        self.hidden = per_modality(hidden, self.modalities, "hidden", DEFAULT_HIDDEN)
        self.lstm1 = nn.ModuleDict({m: MaskedLSTM(self.dims[m], self.hidden[m], use_mask=use_mask)
                                    for m in self.modalities})
        self.lstm2 = nn.ModuleDict({m: MaskedLSTM(self.hidden[m], self.hidden[m], use_mask=use_mask)
                                    for m in self.modalities})
        self.msaf = MSAF(
            in_channels=[self.hidden[m] for m in self.point_modalities],
            block_channel=int(per_point(block_channels, 1, "block_channels")[0]),
            reduction=int(per_point(reduction, 1, "reduction")[0]),
            lowest_atten=float(per_point(lowest_atten, 1, "lowest_atten")[0]),
            block_dropout=float(per_point(block_dropout, 1, "block_dropout")[0]),
            split_block=int(per_point(split_block, 1, "split_block")[0]),
            quirk_double_dropout=bool(quirk_double_dropout),
        )
        self.use_mask = bool(use_mask)
        self.classifier = nn.Linear(sum(self.hidden.values()), num_classes)

    def forward(self, batch):
        xs, masks = self.sequences(batch)
        steps = {m: self.lstm1[m](xs[m], masks[m])[0] for m in self.modalities}  # (B, T, H)
        fused, attention = self.msaf([steps[m].transpose(1, 2) for m in self.point_modalities])  # (B, H, T)
        steps.update({m: y.transpose(1, 2) for m, y in zip(self.point_modalities, fused)})
        last = [self.lstm2[m](steps[m], masks[m])[1] for m in self.modalities]
        return NetOutput(logits=self.classifier(torch.cat(last, dim=-1)), extras={"msaf0_attention": attention})
