"""MSAF is one method in one module: its staged and sequence placements compose the same block implementation.
Inputs are SYNTHETIC random tensors (structure and equivalence only)."""

from __future__ import annotations

import torch

import repro.models.sequence.msaf as saved_configs_name
from repro.models.backbones.lenet import LeNet
from repro.models.backbones.sequence_features import SequenceFeatures
from repro.models.fusion import msaf
from repro.models.fusion.msaf import MSAF, BlockDropout, MSAFBlock, MSAFNet, SequenceMSAFNet, msaf_modules

HPARAMS = {"block_channels": 8, "reduction": 2, "block_dropout": 0.2, "lowest_atten": 0.1, "split_block": 2}


def placements():
    torch.manual_seed(0)
    staged = MSAFNet({"image": LeNet(1, 8, 3, 10), "audio": LeNet(1, 8, 5, 10)}, 10,
                     points=[{"image": "conv2", "audio": "conv4"}], **HPARAMS)
    sequence = SequenceMSAFNet({"audio": SequenceFeatures(6), "text": SequenceFeatures(5)}, 1,
                               points=[{"audio": "lstm1", "text": "lstm1"}], hidden={"audio": 16, "text": 64},
                               **HPARAMS)
    return staged, sequence


def msaf_parts(net: torch.nn.Module) -> set[type]:
    return {type(m) for m in net.modules() if type(m).__module__ == msaf.__name__ and m is not net}


def test_both_placements_use_the_same_block_class():
    staged, sequence = placements()
    assert msaf_parts(staged) == msaf_parts(sequence) == {MSAF, MSAFBlock, BlockDropout}
    assert type(staged).__module__ == type(sequence).__module__ == msaf.__name__  # one method, one module
    # the name that configs saved before the move instantiate is the same class
    assert saved_configs_name.SequenceMSAFNet is SequenceMSAFNet


def test_a_hyperparameter_means_the_same_in_both_placements():
    staged, sequence = placements()
    # staged point: image conv2 (16 ch) + audio conv4 (64 ch); sequence point: audio 16 + text 64 hidden units
    reference = msaf_modules([[16, 64]], **HPARAMS)[0]
    for module in (staged.msaf[0], sequence.msaf):
        assert module.split_block == 2 and module.num_blocks == [2, 8]
        assert [b.dropout.p for b in module.blocks] == [0.2, 0.2]
        assert {k: v.shape for k, v in module.state_dict().items()} == {
            k: v.shape for k, v in reference.state_dict().items()}
    # same weights -> same function, whichever placement built the module
    sequence.msaf.load_state_dict(staged.msaf[0].state_dict())
    xs = [torch.randn(3, 16, 10), torch.randn(3, 64, 10)]
    staged.eval()
    sequence.eval()
    for got, want in zip(sequence.msaf(xs)[0], staged.msaf[0](xs)[0]):
        assert torch.equal(got, want)
