"""Build word-aligned MulT-style pickles for CMU-MOSI / CMU-MOSEI / POM from CMU SDK computational sequences.

RMFN §4.2 (word-level expectation of FACET / COVAREP over each word's interval, GloVe per word); the logic is
in `repro.data.csd_word_alignment` (read its docstring for every rule) and `repro.data.csd`.

Inputs: ``--csd-dir`` holds the SDK's sequences under their own file names (table
`repro.data.csd_word_alignment.DATASETS`, overridable with ``--file ROLE=STEM``), and ``--folds`` the SDK's
standard-folds file ``mmsdk/mmdatasdk/dataset/standard_datasets/{CMU_MOSI,CMU_MOSEI,POM}/*_std_folds.py``
(from the sdist: ``pip download --no-deps --no-binary :all: cmu-multimodal-sdk==0.0.6``), parsed, never
executed; without ``--folds`` an installed ``mmsdk`` is used; splits are never invented.

Output: ``<out>/{mosi_data,mosei_senti_data,pom_data}.pkl`` (written to a temp file, then renamed) read by
``repro.data.cmu.MulTPickleReader`` / ``repro.data.pom.POMReader``; ``--texts-out`` writes one JSON line
``{"split", "id", "text"}`` per segment (the words joined by spaces, for ``scripts/extract_bert.py``).

Usage:
  python scripts/prepare_cmu.py --dataset mosi --csd-dir data/cmu_sdk/mosi \\
      --folds cmu-multimodal-sdk-0.0.6/mmsdk/mmdatasdk/dataset/standard_datasets/CMU_MOSI/cmu_mosi_std_folds.py \\
      --out data/cmu [--max-words 50] [--texts-out data/cmu/mosei_texts.jsonl]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from repro.data.base import DataError  # noqa: E402  (needs the sys.path entry above)
from repro.data.csd_word_alignment import DATASETS, DEFAULT_MAX_WORDS, ROLES, prepare  # noqa: E402

PROG = "prepare_cmu.py"


def _role_map(pairs: list[str], flag: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        role, sep, value = pair.partition("=")
        if not sep or role not in ROLES or not value:
            raise DataError(f"{flag} {pair!r}: expected ROLE=VALUE with ROLE one of {list(ROLES)}")
        out[role] = value
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog=PROG, description="Word-align CMU SDK computational sequences into a MulT-style "
                                                       "pickle (RMFN §4.2) with the SDK's standard folds.")
    p.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    p.add_argument("--csd-dir", type=Path, required=True, help="folder with the dataset's .csd files")
    p.add_argument("--folds", type=Path, default=None, help="the SDK's *_std_folds.py (default: installed mmsdk)")
    p.add_argument("--out", type=Path, required=True, help="output folder (data.reader.root)")
    p.add_argument("--max-words", type=int, default=DEFAULT_MAX_WORDS,
                   help=f"words kept per segment, the last ones, left zero-padded (default {DEFAULT_MAX_WORDS})")
    p.add_argument("--texts-out", type=Path, default=None, help="JSON-lines file of segment texts (for BERT)")
    p.add_argument("--file", action="append", default=[], metavar="ROLE=STEM",
                   help=f"use <csd-dir>/<STEM>.csd for ROLE ({', '.join(ROLES)})")
    p.add_argument("--root-name", action="append", default=[], metavar="ROLE=NAME",
                   help="expected top-level name of ROLE's .csd (default: its file stem; '*' accepts any)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        summary = prepare(args.dataset, args.csd_dir, args.out, args.folds, args.max_words, args.texts_out,
                          _role_map(args.file, "--file"), _role_map(args.root_name, "--root-name"),
                          progress=not args.quiet)
    except DataError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{PROG}: wrote {summary['path']}{' (SYNTHETIC input)' if summary['synthetic'] else ''}: segments "
          f"{summary['segments']} from videos {summary['videos']}; feature sizes {summary['dims']}; "
          f"{summary['segments_truncated']} segments truncated to {summary['max_words']} words "
          f"({summary['words_truncated']} words cut); {summary['segments_without_words']} segments without words; "
          f"{summary['pause_tokens_dropped']} pause tokens dropped; NaN/inf set to 0: {summary['nonfinite_replaced']}; "
          f"videos missing per sequence: {summary['videos_missing'] or 'none'}; "
          f"segments skipped for a non-finite label: {summary['segments_bad_label']}")
    return summary


if __name__ == "__main__":
    main()
