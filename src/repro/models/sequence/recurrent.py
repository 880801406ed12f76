"""Masked recurrent building blocks shared by the CMU sequence networks (EF/LF-LSTM, TFN, LMF, MSAF-MOSEI).

The CMU releases LEFT-pad with zeros (real steps at the end, SDK ``get_tensors(direction=False)``,
IMPLEMENTATION-NOTES §1.3) while MMSA right-pads; a (B, T) bool mask (True = real step) says where the real
steps are wherever they lie. `pack_real_steps` moves the real steps of every row to the front, in their order,
with one vectorised gather (a stable sort of the mask), then packs them with
``pack_padded_sequence(enforce_sorted=False)`` so that the LSTM never sees a padding step.

`MaskedLSTM` wraps ``nn.LSTM`` (batch_first):

- ``use_mask=True``: packed run over the real steps only; per-step outputs are scattered back to the original
  positions (zeros at pads) and ``last`` is the output at the last REAL step.
- ``use_mask=False``: plain run over every step including the padding; ``last`` is the output at the final
  position (the MSAF authors' MOSEI code, IMPLEMENTATION-NOTES §1.3).

``last`` is the final hidden state of each direction (``h_n`` of the top layer): for a unidirectional LSTM this
is the output at the last real step; for a bidirectional one it is the forward output at the last real step
concatenated with the backward output at the first real step (each direction's summary of the whole sequence).

Rows with no real step (all-False mask): the packed run treats their length as 1 and reads one step of their
padding (position 0 after the stable sort, i.e. the zeros the releases pad with), so ``last`` is the LSTM's
response to one zero step — a learned "missing" vector, finite and with gradients. Their per-step outputs
are all zeros (every position is a pad).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


def real_lengths(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool mask -> (B,) int64 number of real steps per row."""
    if mask.dim() != 2:
        raise ValueError(f"a step mask must be (batch, steps), got shape {tuple(mask.shape)}")
    return mask.to(torch.bool).sum(dim=1)


def front_order(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) permutation of the step indices putting every row's real steps first, in their original order.

    A stable sort on "is padding" keeps the relative order of the real steps (and of the pads), so it works for
    left padding, right padding and any other pattern.
    """
    return torch.sort((~mask.to(torch.bool)).to(torch.int32), dim=1, stable=True).indices


def pack_real_steps(x: torch.Tensor, mask: torch.Tensor) -> tuple[PackedSequence, torch.Tensor, torch.Tensor]:
    """Pack the real steps of (B, T, D) `x`; returns (packed, order, lengths).

    `order` (B, T) is the gather index used (front-aligned position i of row b came from step order[b, i]);
    `lengths` (B,) are the real lengths with 0 raised to 1 (see the module docstring).
    """
    if x.dim() != 3 or mask.shape != x.shape[:2]:
        raise ValueError(f"expected x (B, T, D) and mask (B, T); got {tuple(x.shape)} and {tuple(mask.shape)}")
    order = front_order(mask)
    front = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    lengths = real_lengths(mask).clamp(min=1)
    packed = pack_padded_sequence(front, lengths.cpu(), batch_first=True, enforce_sorted=False)
    return packed, order, lengths


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T, D) `x` over the real steps of each row -> (B, D); rows with no real step give zeros."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    count = weights.sum(dim=1).clamp(min=1.0)
    return (x * weights).sum(dim=1) / count


class MaskedLSTM(nn.Module):
    """``nn.LSTM`` (batch_first) that skips padding (``use_mask=True``) or runs over it (``use_mask=False``).

    ``forward(x, mask=None)`` -> ``(outputs (B, T, H*dirs), last (B, H*dirs))``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        use_mask: bool = True,
    ):
        super().__init__()
        if int(input_size) < 1 or int(hidden_size) < 1 or int(num_layers) < 1:
            raise ValueError(f"MaskedLSTM needs input_size, hidden_size, num_layers >= 1; got "
                             f"{input_size}, {hidden_size}, {num_layers}")
        self.lstm = nn.LSTM(int(input_size), int(hidden_size), num_layers=int(num_layers), batch_first=True,
                            bidirectional=bool(bidirectional), dropout=float(dropout) if num_layers > 1 else 0.0)
        self.use_mask = bool(use_mask)
        self.out_features = int(hidden_size) * (2 if bidirectional else 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.use_mask or mask is None:
            outputs, (h_n, _) = self.lstm(x)
        else:
            mask = mask.to(device=x.device, dtype=torch.bool)
            packed, order, _ = pack_real_steps(x, mask)
            packed_out, (h_n, _) = self.lstm(packed)
            front, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])
            # Undo the gather: front-aligned step i of row b goes back to step order[b, i]; pads stay zero.
            outputs = torch.zeros_like(front).scatter(1, order.unsqueeze(-1).expand_as(front), front)
            outputs = outputs * mask.unsqueeze(-1).to(outputs.dtype)
        return outputs, self._top_layer_state(h_n)

    def _top_layer_state(self, h_n: torch.Tensor) -> torch.Tensor:
        """(layers*dirs, B, H) final states -> (B, H*dirs) of the top layer, directions concatenated."""
        dirs = 2 if self.lstm.bidirectional else 1
        return torch.cat(list(h_n[-dirs:]), dim=-1)
