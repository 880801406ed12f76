"""spconv on a CPU-only torch: the one place where spconv is imported and patched (ENVIRONMENT.md, "spconv").

MESM's sparse CNN blocks (mesm.txt §4.3.2) run on spconv 2.3.8 (the authors used SparseConvNet; IMPLEMENTATION-NOTES
§5). Two facts of that package on this project's machines are handled here and nowhere else:

1. Every backward pass asks for the current CUDA stream unconditionally and fails on a CPU-only torch
   ("Torch not compiled with CUDA enabled"). `patch_cpu_stream()` replaces spconv's stream getter by one returning
   stream 0 (the host) in each spconv module that imported it — only when CUDA is unavailable, once (idempotent).
2. spconv reads its (N, 3) int32 indices as row-major memory; torch 2.13's `nonzero()` returns a column-major tensor,
   which spconv silently turns into garbage. `sparse_indices(mask)` is the only way indices are built in this
   package: (frame, y, x) rows of the True sites, in row-major (frame, y, x) order, int32, contiguous.
"""

from __future__ import annotations

import importlib

import torch

# spconv modules that did `from spconv.pytorch.cppcore import get_current_stream` (their own name must be patched)
STREAM_USERS = ("spconv.pytorch.cppcore", "spconv.pytorch.ops", "spconv.pytorch.hash", "spconv.pytorch.utils")
_PATCHED = False


def _host_stream() -> int:
    """Stream 0: what spconv's CPU kernels expect when there is no CUDA stream."""
    return 0


def patch_cpu_stream() -> bool:
    """Apply the CPU stream patch when CUDA is unavailable; True when spconv now runs with it (idempotent)."""
    global _PATCHED
    if _PATCHED or torch.cuda.is_available():
        return _PATCHED
    for name in STREAM_USERS:
        module = importlib.import_module(name)
        if hasattr(module, "get_current_stream"):
            module.get_current_stream = _host_stream
    _PATCHED = True
    return True


def spconv_module():
    """`spconv.pytorch`, patched for CPU backward where needed; a one-line error when spconv is missing."""
    try:
        import spconv.pytorch as spconv_pytorch
    except ImportError as err:  # pragma: no cover - spconv is a declared dependency
        raise ImportError("MESM needs spconv (the CPU package `spconv==2.3.8`, or spconv-cuXXX on a GPU machine): "
                          "pip install spconv==2.3.8") from err
    patch_cpu_stream()
    return spconv_pytorch


def sparse_indices(mask: torch.Tensor) -> torch.Tensor:
    """(N, 3) int32 row-major (frame, y, x) indices of the True sites of a (F, H, W) bool mask."""
    if mask.dim() != 3 or mask.dtype != torch.bool:
        raise ValueError(f"sparse_indices expects a (frames, H, W) bool mask, got {tuple(mask.shape)} {mask.dtype}")
    return mask.nonzero().int().contiguous()
