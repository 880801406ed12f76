"""`emotion_bce` under DDP on CPU (2 processes, gloo): the metrics computed from the scores gathered over both
processes, and the thresholds chosen from them, equal the single-process ones (SYNTHETIC data of
tests/spine/test_emotion_task). Without the gather (each process on its half) the thresholds differ: checked once by
hand with `sync_on_compute=False` (0.45 vs 0.65 for the first emotion).

The test runs this file as a script (Lightning's DDP relaunches the script for the second process, which a pytest
process cannot be); the script validates and tests the stand-in network and writes rank 0's logged values as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def distributed_values(out: Path) -> None:
    """Validate then test on 2 CPU processes; rank 0 writes {split: logged values} to `out`."""
    import lightning as L
    import torch

    from tests.spine.test_emotion_task import TEST, VAL, loader, logged, make_task

    torch.set_num_threads(1)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    task = make_task()
    val = logged(trainer.validate(task, loader(*VAL), verbose=False), "val")
    test = logged(trainer.test(task, loader(*TEST), verbose=False), "test")
    if trainer.is_global_zero:
        out.write_text(json.dumps({"val": val, "test": test, "world_size": trainer.world_size,
                                   "thresholds": task.chosen_thresholds.tolist()}))


@pytest.mark.slow  # ~15-25 s on 2 shared cores, mostly two processes importing torch and lightning
def test_gathered_metrics_equal_the_single_process_ones(tmp_path):
    from repro.metrics.emotion import emotion_metrics, tune_thresholds
    from tests.spine.test_emotion_task import EMOTIONS, METRICS, TEST, VAL, scores_of

    out = tmp_path / "ddp.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src"),
                                                         os.environ.get("PYTHONPATH", "")]),
           "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["world_size"] == 2
    thresholds = tune_thresholds(scores_of(VAL[0]), VAL[1])  # one process, all 48 validation samples
    assert result["thresholds"] == thresholds.tolist()
    for split, (probs, labels) in (("val", VAL), ("test", TEST)):
        expected = emotion_metrics(scores_of(probs), labels, thresholds, METRICS, EMOTIONS)
        for name, value in expected.items():
            assert result[split][name] == pytest.approx(value, abs=1e-6), (split, name)


if __name__ == "__main__":
    distributed_values(Path(sys.argv[1]))
