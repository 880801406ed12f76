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


def test_batch_to_keeps_the_concatenated_rows_of_the_first_samples():
    """MESM-style batches concatenate every sample's frames (`video` (ΣF, ...) with `video_counts`): cutting the batch
    to 2 samples keeps exactly the first two samples' frames, not the first two frames."""
    from repro.models.complexity import batch_to

    counts = torch.tensor([3, 1, 4])
    video = torch.arange(8).float().view(8, 1)
    batch = {"video": video, "video_counts": counts, "label": torch.zeros(3, 6), "id": ["a", "b", "c"]}
    cut = batch_to(batch, 2)
    assert cut["video"].flatten().tolist() == [0, 1, 2, 3]
    assert cut["video_counts"].tolist() == [3, 1] and cut["label"].shape == (2, 6) and cut["id"] == ["a", "b"]
