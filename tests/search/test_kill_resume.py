"""A search killed with SIGKILL (no clean-up at all) resumes from its record and loses no finished architecture.
SYNTHETIC AV-MNIST fixture. Slow (two processes, ~1 min): `make test-full`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from repro.config import CONFIG_DIR
from repro.search.state import read_search_record

SEARCH = CONFIG_DIR.parent / "search.py"


@pytest.mark.slow
def test_sigkilled_search_resumes(tmp_path, data_dir):
    args = [sys.executable, str(SEARCH), "data=avmnist", "data.reader.val_size=20", "search.iterations=1",
            "search.max_layers=2", "search.samples=3", "search.surrogate.epochs=2", "search.pretrain.max_epochs=1",
            "search.train.epochs=20", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}",
            f"search.dir={tmp_path / 's'}", "callbacks=none"]
    record_path = tmp_path / "s" / "search.json"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.time() + 300
    finished = 0
    while time.time() < deadline and finished < 5:  # wait until a few architectures are recorded
        time.sleep(0.5)
        if record_path.is_file():
            try:
                finished = len(json.loads(record_path.read_text())["evaluations"])
            except json.JSONDecodeError:  # pragma: no cover - the record is written atomically
                pytest.fail("search.json was seen half-written")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_search_record(tmp_path / "s")
    assert before["status"] == "running" and len(before["evaluations"]) >= 5
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    after = read_search_record(tmp_path / "s")
    assert after["status"] == "completed" and len(after["evaluations"]) == 30 + 3
    assert after["evaluations"][: len(before["evaluations"])] == before["evaluations"]
