"""Prepare MESM's raw-data layout for `data=iemocap_raw` / `data=mosei_raw` (repro.data.mesm_prepare, mesm_faces).

    python scripts/prepare_mesm.py iemocap --raw <IEMOCAP_full_release> [--root <dir>]
    python scripts/prepare_mesm.py mosei --raw <CMU-MOSEI raw folder> [--root <dir>]
    python scripts/prepare_mesm.py faces --dataset iemocap|mosei [--root <dir>] [--img-interval 500] [--weights <dir>]

Default --root: ${paths.data_dir}/mesm ($REPRO_DATA_DIR/mesm or ./data/mesm), the folder both data configs read.
`iemocap` / `mosei` write <DATASET>_RAW_PROCESSED/ (meta.pkl + one folder per utterance); `faces` then crops the
faces of the sampled frames once with MTCNN (weights: python scripts/fetch_mtcnn_weights.py) into
<DATASET>_FACES48/. The split lists are the authors': copy `data split/{IEMOCAP,MOSEI}_split/*.txt` of
github.com/wenliangdai/Multimodal-End2end-Sparse to <root>/{IEMOCAP,MOSEI}_SPLIT/ (the faces step reads them).
Resumable: a second run skips what is done. Exit code 0 when everything was prepared, 1 when some items were bad
(each listed with its reason; the others are prepared), 2 on a bad command or release.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from repro.data.base import DataError, report_failures


def default_root() -> Path:
    data_dir = os.environ.get("REPRO_DATA_DIR") or Path(os.environ.get("REPRO_ROOT", ".")) / "data"
    return Path(data_dir) / "mesm"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, what in (("iemocap", "the unzipped IEMOCAP_full_release (Session1..5)"),
                       ("mosei", "the raw CMU-MOSEI folder (Audio/WAV_16000, Videos/Full/Combined, "
                                 "Transcript/Combined, Labels)")):
        s = sub.add_parser(name, help=f"{name} raw release → {name.upper()}_RAW_PROCESSED/")
        s.add_argument("--raw", required=True, type=Path, help=what)
        s.add_argument("--root", type=Path, default=None, help="output root (default: ${paths.data_dir}/mesm)")
        s.add_argument("--no-progress", action="store_true", help="no progress bar")
    f = sub.add_parser("faces", help="MTCNN face crops of the sampled frames → <DATASET>_FACES48/")
    f.add_argument("--dataset", required=True, choices=("iemocap", "mosei"))
    f.add_argument("--root", type=Path, default=None, help="the prepared root (default: ${paths.data_dir}/mesm)")
    f.add_argument("--img-interval", type=int, default=500, help="ms between sampled frames (data.reader's)")
    f.add_argument("--weights", type=Path, default=None, help="folder of pnet.pt/rnet.pt/onet.pt (default: "
                                                               "scripts/fetch_mtcnn_weights.py's)")
    f.add_argument("--quirk-fixed-crop", action="store_true",
                   help="QUIRK: the authors' no-face crop arithmetic (columns shifted half a crop left); written to "
                        "<DATASET>_FACES48_QUIRKCROP/, read with data.reader.quirk_fixed_crop=true")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def run_prepare(args, root: Path) -> int:
    from repro.data.mesm_prepare import prepare_iemocap, prepare_mosei

    prepare = prepare_iemocap if args.command == "iemocap" else prepare_mosei
    report = prepare(args.raw, root, progress=not args.no_progress)
    print(f"{root}: {len(report.prepared)} utterances prepared now, {len(report.skipped)} already done, "
          f"{len(report.bad)} bad source file(s)")
    return report_failures(report.bad, "dialog" if args.command == "iemocap" else "video")


def run_faces(args, root: Path) -> int:
    from repro.data.mesm_faces import build_face_cache

    report = build_face_cache(root, args.dataset, img_interval=args.img_interval, weights_dir=args.weights,
                              progress=not args.no_progress, quirk_fixed_crop=args.quirk_fixed_crop)
    print(f"{report.folder}: {len(report.prepared)} utterances cropped now, {len(report.skipped)} already done; "
          f"{len(report.all_fallback)} with no face found in any frame (fixed crop), {len(report.no_frames)} "
          f"without frames (the readers drop them)")
    return report_failures(report.bad, "utterance")


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    root = args.root or default_root()
    try:
        return run_faces(args, root) if args.command == "faces" else run_prepare(args, root)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
