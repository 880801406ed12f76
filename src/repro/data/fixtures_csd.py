"""SYNTHETIC CMU SDK computational sequences and standard-folds files, for `repro.data.csd` / `csd_word_alignment`.

Nothing written here is real CMU-MOSI, CMU-MOSEI or POM data and no number computed on it is a
reproduction. The files have the SDK's exact layout (``<root>/data/<vid>/{features,intervals}``,
``<root>/metadata/<key>`` JSON strings; ``standard_{train,valid,test}_fold = [...]``), the real file names
(`repro.data.csd_word_alignment.DATASETS`) and realistic rates: words with forced-alignment intervals and ``sp``
pause tokens, 300-d word vectors on the word intervals, FACET at 30 fps (35-d), COVAREP at 100 Hz (74-d)
with a few -inf / NaN values, opinion-segment labels (MOSI: sentiment; MOSEI: sentiment + 6 emotions) or one
row of 18 POM trait labels per video. Every file's metadata says SYNTHETIC, and ``SYNTHETIC.txt`` is written
beside the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from repro.data.csd import FOLD_NAMES
from repro.data.csd_word_alignment import DATASETS, MOSEI_LABEL_COLUMNS, POM_LABEL_COLUMNS
from repro.data.pom import TRAITS

SYNTHETIC_NOTE = "SYNTHETIC fixture data written by repro.data.fixtures_csd - not a real dataset"
GLOVE_DIM, FACET_DIM, COVAREP_DIM = 300, 35, 74
FACET_FPS, COVAREP_HZ = 30.0, 100.0
NONFINITE_PER_VIDEO = 3  # COVAREP entries per video set to -inf (2) and NaN (1)
VOCAB = ("this", "movie", "was", "really", "good", "bad", "i", "think", "the", "acting", "plot", "just", "okay")


def write_csd(path: str | Path, name: str, entries: dict[str, tuple[np.ndarray, np.ndarray]],
              metadata: dict | None = None) -> Path:
    """Write one computational sequence in the SDK layout: ``entries[vid] = (features, intervals)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"root name": name, "computational sequence description": SYNTHETIC_NOTE,
            "dataset name": "SYNTHETIC", "alignment compatible": True} | (metadata or {})
    with h5py.File(path, "w") as f:
        root = f.create_group(name)
        data = root.create_group("data")
        for vid, (features, intervals) in entries.items():
            g = data.create_group(vid)
            g.create_dataset("features", data=features)
            g.create_dataset("intervals", data=np.asarray(intervals, dtype=np.float64))
        group = root.create_group("metadata")
        for key, value in meta.items():
            ds = group.create_dataset(key, (1,), dtype=h5py.special_dtype(vlen=str))
            ds[0] = json.dumps(value)
    (path.parent / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return path


def write_std_folds(path: str | Path, folds: dict[str, list[str]]) -> Path:
    """Write a SYNTHETIC ``*_std_folds.py`` in the SDK's format (three list assignments)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {SYNTHETIC_NOTE}"] + [f"{var}={folds[split]!r}" for split, var in FOLD_NAMES.items()]
    path.write_text("\n\n".join(lines) + "\n")
    return path


@dataclass
class CsdFixture:
    csd_dir: Path
    folds_path: Path
    folds: dict[str, list[str]]
    segments: dict[str, int]  # labelled segments per split
    words: dict[str, list[list[str]]]  # vid -> words (no pauses) per segment


def _timeline(rng, n_segments: int, long_first: bool) -> tuple[list[str], np.ndarray, list[tuple[float, float]]]:
    """Tokens (with ``sp`` pauses), their intervals, and the segment intervals of one video."""
    tokens, spans, segments = ["sp"], [(0.0, 0.4)], []
    t = 0.4
    for s in range(n_segments):
        n_words = 12 if (long_first and s == 0) else int(rng.integers(3, 8))
        seg_start = t - 0.05
        for _ in range(n_words):
            dur = float(np.round(rng.uniform(0.15, 0.45), 2))
            tokens.append(str(rng.choice(VOCAB)))
            spans.append((t, t + dur))
            t += dur
            if rng.random() < 0.3:  # a short pause between words
                tokens.append("sp")
                spans.append((t, t + 0.1))
                t += 0.1
        segments.append((seg_start, t + 0.05))
        tokens.append("sp")  # a long pause between segments
        spans.append((t, t + 0.8))
        t += 0.8
    return tokens, np.array(spans), segments


def _frames(end: float, rate: float) -> np.ndarray:
    n = int(np.ceil(end * rate))
    start = np.arange(n) / rate
    return np.stack([start, start + 1.0 / rate], axis=1)


def _pom_labels(rng, index: int, count: int) -> np.ndarray:
    """One row of 18 trait labels; the first two train videos hold each trait's fixture min and max, so the
    derived class counts (`repro.data.pom.trait_classes`) are exactly RMFN Table 3's."""
    row = []
    for column in POM_LABEL_COLUMNS:
        trait = next(t for t in TRAITS.values() if t.column == column)
        lo, hi = trait.scale
        if trait.table3_classes is not None:
            hi = lo + trait.table3_classes - 1  # the span Table 3 implies (humorous: 1..6)
        value = lo if index == 0 else hi if index == 1 else rng.uniform(lo, hi)
        row.append(np.round(value, 2))
    return np.array([row], dtype=np.float64)


def write_cmu_fixture(root: str | Path, dataset: str = "mosi", n_videos: tuple[int, int, int] = (3, 1, 1),
                      segments_per_video: int = 2, seed: int = 0) -> CsdFixture:
    """SYNTHETIC ``.csd`` files of `dataset` (SDK file names) under ``root/csd`` and a folds file
    ``root/<dataset>_std_folds.py``. One extra video is in the files but in no fold. POM has one segment per
    video (the labels row spans the whole video); the first train video's first segment has 12 words."""
    spec = DATASETS[dataset]
    rng = np.random.default_rng(seed)
    root = Path(root)
    csd_dir = root / "csd"
    names = [f"synth{dataset}{i:02d}" for i in range(sum(n_videos) + 1)]
    folds = {"train": names[:n_videos[0]], "valid": names[n_videos[0]:n_videos[0] + n_videos[1]],
             "test": names[n_videos[0] + n_videos[1]:sum(n_videos)]}
    per_role: dict[str, dict] = {role: {} for role in spec.files}
    words: dict[str, list[list[str]]] = {}
    n_seg = 1 if dataset == "pom" else segments_per_video
    for i, vid in enumerate(names):
        tokens, spans, segments = _timeline(rng, n_seg, long_first=i == 0)
        end = float(spans[-1, 1])
        per_role["words"][vid] = (np.array([[w.encode()] for w in tokens], dtype="S32"), spans)
        vectors = rng.normal(size=(len(tokens), GLOVE_DIM)).astype(np.float32)
        pause = np.array([w == "sp" for w in tokens])
        vectors[pause] = 0.0
        # MOSEI's default word vectors have no pause rows (the SDK lists a separate *_with_SP file).
        keep = ~pause if dataset == "mosei" else np.ones(len(tokens), dtype=bool)
        per_role["word_vectors"][vid] = (vectors[keep], spans[keep])
        facet_iv = _frames(end, FACET_FPS)
        per_role["facet"][vid] = (rng.normal(size=(len(facet_iv), FACET_DIM)).astype(np.float32), facet_iv)
        covarep_iv = _frames(end, COVAREP_HZ)
        covarep = rng.normal(size=(len(covarep_iv), COVAREP_DIM)).astype(np.float32)
        flat = rng.choice(covarep.size, size=NONFINITE_PER_VIDEO, replace=False)
        covarep.reshape(-1)[flat] = [-np.inf, -np.inf, np.nan]
        per_role["covarep"][vid] = (covarep, covarep_iv)
        if dataset == "pom":
            labels, seg_iv = _pom_labels(rng, i, len(names)), np.array([[0.0, end]])
        else:
            seg_iv = np.array(segments)
            sentiment = np.round(rng.uniform(-3, 3, size=(len(segments), 1)), 1)
            labels = sentiment if dataset == "mosi" else np.hstack(
                [sentiment, np.round(rng.uniform(0, 3, size=(len(segments), len(MOSEI_LABEL_COLUMNS) - 1)), 1)])
        per_role["labels"][vid] = (labels, seg_iv)
        words[vid] = _segment_words(tokens, spans, seg_iv)
    for role, stem in spec.files.items():
        meta = {"dimension names": list(spec.label_columns)} if role == "labels" else {}
        write_csd(csd_dir / f"{stem}.csd", stem, per_role[role], meta)
    folds_path = write_std_folds(root / spec.folds_file, folds)
    segments = {split: n_seg * len(vids) for split, vids in folds.items()}
    return CsdFixture(csd_dir, folds_path, folds, segments, words)


def _segment_words(tokens: list[str], spans: np.ndarray, seg_iv: np.ndarray) -> list[list[str]]:
    mid = spans.mean(axis=1)
    return [[w for w, m in zip(tokens, mid) if s <= m < e and w != "sp"] for s, e in seg_iv]


def write_pom(folder: str | Path, n_videos: tuple[int, int, int] = (8, 4, 4)) -> Path:
    """SYNTHETIC ``<folder>/pom_data.pkl``: SDK-layout .csd files (in a temporary folder) aligned into the pickle by
    scripts/prepare_cmu.py's code, as a real POM folder is built. Returns `folder`."""
    import tempfile

    from repro.data.csd_word_alignment import prepare

    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="pom_csd_") as sources:
        fixture = write_cmu_fixture(sources, "pom", n_videos=n_videos)
        prepare("pom", fixture.csd_dir, folder, folds_path=fixture.folds_path, progress=False)
    (folder / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return folder
