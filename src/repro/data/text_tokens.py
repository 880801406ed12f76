"""Text → token ids + mask for MESM / FE2E's ALBERT text encoder (mesm.txt §3.1; IMPLEMENTATION-NOTES §5.1).

The authors tokenise each transcript in the trainer with ALBERT-base-v2's tokenizer, ``padding='max_length'``,
``truncation=True``, ``max_length`` 50 (IEMOCAP) / 100 (MOSEI): ``[CLS] pieces… [SEP]`` then padding. Here the
reader does it once at load time (`tokenize`): ids int64 (N, L) and mask bool (N, L), True = real token.

Two tokenisers:
- ``AlbertTokenizer`` of the local folder ``data.text.model_dir`` (transformers, offline): the real one. The folder
  is what ``save_pretrained`` writes for albert-base-v2 (on a machine with internet, then copied);
  a missing folder is a one-line `DataError` naming it and how to get it.
- ``ByteTokenizer`` (``data.text.tiny: true``): a SYNTHETIC byte-level tokeniser for fixtures, SMOKE runs and
  tests — ids 0 pad, 1 [CLS], 2 [SEP], 3 unk, 4 + byte (vocab 260) — paired with the random-initialised tiny ALBERT
  the model builds when its ``tiny`` flag is set. Its ids mean nothing to a pretrained ALBERT.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from repro.data.base import DataError

PAD, CLS, SEP, UNK = 0, 1, 2, 3
BYTE_OFFSET = 4
BYTE_VOCAB = BYTE_OFFSET + 256

ALBERT_HINT = ("on a machine with internet run `python -c \"from transformers import AlbertModel, AlbertTokenizer; "
               "[c.from_pretrained('albert-base-v2').save_pretrained('albert-base-v2') for c in (AlbertModel, "
               "AlbertTokenizer)]\"` and copy the albert-base-v2 folder there (or set data.text.model_dir=<folder>; "
               "data.text.tiny=true uses the SYNTHETIC byte tokeniser and a tiny random ALBERT, for smoke runs only)")


class ByteTokenizer:
    """SYNTHETIC byte-level tokeniser: [CLS] + UTF-8 bytes (+4) + [SEP], truncated to fit, padded with 0."""

    vocab_size = BYTE_VOCAB
    name = "synthetic-bytes"

    def encode(self, text: str, max_length: int) -> list[int]:
        body = [BYTE_OFFSET + b for b in str(text).encode("utf-8")][: max(0, max_length - 2)]
        return [CLS, *body, SEP][:max_length]


class AlbertTokens:
    """ALBERT's own tokeniser from a local folder (no download: ``local_files_only``)."""

    def __init__(self, model_dir: str | Path):
        folder = Path(model_dir)
        if not folder.is_dir():
            raise DataError(f"missing ALBERT folder {folder} (data.text.model_dir): expected albert-base-v2's "
                            f"tokenizer and weights; fix: {ALBERT_HINT}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as err:
            reason = (str(err).splitlines() or [type(err).__name__])[0]
            raise DataError(f"cannot load a tokenizer from {folder} ({reason}): expected save_pretrained's files of "
                            f"albert-base-v2 (tokenizer.json or spiece.model); fix: {ALBERT_HINT}") from None
        self.vocab_size = len(self.tokenizer)
        self.name = str(folder)

    def batch(self, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        out = self.tokenizer(list(texts), max_length=max_length, padding="max_length", truncation=True,
                             return_tensors="np")
        return out["input_ids"].astype(np.int64), out["attention_mask"].astype(bool)


@lru_cache(maxsize=2)
def albert_tokens(model_dir: str) -> AlbertTokens:
    """One tokenizer per folder and process (a reader tokenises its three splits with it)."""
    return AlbertTokens(model_dir)


def tokenize(texts: Sequence[str], max_length: int, model_dir: str | Path | None = None,
             tiny: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64 (N, max_length), mask bool (N, max_length)) of `texts`, right-padded as the authors'."""
    if max_length < 2:
        raise DataError(f"data.text.max_length={max_length}: expected >= 2 ([CLS] and [SEP]); fix: set it to 50 "
                        "(IEMOCAP) or 100 (MOSEI) as the authors")
    if not tiny:
        if model_dir is None:
            raise DataError(f"data.text.model_dir is not set: expected the albert-base-v2 folder; fix: {ALBERT_HINT}")
        return albert_tokens(str(model_dir)).batch(texts, max_length)
    tokenizer = ByteTokenizer()
    ids = np.full((len(texts), max_length), PAD, np.int64)
    for row, text in enumerate(texts):
        encoded = tokenizer.encode(text, max_length)
        ids[row, : len(encoded)] = encoded
    return ids, ids != PAD
