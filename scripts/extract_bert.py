"""BERT features for MSAF's CMU-MOSEI layout (IMPLEMENTATION-NOTES §1.3): ``<out>/<split>/bert50{,_mask}.npy``.

    python scripts/extract_bert.py --texts texts.jsonl --out data/msaf_mosei [--model bert-base-uncased]
                                   [--batch-size 32] [--device cuda]

``--texts``: one ``{"split": "train|val|test", "id": "...", "text": "..."}`` per line (scripts/prepare_cmu.py
writes it); the order of the lines is kept. ``--model``: a local folder (config.json, weights, vocab.txt) or a
hub name; with ``HF_HUB_OFFLINE=1`` the hub cache is used without network. Needs ``transformers`` (the
optional extra ``text``). The logic lives in `repro.data.bert_features`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from repro.data.base import DataError


def main(argv: list[str] | None = None) -> dict[str, int]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--texts", required=True, help="JSON lines: split, id, text per segment")
    p.add_argument("--out", required=True, help="root of MSAF's layout; writes <out>/<split>/bert50.npy")
    p.add_argument("--model", default="bert-base-uncased", help="local BERT folder or hub name")
    p.add_argument("--batch-size", type=int, default=32, help="MSAF used 1; the features do not depend on it")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--seq-len", type=int, default=50, help="wordpieces incl. [CLS]/[SEP] (MSAF: 50)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        import torch
        import transformers  # noqa: F401  (fail here, with the fix, rather than after reading the texts)

        from repro.data.bert_features import run
    except ImportError as err:
        sys.exit(f"error: {err}; fix: pip install -e '.[text]' (installs transformers)")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return run(args.texts, args.out, args.model, args.batch_size, device, args.seq_len)
    except DataError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
