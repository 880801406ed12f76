"""Prepare RAVDESS for `data=ravdess` / `data=ravdess_audio` (face crops + MFCCs; repro.data.ravdess_prepare).

    python scripts/prepare_ravdess.py --raw <folder with Actor_XX/ and landmarks/> [--out <dir>] [--workers N]
    python scripts/prepare_ravdess.py --raw <folder with Actor_XX/*.wav> --audio-only [--out <dir>]

Default --out: ${paths.data_dir}/ravdess (or ravdess_audio), i.e. $REPRO_DATA_DIR/ravdess or ./data/ravdess — the
folders the two data configs read. Resumable: a second run skips the clips already prepared. Exit code 0 when every
clip was prepared, 1 when some were bad (each listed with its reason; the others are prepared), 2 on a bad command.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from repro.data.base import DataError, report_failures
from repro.data.ravdess_prepare import CROP_FROM, default_out, prepare


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raw", required=True, type=Path,
                   help="the unzipped release: Actor_XX/ folders (Video_Speech_Actor_XX.zip, or "
                        "Audio_Speech_Actors_01-24.zip with --audio-only) and the landmark CSVs")
    p.add_argument("--landmarks", type=Path, default=None,
                   help="folder of FacialTracking_Actors_01-24.zip's CSVs (default: <raw>/landmarks, else <raw>)")
    p.add_argument("--audio-only", action="store_true", help="the audio-only release (03-01-…wav): MFCCs only")
    p.add_argument("--out", type=Path, default=None, help="prepared folder (default: ${paths.data_dir}/ravdess or "
                                                          "ravdess_audio)")
    p.add_argument("--workers", type=int, default=1, help="processes (one clip each at a time)")
    p.add_argument("--crop-from", choices=CROP_FROM, default="resized",
                   help="resized = the authors' way (frame squeezed to 224² first, then the face cut and enlarged; "
                        "QUIRK); full = the face cut from the full-resolution frame")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    kind = "audio" if args.audio_only else "video_audio"
    out = args.out or default_out(kind)
    try:
        with warnings.catch_warnings(record=True) as caught:  # e.g. a partial release: one plain line, no source
            warnings.simplefilter("always")
            report = prepare(args.raw, out, kind, args.landmarks, max(1, args.workers), args.crop_from,
                             progress=not args.no_progress)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    c = report.counts
    print(f"{out}: {c['clips']} clips prepared ({c['prepared']} now, {c['skipped']} already done), {c['bad']} bad; "
          f"audio: {c['stereo']} stereo mixed down, {c['resampled']} resampled to 44.1 kHz")
    return report_failures(report.bad, "clip")


if __name__ == "__main__":
    sys.exit(main())
