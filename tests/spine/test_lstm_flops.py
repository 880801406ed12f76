"""FLOPs of nn.LSTM: the fused CPU kernel is counted (2 × multiply-adds of every weight matrix per time step)."""

import pytest
import torch

from repro.models.complexity import forward_flops


class _LastOutput(torch.nn.Module):
    def __init__(self, lstm, packed: bool):
        super().__init__()
        self.lstm, self.packed = lstm, packed

    def forward(self, x):
        if self.packed:
            lengths = torch.tensor([x.shape[1], x.shape[1] - 2, 1])
            x = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True)
            return self.lstm(x)[0].data
        return self.lstm(x)[0]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_lstm_flops_counted(bidirectional, packed):
    lstm = torch.nn.LSTM(10, 20, num_layers=2, batch_first=True, bidirectional=bidirectional)
    x = torch.randn(3, 7, 10)
    tokens = (7 + 5 + 1) if packed else 3 * 7
    # per token and direction: 4H·I + 4H·H multiply-adds; layer 2 reads H·directions inputs
    want = 2 * tokens * sum(p.numel() for name, p in lstm.named_parameters() if name.startswith("weight"))
    assert forward_flops(_LastOutput(lstm, packed), x)["forward_per_sample"] == want
