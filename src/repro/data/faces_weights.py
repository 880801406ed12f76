"""MTCNN weights for `repro.data.faces`: fetched from the facenet-pytorch 2.5.3 wheel (MIT licence).

MESM (§4.1 of mesm.txt; IMPLEMENTATION-NOTES §5.1) crops faces with facenet-pytorch's MTCNN. That package cannot be
installed here (it pulls a CUDA torchvision, ENVIRONMENT.md "Faces"), but its wheel holds the three networks' weights
as plain state dicts (``facenet_pytorch/data/{pnet,rnet,onet}.pt``). Here: downloading the wheel with the
ordinary pip client (``pip download --no-deps``), extracting those three files plus the package's MIT licence text into
a folder, and loading each into a network with exactly the expected keys and shapes (`repro.data.faces.fetch_weights`
puts these together).

The wheel is kept in the folder (1.9 MB): a later fetch re-extracts from it without the network, and the reference
test (tests/data/test_faces.py) imports facenet's own detection code from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from repro.data.base import DataError

FACENET_REQUIREMENT = "facenet-pytorch==2.5.3"
WHEEL_NAME = "facenet_pytorch-2.5.3-py3-none-any.whl"
WEIGHT_FILES = ("pnet.pt", "rnet.pt", "onet.pt")
LICENSE_FILE = "LICENSE-facenet-pytorch.md"
_WHEEL_WEIGHTS = "facenet_pytorch/data/"
_WHEEL_LICENSE = "facenet_pytorch-2.5.3.dist-info/LICENSE.md"
_BY_HAND = (f"by hand: on a machine with internet run `pip download --no-deps {FACENET_REQUIREMENT}`, copy "
            f"{WHEEL_NAME} here and run `python scripts/fetch_mtcnn_weights.py --wheel <that file>`")


class WeightsFetchError(DataError):
    """The wheel could not be downloaded or does not hold the expected weights (one line, with the manual way)."""


def default_weights_dir() -> Path:
    """Where the weights live unless told otherwise: $REPRO_MTCNN_DIR, else <user cache>/repro/mtcnn."""
    if os.environ.get("REPRO_MTCNN_DIR"):
        return Path(os.environ["REPRO_MTCNN_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "repro" / "mtcnn"


def missing_weight_files(folder: Path) -> list[str]:
    return [name for name in WEIGHT_FILES if not (Path(folder) / name).is_file()]


def download_wheel(dest: Path, timeout_s: float = 120.0) -> Path:
    """`pip download --no-deps facenet-pytorch==2.5.3` into `dest`; returns the wheel's path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # few retries and a short socket timeout: without a network pip should fail in seconds, not minutes
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--retries", "1",
           "--timeout", "15", "--disable-pip-version-check", "-q", "-d", str(dest), FACENET_REQUIREMENT]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise WeightsFetchError(f"pip download {FACENET_REQUIREMENT} did not finish ({e}); {_BY_HAND}") from e
    wheel = dest / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise WeightsFetchError(f"pip download {FACENET_REQUIREMENT} failed ({last}); {_BY_HAND}")
    return wheel


def extract_weights(wheel: Path, out_dir: Path) -> list[Path]:
    """Copy the three state dicts and the MIT licence out of `wheel` into `out_dir` (atomic renames)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise WeightsFetchError(f"{wheel}: not a readable wheel ({e}); {_BY_HAND}") from e
    written = []
    with archive:
        names = set(archive.namelist())
        for member, target in [(_WHEEL_WEIGHTS + n, n) for n in WEIGHT_FILES] + [(_WHEEL_LICENSE, LICENSE_FILE)]:
            if member not in names:
                raise WeightsFetchError(f"{wheel}: expected {member} inside (is it {WHEEL_NAME}?); {_BY_HAND}")
            written.append(_write_atomic(out_dir / target, archive.read(member)))
    return written


def _write_atomic(path: Path, data: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def load_state_dict(path: Path, module: torch.nn.Module) -> torch.nn.Module:
    """Load one of the three files into `module` (strict: same keys, same shapes), or a one-line DataError."""
    fix = f"fetch it again with `python scripts/fetch_mtcnn_weights.py --out {path.parent}`"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file has the same fix
        raise DataError(f"{path}: not a readable torch state dict ({type(e).__name__}); {fix}") from e
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if found != expected:
        wrong = sorted(set(expected) ^ set(found)) or sorted(k for k in expected if expected[k] != found[k])
        raise DataError(f"{path}: expected facenet-pytorch 2.5.3's {path.stem} state dict ({len(expected)} tensors), "
                        f"keys or shapes differ at {', '.join(wrong[:3])}; {fix}")
    module.load_state_dict(state, strict=True)
    return module
