"""Fixture writers for `repro.data.cmu` and `repro.data.msaf_mosei`: tiny SYNTHETIC MulT and MMSA pickles and
MSAF's CMU-MOSEI .npy folders (IMPLEMENTATION-NOTES §1.3, §4.1) in the releases' exact layouts.

Nothing written here is real CMU-MOSI, CMU-MOSEI or IEMOCAP data and no number computed on it is a
reproduction. The pickles have the real key names, ranks, feature sizes and float32 dtypes, MulT's left
zero-padding and audio ``-inf`` entries, MMSA's right-padding with ``*_lengths``; only N and T are small.
Features are label direction × label + noise on the real steps, so a model can learn the labels in a few
steps. Each pickle carries a top-level ``"SYNTHETIC"`` note (readers set ``reader.synthetic``), and a
``SYNTHETIC.txt`` is written beside it (beside the split folders for MSAF's layout).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from repro.data.cmu import FILE_SPLITS, IEMOCAP_EMOTIONS, mult_filename

SYNTHETIC_NOTE = "SYNTHETIC fixture data written by repro.data.fixtures_cmu - not a real dataset"
GLOVE_DIM = 300
BERT_DIM = 768
# (audio, vision) feature sizes of the releases: COVAREP / FACET (MOSI's are feature-selected, SDK #172).
FEATURE_DIMS = {"mosi": (5, 20), "mosei": (74, 35), "iemocap": (74, 35)}
MULT_NEGINF_PER_SPLIT = 3  # audio -inf entries written into each split of a MulT fixture


def _steps(aligned: bool, T: int) -> dict[str, int]:
    # Unaligned releases have longer acoustic/visual sequences than text (MOSEI: 50 / 500 / 500).
    return {"text": T, "audio": T, "vision": T} if aligned else {"text": T, "audio": 2 * T, "vision": 3 * T}


def _signal(rng, target: np.ndarray, n: int, steps: int, dim: int, lengths: np.ndarray, left: bool) -> np.ndarray:
    """(n, steps, dim) float32: target @ directions + noise on the real steps, exact zeros on the padding."""
    # One direction per feature size, the same in every split and file: a model fitted on train then scores on
    # val/test, so a smoke table shows learning (a per-split direction made test scores noise).
    direction = np.random.default_rng(dim).normal(size=(target.shape[1], dim))
    x = (target @ direction)[:, None, :] + 0.5 * rng.normal(size=(n, steps, dim))
    t = np.arange(steps)[None, :]
    keep = t >= steps - lengths[:, None] if left else t < lengths[:, None]
    x = np.where(keep[..., None], x, 0.0)
    x[keep & (np.abs(x).sum(-1) == 0)] = 1e-3  # a real step is never all zero
    return x.astype(np.float32)


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    (path.parent / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return path


def write_mult_pickle(
    path: str | Path | None = None,
    dataset: str = "mosi",
    n: tuple[int, int, int] = (12, 4, 4),
    T: int = 20,
    aligned: bool = True,
    seed: int = 0,
    root: str | Path | None = None,
    steps: dict[str, int] | None = None,
) -> Path:
    """Write a SYNTHETIC MulT pickle (``train``/``valid``/``test`` dicts of text/audio/vision/labels/id).

    ``steps`` ({modality: T}) overrides the sequence lengths (e.g. the real unaligned MOSEI shape 50 / 500 / 500
    for benchmarks); by default T for every modality (aligned) or T / 2T / 3T (unaligned).

    ``path`` is the file; or give ``root`` and the file gets MulT's name (``mult_filename``). Sequences are
    left zero-padded (random real lengths in [T/2, T] per modality, scaled for unaligned files);
    ``MULT_NEGINF_PER_SPLIT`` audio values per split are ``-inf`` on real steps. Labels: MOSI/MOSEI
    (N, 1, 1) float32 in [-3, 3]; IEMOCAP (N, 4, 2) float32 one-hot [no, yes] per emotion. MOSI ids are
    bytes (as in the release), the others str. Returns the path.
    """
    if path is None:
        if root is None:
            raise ValueError("give path or root")
        path = Path(root) / mult_filename(dataset, aligned)
    else:
        mult_filename(dataset, aligned)  # validates `dataset`
    rng = np.random.default_rng(seed)
    dim_a, dim_v = FEATURE_DIMS[dataset]
    dims = {"text": GLOVE_DIM, "audio": dim_a, "vision": dim_v}
    steps = dict(steps) if steps else _steps(aligned, T)
    data: dict = {"SYNTHETIC": SYNTHETIC_NOTE}
    for (_, skey), count in zip(FILE_SPLITS.items(), n):
        if dataset == "iemocap":
            present = rng.integers(0, 2, size=(count, len(IEMOCAP_EMOTIONS)))
            labels = np.eye(2, dtype=np.float32)[present]  # (N, 4, 2), [1, 0] = no, [0, 1] = yes
            target = 2.0 * present - 1.0
        else:
            score = np.round(rng.uniform(-3, 3, size=count), 1)
            labels = score.reshape(count, 1, 1).astype(np.float32)
            target = score.reshape(count, 1)
        split: dict = {}
        base = rng.integers(max(1, T // 2), T + 1, size=count)
        for m, t in steps.items():
            lengths = base if aligned else np.minimum(t, base * (t // T))
            split[m] = _signal(rng, target, count, t, dims[m], lengths, left=True)
        audio = split["audio"]
        real = np.argwhere((audio != 0).any(-1))
        for i, step in real[rng.choice(len(real), size=min(MULT_NEGINF_PER_SPLIT, len(real)), replace=False)]:
            audio[i, step, rng.integers(dim_a)] = -np.inf
        split["labels"] = labels
        ids = [f"synthetic{skey}{i:04d}_{i % 3}" for i in range(count)]
        split["id"] = np.array([s.encode() for s in ids]) if dataset == "mosi" else np.array(ids, dtype=object)
        data[skey] = split
    return _write(Path(path), data)


def write_mmsa_pickle(
    path: str | Path,
    dataset: str = "mosi",
    n: tuple[int, int, int] = (12, 4, 4),
    aligned: bool = True,
    T: int = 50,
    text_dim: int = BERT_DIM,
    seed: int = 0,
) -> Path:
    """Write a SYNTHETIC MMSA pickle (``aligned_50.pkl`` / ``unaligned_50.pkl`` layout). Returns the path.

    Each split has ``text`` (N, T, text_dim) float32, ``text_bert`` (N, 3, T) float32 (token ids, attention
    mask, segment ids), ``audio``/``vision`` (N, T_m, D_m) float32 right-padded (real steps first),
    ``regression_labels`` (N,) float32 in [-3, 3], ``classification_labels`` (N,), ``raw_text`` and ``id``
    (``<video>$_$<clip>``). Unaligned files (longer audio/vision) also have ``audio_lengths`` and
    ``vision_lengths``; aligned files have none (masks come from the non-zero rule there). One audio value
    per split is ``-inf``.
    """
    if dataset not in ("mosi", "mosei"):
        raise ValueError(f"MMSA fixture dataset must be mosi or mosei, got {dataset!r}")
    rng = np.random.default_rng(seed)
    dim_a, dim_v = FEATURE_DIMS[dataset]
    steps = _steps(aligned, T)
    data: dict = {"SYNTHETIC": SYNTHETIC_NOTE}
    for (_, skey), count in zip(FILE_SPLITS.items(), n):
        score = np.round(rng.uniform(-3, 3, size=count), 1).astype(np.float32)
        target = score.reshape(count, 1)
        text_len = rng.integers(max(2, T // 4), T + 1, size=count)
        split: dict = {"raw_text": np.array([f"synthetic sentence {i}" for i in range(count)], dtype=object)}
        split["text"] = _signal(rng, target, count, T, text_dim, text_len, left=False)
        bert = np.zeros((count, 3, T), dtype=np.float32)
        on = np.arange(T)[None, :] < text_len[:, None]
        bert[:, 0] = np.where(on, rng.integers(1000, 30000, size=(count, T)), 0)
        bert[:, 1] = on
        split["text_bert"] = bert
        for m, dim in (("audio", dim_a), ("vision", dim_v)):
            t = steps[m]
            lengths = text_len if aligned else rng.integers(max(1, t // 4), t + 1, size=count)
            split[m] = _signal(rng, target, count, t, dim, lengths, left=False)
            if not aligned:
                split[f"{m}_lengths"] = lengths.astype(np.int64).tolist()  # MMSA stores plain lists
        split["audio"][0, 0, 0] = -np.inf
        split["regression_labels"] = score
        split["classification_labels"] = np.sign(score).astype(np.float32) + 1  # 0 neg, 1 neu, 2 pos
        split["id"] = np.array([f"synthetic{skey}{i:04d}$_${i % 3}" for i in range(count)], dtype=object)
        data[skey] = split
    return _write(Path(path), data)


MSAF_MOSEI_INF = {"audio": 2, "vision": 1, "text": 1}  # +-inf entries written per split of an MSAF-MOSEI fixture
MSAF_MOSEI_DIMS = {"vision": 35, "audio": 74, "text": BERT_DIM}


def write_msaf_mosei(
    root: str | Path,
    n: tuple[int, int, int] = (12, 4, 4),
    T: int = 50,
    seed: int = 0,
) -> Path:
    """Write a SYNTHETIC copy of MSAF's CMU-MOSEI layout (IMPLEMENTATION-NOTES §1.3) under ``root``. Returns root.

    ``<root>/{train,val,test}/`` get float32 ``visual50.npy`` (N, T, 35) and ``audio50.npy`` (N, T, 74), LEFT
    zero-padded (the SDK's ``get_tensors(direction=False)``); ``bert50.npy`` (N, T, 768), RIGHT "padded" as
    MSAF's BERT features are: the steps after the text are not zero but stand-ins for BERT's outputs at [PAD]
    tokens (a fixed vector + noise); and ``label50.npy`` (N, 1, 7) with [sentiment in [-3, 3], six emotion
    intensities in [0, 3]]. Each split has ``MSAF_MOSEI_INF`` ±inf entries on real steps (+inf then -inf
    alternately) so the reader's per-item replacement can be tested. No ``bert50_mask.npy`` is written (MSAF's
    release has none). T is 50 in MSAF's files; smaller values keep tests fast. ``SYNTHETIC.txt`` sits in root.
    """
    if not 2 <= T <= 50:
        raise ValueError(f"T must be in [2, 50] (MSAF's files have 50 steps), got {T}")
    rng = np.random.default_rng(seed)
    root = Path(root)
    pad_vector = rng.normal(size=BERT_DIM)  # every [PAD] position of a real BERT gives a similar vector
    for split, count in zip(FILE_SPLITS, n):
        score = np.round(rng.uniform(-3, 3, size=count), 1)
        target = score.reshape(count, 1)
        lengths = rng.integers(max(1, T // 2), T + 1, size=count)
        arrays = {
            "visual50": _signal(rng, target, count, T, MSAF_MOSEI_DIMS["vision"], lengths, left=True),
            "audio50": _signal(rng, target, count, T, MSAF_MOSEI_DIMS["audio"], lengths, left=True),
        }
        words = rng.integers(2, T + 1, size=count)  # [CLS] + wordpieces + [SEP]
        bert = _signal(rng, target, count, T, BERT_DIM, words, left=False)
        pad = np.arange(T)[None, :] >= words[:, None]
        bert[pad] = (pad_vector + 0.1 * rng.normal(size=(int(pad.sum()), BERT_DIM))).astype(np.float32)
        arrays["bert50"] = bert
        for name, modality in (("audio50", "audio"), ("visual50", "vision"), ("bert50", "text")):
            real = np.argwhere((arrays[name] != 0).any(-1))
            picks = real[rng.choice(len(real), size=MSAF_MOSEI_INF[modality], replace=False)]
            for k, (i, step) in enumerate(picks):
                arrays[name][i, step, rng.integers(arrays[name].shape[-1])] = np.inf if k % 2 == 0 else -np.inf
        emotions = np.round(rng.uniform(0, 3, size=(count, 6)), 2)
        arrays["label50"] = np.concatenate([target, emotions], axis=1)[:, None, :].astype(np.float32)
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array)
    (root / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return root
