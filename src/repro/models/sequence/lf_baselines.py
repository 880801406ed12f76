"""The late-fusion baselines of MESM on hand-crafted features (Dai et al., NAACL 2021, mesm.txt §5.2 "Baselines",
"Multimodal Learning": LF-LSTM and LF-TRANS, Tables 3-4; IMPLEMENTATION-NOTES §5.4), as the authors' code builds them
(wenliangdai/Multimodal-End2end-Sparse ``src/models/baselines/lf_rnn.py`` class LF_RNN and ``lf_transformer.py``
class LF_Transformer with ``src/models/transformer_encoder.py`` WrappedTransformerEncoder; read, not copied).

Both: one unimodal encoder per modality of width = that modality's feature size (hfc sizes 300 / 144 / 35), a head
Linear(w, w // 2) -> ReLU -> Linear(w // 2, C) per modality giving C logits each, and the logits combined by a
bias-free Linear(n_modalities -> 1) over the stacked (B, C, n) logits ("weighted_fusion"); one modality alone
returns its logits.

- `LFRNN` (``lf_rnn``): nn.LSTM(D -> D), 1 layer, bidirectional (LF_RNN's constructor defaults, which main.py
  never overrides: ``-nl/-dr/-bi/-hs`` are not passed), so w = 2D; the inter-layer dropout 0.1 only acts with > 1
  layer. Summary: the final hidden state of each direction, concatenated (forward, backward).
- `LFTransformer` (``lf_transformer``): a learned [CLS] embedding (nn.Embedding(1, D)) prepended, no positional
  encoding, nn.TransformerEncoder of ``trans_nlayers`` (default 2) post-LayerNorm nn.TransformerEncoderLayer(D,
  heads) with PyTorch's defaults (FFN 2048, dropout 0.1, ReLU), heads text 4, audio 2, vision 5; the [CLS] output is
  the summary, w = D.

Padding. By default (following the paper, which describes no padding artefact) padding never reaches a summary: the
LSTMs run packed over the real steps (``<modality>_mask``, wherever they lie) and the transformers mask every padding
key. ``quirk_padding=true`` reproduces the authors' handling (their collate pads each batch on the right to its
longest sequence; the readers here pad further and `trim_to_batch` cuts back to that, which is a no-op on the
default path): the LSTMs run unpacked over the padded batch — text is read at the output of the LAST position
(``output_t[-1]``: forward state after the padding, backward state of the final padding step alone), audio and
vision at the final hidden states (forward after the padding); the text transformer attends over its padding (no
mask is passed for text), audio / vision mask only the padding after each sample's last real step (their ``lens``).
On left-padded MulT-style MOSEI arrays nothing is trailing padding, so the quirk sees the whole stored sequence, as
the authors' code does.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from repro.models.blocks import per_modality
from repro.models.net import NetOutput
from repro.models.sequence import SequenceFusionNet
from repro.models.sequence.recurrent import MaskedLSTM

LF_TRANSFORMER_HEADS = {"text": 4, "audio": 2, "vision": 5}  # lf_transformer.py (300/4, 144/2, 35/5)


def trim_to_batch(xs: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]):
    """Cut every modality after the last step that is real in some sample of the batch (at least one step): the
    authors' collate pads a batch to its own longest sequence, the readers to the longest of the data set."""
    out_x, out_m = {}, {}
    for m, x in xs.items():
        real = masks[m].any(dim=0)
        steps = int(real.nonzero().max()) + 1 if bool(real.any()) else 1
        out_x[m], out_m[m] = x[:, :steps], masks[m][:, :steps]
    return out_x, out_m


