"""The learnable SYNTHETIC AV-MNIST used by tests that check training beats chance (not only that it runs).

`repro.data.fixtures.write_avmnist` with less pixel noise (10 instead of 90): the same class patterns. The MFAS LeNets
global-average-pool a per-class spatial pattern and their BatchNorm running statistics need a few dozen steps, so
`LEARN` trains 8 epochs of the 60 training samples in batches of 8 (64 steps) and tests all 40 test samples.
Measured test accuracy (seeds 0-2, every AV-MNIST fusion, 8 epochs): >= 0.875, except CentralNet at seed 2 (0.1);
the tests run seed 0, where every fusion reached >= 0.9 (chance 0.1, so `MARGIN` leaves >= 0.4 of headroom).
"""

from __future__ import annotations

from repro.data.fixtures import write_avmnist

LEARN = ["data=avmnist", "data.reader.val_size=20", "trainer.max_epochs=8", "data.batch_size=8", "optimizer.lr=3e-3",
         "callbacks=none", "count_flops=false"]
CHANCE = 1 / 10  # AV-MNIST: ten balanced classes
MARGIN = 0.4


def write_learnable(tmp_path_factory):
    """A data_dir with the learnable SYNTHETIC avmnist/ (MultiBench layout); each module's `learnable_dir`."""
    root = tmp_path_factory.mktemp("learnable")
    write_avmnist(root / "avmnist", layout="multibench", noise=10.0)
    return root
