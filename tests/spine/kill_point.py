"""Test-only callback: a deterministic moment to kill a training subprocess (tests/spine/test_resume.py).

With `$REPRO_TEST_KILL_MARKER` set, the run writes that file at the second batch of epoch `epoch` (0-based: after
`epoch` whole epochs, so their `last.ckpt` exists) and waits there to be killed; without it, the callback does nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from lightning.pytorch import Callback

MARKER_ENV = "REPRO_TEST_KILL_MARKER"


class PauseToBeKilled(Callback):
    def __init__(self, epoch: int = 2) -> None:
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        marker = os.environ.get(MARKER_ENV)
        if not marker or trainer.current_epoch != self.epoch or batch_idx != 1:
            return
        Path(marker).write_text(str(os.getpid()))
        while not trainer.received_sigterm:  # SIGKILL ends the wait outright; SIGTERM lets Lightning stop the run
            time.sleep(0.05)