def trailing_padding(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) True at the steps after each sample's last real step (the authors' length mask; all True if none)."""
    seen_from_right = mask.flip(1).to(torch.int32).cummax(dim=1).values.flip(1)
    return seen_from_right == 0


def late_head(width: int, num_classes: int) -> nn.Sequential:
    """The per-modality head of both baselines: Linear(w, w // 2) -> ReLU -> Linear(w // 2, C)."""
    return nn.Sequential(nn.Linear(width, width // 2), nn.ReLU(), nn.Linear(width // 2, num_classes))


class _LateFusionBaseline(SequenceFusionNet):
    """Per-modality summaries -> per-modality logits -> bias-free weighted fusion (shared by both baselines)."""

    def __init__(self, encoders, num_classes: int, quirk_padding: bool = False):
        super().__init__(encoders, num_classes)
        self.quirk_padding = bool(quirk_padding)
        # Linear(n -> 1, bias=False) over the modality axis of the stacked logits; absent for one modality
        self.weighted_fusion = nn.Linear(len(self.modalities), 1, bias=False) if len(self.modalities) > 1 else None

    def summarise(self, m: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, batch):
        xs, masks = trim_to_batch(*self.sequences(batch))
        logits = {m: self.heads[m](self.summarise(m, xs[m], masks[m])) for m in self.modalities}
        stacked = torch.stack([logits[m] for m in self.modalities], dim=-1)  # (B, C, n)
        fused = stacked[..., 0] if self.weighted_fusion is None else self.weighted_fusion(stacked).squeeze(-1)
        return NetOutput(logits=fused, extras={"modality_logits": stacked.transpose(1, 2)})


class LFRNN(_LateFusionBaseline):
    """LF-LSTM of MESM's baselines (``lf_rnn``): a bidirectional LSTM per modality, late weighted fusion."""

    def __init__(
        self,
        encoders,
        num_classes: int,
        hidden: int | Mapping[str, int] | None = None,
        layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.1,
        quirk_padding: bool = False,
    ):
        super().__init__(encoders, num_classes, quirk_padding)
        sizes = per_modality(hidden, self.modalities, "hidden", defaults=self.dims)  # None: the feature size
        self.lstms = nn.ModuleDict({
            m: MaskedLSTM(self.dims[m], sizes[m], num_layers=int(layers), bidirectional=bool(bidirectional),
                          dropout=float(dropout), use_mask=not self.quirk_padding)
            for m in self.modalities
        })
        self.heads = nn.ModuleDict({m: late_head(self.lstms[m].out_features, num_classes) for m in self.modalities})

    def summarise(self, m: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        outputs, last = self.lstms[m](x, mask)
        if self.quirk_padding and m == "text":
            return outputs[:, -1]  # QUIRK: output_t[-1], the last (padding) position of both directions
        return last


class CLSTransformer(nn.Module):
    """WrappedTransformerEncoder(get_cls=True): [CLS] + sequence -> post-LN encoder (no positions) -> [CLS] output."""

    def __init__(self, dim: int, heads: int, layers: int, ffn: int, dropout: float, modality: str = "<modality>"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"LF-Transformer: {modality} feature size {dim} is not divisible by {heads} heads; set "
                             f"fusion.net.heads.{modality} to a divisor of {dim}")
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=ffn, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.cls = nn.Embedding(1, dim)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        cls = self.cls.weight.expand(x.shape[0], 1, -1)
        if padding is not None:  # the [CLS] position is never padding
            padding = torch.cat([padding.new_zeros(x.shape[0], 1), padding], dim=1)
        return self.encoder(torch.cat([cls, x], dim=1), src_key_padding_mask=padding)[:, 0]


class LFTransformer(_LateFusionBaseline):
    """LF-Transformer of MESM's baselines (``lf_transformer``): a [CLS] transformer per modality, late fusion."""

    def __init__(
        self,
        encoders,
        num_classes: int,
        heads: int | Mapping[str, int] | None = None,
        layers: int = 2,
        ffn: int = 2048,
        dropout: float = 0.1,
        quirk_padding: bool = False,
    ):
        super().__init__(encoders, num_classes, quirk_padding)
        n_heads = per_modality(heads, self.modalities, "heads", defaults=LF_TRANSFORMER_HEADS)
        self.transformers = nn.ModuleDict({
            m: CLSTransformer(self.dims[m], n_heads[m], int(layers), int(ffn), float(dropout), m)
            for m in self.modalities
        })
        self.heads = nn.ModuleDict({m: late_head(self.dims[m], num_classes) for m in self.modalities})

    def summarise(self, m: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.quirk_padding:
            padding = ~mask
        else:  # QUIRK: no mask for text; audio / vision mask only each sample's trailing padding
            padding = None if m == "text" else trailing_padding(mask)
        return self.transformers[m](x, padding)
