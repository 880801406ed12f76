"""GPU paths (one GPU, bf16 autocast). Skipped cleanly where CUDA is absent, as on CI."""

from __future__ import annotations

import pytest
import torch

from repro.results import read_record
from repro.train import run
from tests.conftest import FAST, compose_train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("fusion", ["concat", "msaf", "mmtm", "centralnet"])
def test_one_gpu_step(fusion, precision, tmp_path, data_dir):
    cfg = compose_train(["data=avmnist", "data.reader.val_size=20", f"fusion={fusion}", "trainer=gpu",
                         f"trainer.precision={precision}", *FAST], tmp_path, data_dir)
    run(cfg)
    record = read_record(tmp_path / "results.json")
    assert record["status"] == "completed" and record["hardware"]["cuda"]
    assert record["peak_memory"]["device"] == "cuda"


@pytest.fixture(scope="module")
def unaligned_dir(tmp_path_factory):
    from repro.data.fixtures_paired import write_paired_mult_pickles

    root = tmp_path_factory.mktemp("cmu_unaligned_gpu")
    write_paired_mult_pickles(root / "mosei", dataset="mosei", n=(8, 4, 4))
    return root


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("fusion", ["mult", "mica", "ctc_ef_lstm"])
def test_one_gpu_step_on_unaligned_sequences(fusion, precision, tmp_path, unaligned_dir):
    """MulT / MICA (PEA's CUDA path: the sorted selection) / CTC EF-LSTM train on the GPU, SYNTHETIC paired fixture."""
    cfg = compose_train(["data=mosei_unaligned", f"fusion={fusion}", "data.batch_size=4", "data.check_steps=false",
                         "trainer=gpu", f"trainer.precision={precision}", *FAST], tmp_path, unaligned_dir)
    run(cfg)
    record = read_record(tmp_path / "results.json")
    assert record["status"] == "completed" and record["hardware"]["cuda"]
    assert record["peak_memory"]["device"] == "cuda"


def test_pea_selection_on_cuda_equals_cpu():
    from repro.models.sequence.mica_losses import pea_selection

    g = torch.Generator().manual_seed(0)
    attention = torch.randn(3, 2, 40, 60, generator=g).softmax(-1)
    target_mask, source_mask = torch.ones(3, 40, dtype=torch.bool), torch.ones(3, 60, dtype=torch.bool)
    target_mask[1, :10], source_mask[2, :25] = False, False
    expected = pea_selection(attention, target_mask, source_mask, 0.3)
    got = pea_selection(attention.cuda(), target_mask.cuda(), source_mask.cuda(), 0.3)
    assert got.is_cuda and torch.equal(got.cpu(), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("d_k", [4, 6])  # MICA Table 1's head size, the released MulT code's
def test_mult_attention_runs_in_the_memory_efficient_kernel(d_k, dtype):
    """fused_attention pads the head size so that CUDA's memory-efficient kernel takes it (restricted to that kernel,
    SDPA raises instead of falling back to the math kernel), and equals the explicit softmax."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from repro.models.sequence.mult import AttentionMask, fused_attention, masked_probabilities

    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(4, 10, n, d_k, generator=g, device="cuda", dtype=dtype, requires_grad=True)
               for n in (50, 64, 64))
    allowed = AttentionMask(torch.arange(64, device="cuda")[None, :] >= torch.tensor([0, 5, 20, 63], device="cuda")[
        :, None], 50, False).allowed
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
        got = fused_attention(q, k, v, allowed, 0.0)
        got.sum().backward()
    expected = masked_probabilities(q.float(), k.float(), allowed) @ v.float()
    tolerance = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.bfloat16 else {"atol": 1e-5, "rtol": 1e-4}
    torch.testing.assert_close(got.float(), expected, **tolerance)
    assert q.grad is not None and torch.isfinite(q.grad).all()
