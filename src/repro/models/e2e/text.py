"""Text branch of FE2E / MESM: ALBERT's [CLS] feature -> Linear(hidden -> classes) (mesm.txt §4.2; IMPLEMENTATION-
NOTES §5.2: ALBERT-base-v2, `last_hidden_state[:, 0]`, the authors' `t_out`).

`tiny: true` builds a random-initialised SYNTHETIC tiny ALBERT (vocabulary 260 = the byte-level fixture tokeniser of
repro.data.text_tokens, embedding 16, hidden 32, 2 layers, 2 heads, intermediate 64) for fixtures, SMOKE runs and
tests; otherwise ALBERT-base-v2's weights are read offline from the local folder `model_dir` (a `save_pretrained`
copy). The pooler is not built (the authors read `last_hidden_state[:, 0]`; an unused pooler would hold
parameters without gradients). The [CLS] feature is also MESM's attention query (§4.3.1, q). The whole branch
(ALBERT + head) sits under `encoders.text`, the prefix of the optimiser's lr/10 group (IMPLEMENTATION-NOTES §5.4).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

TINY_ALBERT = {"vocab_size": 260, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2,
               "num_attention_heads": 2, "intermediate_size": 64}


def load_albert(tiny: bool, model_dir: str | os.PathLike | None) -> nn.Module:
    """The ALBERT model: the tiny random one, or albert-base-v2 from a local folder (offline)."""
    from transformers import AlbertConfig, AlbertModel

    if tiny:
        return AlbertModel(AlbertConfig(**TINY_ALBERT), add_pooling_layer=False)
    folder = Path(model_dir) if model_dir else None
    if folder is None or not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"ALBERT folder {folder} not found (data.text.model_dir; expected config.json + weights): on a machine "
            "with internet run AlbertModel.from_pretrained('albert-base-v2').save_pretrained(DIR) (and the tokenizer), "
            "copy DIR here and set paths.text_model_dir=DIR — or data.text.tiny=true for the SYNTHETIC tiny model")
    return AlbertModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)


class AlbertText(nn.Module):
    """ALBERT encoder declared by the backbone; `forward(ids, mask)` -> the [CLS] feature (B, hidden)."""

    def __init__(self, tiny: bool = False, model_dir: str | None = None):
        super().__init__()
        self.albert = load_albert(bool(tiny), model_dir)
        self.hidden_size = int(self.albert.config.hidden_size)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = torch.ones_like(ids, dtype=torch.long) if mask is None else mask.long()
        return self.albert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]


class TextClassifier(nn.Module):
    """The text branch: ALBERT [CLS] and its head; `forward` -> ([CLS] feature, logits)."""

    def __init__(self, encoder: AlbertText, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.hidden_size, num_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        cls = self.encoder(ids, mask)
        return cls, self.head(cls)
