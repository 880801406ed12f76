"""Fetch MTCNN's weights for MESM's face crops (repro.data.faces) from the facenet-pytorch 2.5.3 wheel.

    python scripts/fetch_mtcnn_weights.py [--out <folder>] [--wheel <facenet_pytorch-2.5.3-py3-none-any.whl>]

Runs `pip download --no-deps facenet-pytorch==2.5.3` (with this Python's pip; the package itself is never installed:
it would pull a CUDA torchvision) and extracts `facenet_pytorch/data/{pnet,rnet,onet}.pt` into --out (default:
$REPRO_MTCNN_DIR, else ~/.cache/repro/mtcnn), checks that each loads into repro's P/R/O-Net with exactly the expected
keys and shapes, and prints where they went. Idempotent: a second run finds the files and does nothing. Without a
network: download the wheel elsewhere with the same pip command, copy it here and pass it with --wheel.

Licence: facenet-pytorch (Tim Esler, 2019) is MIT-licensed; its licence text is copied next to the weights
(LICENSE-facenet-pytorch.md) and the wheel is kept there too. Exit code 0 on success, 1 on an error (one line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from repro.data.base import DataError
from repro.data.faces import fetch_weights
from repro.data.faces_weights import WEIGHT_FILES, default_weights_dir


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None,
                   help=f"folder for pnet.pt / rnet.pt / onet.pt (default: {default_weights_dir()})")
    p.add_argument("--wheel", type=Path, default=None,
                   help="a facenet_pytorch-2.5.3-py3-none-any.whl already downloaded (no network needed)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.wheel is not None and not args.wheel.is_file():
        print(f"error: {args.wheel}: no such wheel; download it with "
              "`pip download --no-deps facenet-pytorch==2.5.3`", file=sys.stderr)
        return 1
    try:
        folder = fetch_weights(args.out, wheel=args.wheel)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"MTCNN weights ({', '.join(WEIGHT_FILES)}) in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
