"""BERT text features in MSAF's CMU-MOSEI layout (MSAF ``cmu_mosei/dataset_prep.py``; IMPLEMENTATION-NOTES §1.3).

MSAF: bert-base-uncased (``pytorch_pretrained_bert``), each segment's words joined by spaces, WordPiece
tokenised, ``[CLS] wordpieces [SEP]`` truncated to 50 (at most 48 wordpieces) and padded with token id 0
([PAD]) to 50, BERT run with that attention mask and zero segment ids, the LAST encoder layer saved as
``<split>/bert50.npy`` (N, 50, 768) float32, in the order of the segments. This module does the same with
Hugging Face ``transformers`` (``BertTokenizer``, ``BertModel``; eager softmax attention, like the original)
and also saves the attention mask as ``<split>/bert50_mask.npy`` (N, 50) bool, which
`repro.data.msaf_mosei.MSAFMoseiReader` uses as the text mask (MSAF's release has none: its [PAD] positions
hold BERT outputs, not zeros).

MSAF ran batch 1; every sequence is padded to 50 whatever the batch, and padding is masked out of attention,
so batching gives the same features up to float rounding (tested). Input: a JSON-lines file, one
``{"split": "train|val|test", "id": "...", "text": "..."}`` per segment (``scripts/prepare_cmu.py`` writes it
from the SDK's words); the order of the lines is kept within each split. Outputs are written to a temporary
name and renamed (``os.replace``), so an interrupted run leaves no half-written ``bert50.npy``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from repro.data.base import DataError
from repro.files import atomic_save_npy

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SEQ_LEN = 50
DEFAULT_MODEL = "bert-base-uncased"
FEATURES_FILE = "bert50.npy"
MASK_FILE = "bert50_mask.npy"
TEXTS_HINT = ('write one JSON object {"split": "train|val|test", "id": "...", "text": "..."} per line '
              "(scripts/prepare_cmu.py writes this file)")


def read_texts(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """{split: [(id, text), ...]} in file order; a bad line raises a one-line `DataError` naming its number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing file {path}: expected the segments' texts as JSON lines; fix: {TEXTS_HINT}")
    out: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number} is not valid JSON ({err.msg}); fix: {TEXTS_HINT}") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number} holds a {type(row).__name__}, expected an object; fix: {TEXTS_HINT}")
            if row.get("split") not in SPLITS:
                raise DataError(f"{path}:{number} has split {row.get('split')!r}, expected one of {list(SPLITS)}; "
                                f"fix: {TEXTS_HINT}")
            if not isinstance(row.get("text"), str) or "id" not in row:
                raise DataError(f"{path}:{number} needs a string 'text' and an 'id' (keys: {sorted(row)}); "
                                f"fix: {TEXTS_HINT}")
            out[row["split"]].append((str(row["id"]), row["text"]))
    return out


def encode(tokenizer, texts: Iterable[str], seq_len: int = SEQ_LEN) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids int64 (N, seq_len), attention_mask bool (N, seq_len)): [CLS] wordpieces [SEP], then [PAD]s."""
    cls, sep, pad = tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token_id  # [PAD] = 0 in BERT's vocab
    rows = []
    for text in texts:
        pieces = tokenizer.tokenize(text)[: seq_len - 2]  # truncate the wordpieces, keep [CLS]/[SEP] (as MSAF)
        rows.append(tokenizer.convert_tokens_to_ids([cls, *pieces, sep]))
    ids = np.full((len(rows), seq_len), pad, dtype=np.int64)
    mask = np.zeros((len(rows), seq_len), dtype=bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = True
    return ids, mask


def load_bert(model: str | Path = DEFAULT_MODEL, device: str = "cpu"):
    """(tokenizer, model in eval mode on `device`) from a local folder or the hub cache (HF_HUB_OFFLINE=1 works)."""
    from transformers import BertModel, BertTokenizer

    hint = ("give --model a folder with config.json, the weights and vocab.txt (e.g. one saved by "
            "save_pretrained), or a hub name such as bert-base-uncased that is downloaded or in the cache")
    if isinstance(model, Path) or os.sep in str(model) or str(model).startswith("."):
        if not Path(model).is_dir():
            raise DataError(f"missing model folder {model}: expected a BERT checkpoint; fix: {hint}")
    try:
        tokenizer = BertTokenizer.from_pretrained(str(model))
        bert = BertModel.from_pretrained(str(model), attn_implementation="eager")
    except (OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot load BERT from {model} ({reason}); fix: {hint}") from None
    return tokenizer, bert.eval().to(device)


def _batches(n: int, batch_size: int, desc: str) -> Iterator[int]:
    starts = range(0, n, batch_size)
    try:
        from tqdm.auto import tqdm

        yield from tqdm(starts, desc=desc, unit="batch")
    except ImportError:
        from rich.progress import track

        yield from track(starts, description=desc)


def extract(bert, input_ids: np.ndarray, attention_mask: np.ndarray, batch_size: int = 32, device: str = "cpu",
            out: np.ndarray | None = None, desc: str = "bert") -> np.ndarray:
    """The last encoder layer (N, L, hidden) float32, batch by batch into `out` (e.g. a memory-mapped .npy)."""
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n, steps = input_ids.shape
    if out is None:
        out = np.empty((n, steps, bert.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in _batches(n, batch_size, desc):
            ids = torch.from_numpy(input_ids[start:start + batch_size]).to(device)
            mask = torch.from_numpy(attention_mask[start:start + batch_size].astype(np.int64)).to(device)
            hidden = bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
            out[start:start + len(ids)] = hidden.float().cpu().numpy()
    return out


def write_split(out_dir: str | Path, split: str, bert, tokenizer, texts: list[str], batch_size: int = 32,
                device: str = "cpu", seq_len: int = SEQ_LEN) -> Path:
    """Write ``<out_dir>/<split>/bert50.npy`` (N, seq_len, hidden) and ``bert50_mask.npy`` (N, seq_len) atomically."""
    from numpy.lib.format import open_memmap

    folder = Path(out_dir) / split
    folder.mkdir(parents=True, exist_ok=True)
    ids, mask = encode(tokenizer, texts, seq_len)
    final = folder / FEATURES_FILE
    tmp = folder / f".{FEATURES_FILE}.{os.getpid()}.tmp"
    try:  # features go straight to disk: MOSEI's train split is 2.5 GB
        feats = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(texts), seq_len, bert.config.hidden_size))
        extract(bert, ids, mask, batch_size, device, out=feats, desc=split)
        feats.flush()
        del feats
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_save_npy(folder / MASK_FILE, mask)
    return final


def run(texts: str | Path, out_dir: str | Path, model: str | Path = DEFAULT_MODEL, batch_size: int = 32,
        device: str = "cpu", seq_len: int = SEQ_LEN) -> dict[str, int]:
    """Read the JSON lines, load BERT, write every non-empty split; returns {split: number of segments}."""
    by_split = read_texts(texts)
    if not any(by_split.values()):
        raise DataError(f"{texts} has no segments; fix: {TEXTS_HINT}")
    tokenizer, bert = load_bert(model, device)
    counts = {}
    for split, rows in by_split.items():
        if rows:
            path = write_split(out_dir, split, bert, tokenizer, [t for _, t in rows], batch_size, device, seq_len)
            counts[split] = len(rows)
            log.info("wrote %s (%d segments)", path, len(rows))
    return counts
