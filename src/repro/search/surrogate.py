"""The MFAS surrogate π: a recurrent model predicting an architecture's validation score (mfas.txt §3.2).

Architectures have 1..L layers, so the surrogate reads the sequence of layer triplets γ_1..γ_l. As the
authors' `SimpleRecurrentSurrogate(100, 3, 100)` (IMPLEMENTATION-NOTES §3.2): each layer's encoding →
Linear(→100) + Sigmoid → LSTM(100 → 100) → last output → Linear(100 → 1) → Sigmoid; Linear weights
U(−0.1, 0.1) and biases 1.8; MSE loss, Adam (lr 1e-3); an update is `epochs` passes, each pass one batch per
sequence length holding every stored architecture of that length.

Encoding of a layer (a switch, `encoding`):
- ``one_hot`` (default): the concatenation of the one-hot vectors of the three categorical choices
  (M + N + P inputs). The choices are categories — tap 3 is not "more" than tap 2.
- ``raw_codes``: QUIRK of the authors' code — the three integer indices fed as floats (3 inputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

ENCODINGS = ("one_hot", "raw_codes")


class RecurrentSurrogate(nn.Module):
    def __init__(
        self,
        shape: tuple[int, int, int],
        encoding: str = "one_hot",
        embed_size: int = 100,
        hidden_size: int = 100,
        lr: float = 1e-3,
        init_range: float = 0.1,
        init_bias: float = 1.8,
    ):
        super().__init__()
        if encoding not in ENCODINGS:
            raise ValueError(f"surrogate encoding {encoding!r}: choose one of {ENCODINGS}")
        self.shape = tuple(int(v) for v in shape)
        self.encoding = encoding
        in_size = sum(self.shape) if encoding == "one_hot" else 3
        self.embed = nn.Sequential(nn.Linear(in_size, embed_size), nn.Sigmoid())
        self.lstm = nn.LSTM(embed_size, hidden_size, batch_first=True)
        self.out = nn.Sequential(nn.Linear(hidden_size, 1), nn.Sigmoid())
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.uniform_(module.weight, -init_range, init_range)
                nn.init.constant_(module.bias, init_bias)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    def encode(self, codes: np.ndarray) -> torch.Tensor:
        """(B, L, 3) integer codes -> (B, L, features)."""
        codes = torch.as_tensor(np.asarray(codes), dtype=torch.long)
        if self.encoding == "raw_codes":
            return codes.float()
        return torch.cat([nn.functional.one_hot(codes[..., k], n).float() for k, n in enumerate(self.shape)], dim=-1)

    def forward(self, codes: np.ndarray) -> torch.Tensor:
        """Predicted score in (0, 1) for a batch of same-length architectures, shape (B,)."""
        h, _ = self.lstm(self.embed(self.encode(codes)))
        return self.out(h[:, -1]).squeeze(-1)

    @staticmethod
    def _by_length(codes: Sequence[np.ndarray]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for k, c in enumerate(codes):
            groups.setdefault(len(c), []).append(k)
        return groups

    def predict(self, codes: Sequence[np.ndarray]) -> np.ndarray:
        scores = np.zeros(len(codes))
        self.eval()
        with torch.no_grad():
            for _, index in sorted(self._by_length(codes).items()):
                scores[index] = self(np.stack([codes[k] for k in index])).numpy()
        return scores

    def fit(self, codes: Sequence[np.ndarray], scores: Sequence[float], epochs: int = 50) -> float:
        """`epochs` passes over the stored (architecture, score) pairs; returns the last pass's mean MSE."""
        groups = sorted(self._by_length(codes).items())
        target = torch.as_tensor(np.asarray(scores, dtype=np.float32))
        self.train()
        last = 0.0
        for _ in range(epochs):
            losses = []
            for _, index in groups:
                self.optimizer.zero_grad()
                loss = nn.functional.mse_loss(self(np.stack([codes[k] for k in index])), target[index])
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
            last = float(np.mean(losses))
        return last

    def full_state(self) -> dict:
        return {"model": self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_full_state(self, state: dict) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
