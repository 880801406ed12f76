"""The results record: one `results.json` per finished (or failed) run, written atomically.

Schema (DESIGN.md, "Results record"): `schema`, `run_id`, `status` (completed | failed | interrupted, with
`error`), `data`, `backbone`, `fusion`, `fold`, `seed`, `protocol`, `overrides`, `tags`, `metrics`
(`test`, `val`, `best_epoch`), `params` (total, trainable, fusion), `flops` (forward per sample),
`peak_memory`, `wall_time_s`, `hardware`, `versions` (with `git_commit`, `git_dirty`), `config` (resolved),
`synthetic` (the reader read SYNTHETIC fixture data), `debug` and `identity` (`repro.provenance`: what a table
compares before it counts the record), and `resumed` for a run continued with `train.py resume=` (each resume: after
which epoch, from which checkpoint; `repro.resume`). Task kind `emotion_bce` adds `protocol.thresholds` (tuned |
fixed_0.5) and `metrics.thresholds` ({emotion: the threshold the test applied}); a network reporting feature FLOPs
adds `feature_gflops` to `metrics.val` / `metrics.test` (MESM's GFLOPs per sample). Tables are computed from these
records only.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path

from repro.files import atomic_write, atomic_write_text  # noqa: F401  (re-exported: the records' writers)

SCHEMA = "repro.results/1"
FILENAME = "results.json"
STATUSES = ("completed", "failed", "interrupted", "running")


def write_record(run_dir: str | Path, record: dict) -> Path:
    if record.get("status") not in STATUSES:
        raise ValueError(f"results record status must be one of {STATUSES}, got {record.get('status')!r}")
    record = {"schema": SCHEMA, **record}
    path = Path(run_dir) / FILENAME
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=False, default=str) + "\n")
    return path


def read_json_record(path: str | Path, schema: str, fix: str, error: type[Exception] = ValueError) -> dict:
    """A JSON record with a `schema` field (results.json, search.json); one-line `error`s ending with `fix`."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise error(f"{path} is not valid JSON ({err}); {fix}") from None
    if record.get("schema") != schema:
        raise error(f"{path} has schema {record.get('schema')!r}, expected {schema!r}; {fix}")
    return record


def read_record(path: str | Path) -> dict:
    return read_json_record(path, SCHEMA, "delete it and re-run that run")


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically (a temporary file renamed into place) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def find_records(root: str | Path, status: str | None = "completed") -> Iterable[tuple[Path, dict]]:
    for path in sorted(Path(root).rglob(FILENAME)):
        record = read_record(path)
        if status is None or record.get("status") == status:
            yield path, record


def _git(args: list[str], cwd: str | Path | None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit(cwd: str | Path | None = None) -> str:
    out = _git(["rev-parse", "HEAD"], cwd)
    return (out or "").strip() or "unknown"


def git_dirty(cwd: str | Path | None = None) -> bool | None:
    """Whether tracked files differ from the commit (untracked files do not count); None outside a git checkout."""
    out = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return None if out is None else bool(out.strip())


def versions() -> dict:
    import lightning
    import torch

    import repro

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "repro": repro.__version__,
        "git_commit": git_commit(Path(__file__).parent),
        "git_dirty": git_dirty(Path(__file__).parent),
    }


def hardware() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info
