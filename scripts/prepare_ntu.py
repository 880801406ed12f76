"""Prepare NTU RGB+D 60's RGB videos for `data=ntu`: 1920×1080 → 256×256 avi at 30 fps (repro.data.ntu_prepare).

    python scripts/prepare_ntu.py [--root <NTU folder>] [--src <folder with the release's *_rgb.avi>] [--workers N]

Default --root: ${paths.data_dir}/ntu ($REPRO_DATA_DIR/ntu or ./data/ntu), the folder data=ntu reads; default --src:
<root>/nturgbd_rgb (the unzipped nturgbd_rgb_s0XX.zip files). Output: <root>/nturgbd_rgb/avi_256x256_30/<stem>_rgb.avi.
Resumable: a second run skips the videos already prepared. Exit code 0 when every video was prepared, 1 when some
failed (each listed with its reason; the others are prepared), 2 on a bad command or a missing source folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from repro.data.base import DataError, report_failures
from repro.data.ntu_prepare import QSCALE, default_root, prepare


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=None, help="the NTU folder (default: ${paths.data_dir}/ntu)")
    p.add_argument("--src", type=Path, default=None,
                   help="folder holding the release's *_rgb.avi files, at any depth (default: <root>/nturgbd_rgb)")
    p.add_argument("--workers", type=int, default=1, help="processes (one video each at a time)")
    p.add_argument("--qscale", type=int, default=QSCALE, help="MPEG-4 quantiser of the output (2 best .. 31)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    root = args.root or default_root()
    src = args.src or root / "nturgbd_rgb"
    try:
        report = prepare(src, root, workers=max(1, args.workers), qscale=args.qscale)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    return report_failures(report.failed, "video")


if __name__ == "__main__":
    sys.exit(main())
