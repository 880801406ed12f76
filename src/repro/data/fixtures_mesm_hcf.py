"""SYNTHETIC fixtures of MESM's hand-crafted-feature layouts (`repro.data.mesm_hcf`; IMPLEMENTATION-NOTES §5.1).

Nothing written here is real IEMOCAP or CMU-MOSEI data and no number computed on it is a reproduction. The files have
the authors' names, containers, keys, ranks and feature sizes (IEMOCAP: pickled dicts, (D, T) acoustic matrices with
D = 763 per speaker side, frame dicts of OpenFace-like rows of 40 values whose last 35 are the "action units", GloVe
(T, 300) words; MOSEI: MulT-style left zero-padded (N, T, D) arrays with an 'id' array in another order than the
split, plus rows no split uses); only the counts and lengths are small. Features are label @ direction + noise on
the real steps (one fixed direction per feature size), so a model learns the labels in a few steps. A
``SYNTHETIC.txt`` beside the folders marks the data; `meta.pkl` files also carry entries with labels outside the six
(the real IEMOCAP meta has them) that no split lists.

Edge cases the readers must handle, written on purpose: an IEMOCAP utterance with no words (an empty list), one whose
speaker-side frame 1 is absent (skipped, as the authors' ``sample_by_interval``), and speaker sides whose other side
has a different length (so reading the wrong side is visible in the shapes).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from repro.data.mesm_hcf import FAU_DIM, FILE_PHASES, GLOVE_DIM, IEMOCAP_EMOTIONS, MOSEI_EMOTIONS, speaker_side

SYNTHETIC_NOTE = "SYNTHETIC fixture data written by repro.data.fixtures_mesm_hcf - not a real dataset"
ACOUSTIC_ROWS = 763  # the acoustic matrices' D: the authors' feature types read columns up to 762
OPENFACE_ROW = 40  # a video row: 5 leading values (head pose etc.) then the 35 action units
MOSEI_DIMS = {"text": GLOVE_DIM, "audio": 74, "vision": FAU_DIM}  # MulT's CMU-MOSEI sizes (GloVe, COVAREP, FACET)


def _direction(dim: int, classes: int) -> np.ndarray:
    """One fixed (classes, dim) direction per feature size, the same in every split, so learning transfers to test."""
    return np.random.default_rng(dim).normal(size=(classes, dim))


def _signal(rng, label: np.ndarray, steps: int, dim: int) -> np.ndarray:
    x = label @ _direction(dim, len(label)) + 0.5 * rng.normal(size=(steps, dim))
    return x.astype(np.float32)


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)  # the authors' utils.save


def _mark(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")


def _write_split(root: Path, dataset: str, phase: str, ids: list[str]) -> None:
    path = root / f"{dataset}_SPLIT" / f"{phase}_split.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(ids) + "\n")


def adopted_layout(root: Path, dataset: str) -> dict[str, list[tuple[str, object]]] | None:
    """{phase: [(utterance id, meta label)]} of the split files and meta.pkl already under `root` (the raw fixture of
    `repro.data.fixtures_mesm`), or None. The raw and hand-crafted layouts share those files (Table 3 reads both on
    the same splits), so features are then written for the utterances listed there and neither file is rewritten."""
    meta_path = root / f"{dataset}_RAW_PROCESSED" / "meta.pkl"
    splits = {phase: root / f"{dataset}_SPLIT" / f"{phase}_split.txt" for phase in FILE_PHASES.values()}
    if not meta_path.exists() or not all(path.exists() for path in splits.values()):
        return None
    with open(meta_path, "rb") as f:
        meta = pickle.load(f)
    return {phase: [(uid, meta[uid]["label"]) for uid in path.read_text().split()] for phase, path in splits.items()}


def iemocap_ids(phase_index: int, n: int) -> list[str]:
    """Utterance ids in IEMOCAP's pattern, both genders and both speaker sides (``Ses03F_impro03_M018``: side R)."""
    ids = []
    for k in range(n):
        session, gender, speaker = 1 + k % 5, "FM"[k % 2], "FM"[(k // 2) % 2]
        ids.append(f"Ses0{session}{gender}_impro0{1 + k % 3}_{speaker}{100 * phase_index + k:03d}")
    return ids


def write_iemocap_hcf(root: str | Path, n: tuple[int, int, int] = (12, 6, 6), seed: int = 0) -> Path:
    """IEMOCAP_SPLIT, IEMOCAP_RAW_PROCESSED/meta.pkl and IEMOCAP_HCF_FEATURES/{phase}_{text,audio,video}_features.pt.

    Labels cycle through the six emotions, so every split with >= 6 utterances has all of them."""
    root, rng = Path(root), np.random.default_rng(seed)
    _mark(root)
    adopted = adopted_layout(root, "IEMOCAP")
    meta = {"Ses01F_impro01_F900": {"start_time": 0.0, "end_time": 1.0, "label": "xxx", "text": "SYNTHETIC",
                                    "sr": 16000, "fps": 30}}  # a label outside the six, listed by no split
    for p, (phase, count) in enumerate(zip(FILE_PHASES.values(), n)):
        if adopted:
            ids, emotions = zip(*adopted[phase])
        else:
            ids = iemocap_ids(p, count)
            emotions = [IEMOCAP_EMOTIONS[k % len(IEMOCAP_EMOTIONS)] for k in range(count)]
            _write_split(root, "IEMOCAP", phase, ids)
        text, audio, video = {}, {}, {}
        for k, (uid, emotion) in enumerate(zip(ids, emotions)):
            meta[uid] = {"start_time": float(k), "end_time": float(k) + 2.5, "label": emotion,
                         "text": f"SYNTHETIC utterance {uid}", "sr": 16000, "fps": 30}
            label = np.eye(len(IEMOCAP_EMOTIONS))[IEMOCAP_EMOTIONS.index(emotion)]
            side = speaker_side(uid)
            words = 0 if (p, k) == (0, 1) else 3 + k % 4
            text[uid] = [] if words == 0 else _signal(rng, label, words, GLOVE_DIM)
            frames = 5 + k % 3
            audio[uid] = {s: (_signal(rng, label, frames * 2, ACOUSTIC_ROWS).T if s == side
                              else rng.normal(size=(ACOUSTIC_ROWS, frames * 2 + 3)).astype(np.float32))
                          for s in "LR"}
            video[uid] = {f"image_{s}_{i}": (_signal(rng, label, 1, OPENFACE_ROW)[0] if s == side
                                             else rng.normal(size=OPENFACE_ROW).astype(np.float32))
                          for s in "LR" for i in range(frames)}
            if (p, k) == (0, 2):
                del video[uid][f"image_{side}_1"]  # an absent frame: skipped by the reader
        folder = root / "IEMOCAP_HCF_FEATURES"
        _dump(folder / f"{phase}_text_features.pt", text)
        _dump(folder / f"{phase}_audio_features.pt", audio)
        _dump(folder / f"{phase}_video_features.pt", video)
    if not adopted:
        _dump(root / "IEMOCAP_RAW_PROCESSED" / "meta.pkl", meta)
    return root


def mosei_labels(n: int) -> np.ndarray:
    """(n, 6) multi-hot rows: row k has emotion k % 6 and, for odd k, also (k + 3) % 6, so every emotion is positive
    and negative in any split of >= 6 rows."""
    rows = np.zeros((n, len(MOSEI_EMOTIONS)), dtype=np.int64)
    for k in range(n):
        rows[k, k % 6] = 1
        if k % 2:
            rows[k, (k + 3) % 6] = 1
    return rows


def write_mosei_hcf(root: str | Path, n: tuple[int, int, int] = (12, 6, 6), steps: tuple[int, int, int] = (8, 12, 12),
                    seed: int = 0) -> Path:
    """MOSEI_SPLIT, MOSEI_RAW_PROCESSED/meta.pkl and MOSEI_HCF_FEATURES/mosei_senti_hcf_{phase}.pkl.

    `steps`: the stored (text, audio, vision) lengths; each sample's real steps are a suffix (left zero-padding)."""
    root, rng = Path(root), np.random.default_rng(seed)
    _mark(root)
    adopted = adopted_layout(root, "MOSEI")
    meta = {}
    for p, (phase, count) in enumerate(zip(FILE_PHASES.values(), n)):
        if adopted:
            ids = [uid for uid, _ in adopted[phase]]
            labels, count = np.array([label for _, label in adopted[phase]], dtype=np.int64), len(ids)
        else:
            ids = [f"SYNTH{p}v{k:03d}_{k % 4}" for k in range(count)]
            labels = mosei_labels(count)
            _write_split(root, "MOSEI", phase, ids)
        meta.update({uid: {"text": f"SYNTHETIC segment {uid}", "label": labels[k].tolist()}
                     for k, uid in enumerate(ids)})
        extra = [f"SYNTH{p}unused_{j}" for j in range(2)]  # rows that no split lists
        order = rng.permutation(count + len(extra))  # the pickle's rows in another order than the split file
        all_ids = ids + extra
        all_labels = np.concatenate([labels, np.zeros((len(extra), labels.shape[1]), dtype=np.int64)])
        hcf = {"id": np.array([all_ids[i] for i in order])}
        for m, T in zip(("text", "audio", "vision"), steps):
            dim = MOSEI_DIMS[m]
            x = np.zeros((len(order), T, dim), dtype=np.float32)
            for row, i in enumerate(order):
                real = 2 + (i % (T - 1))
                x[row, T - real:] = _signal(rng, all_labels[i].astype(float), real, dim)
            hcf[m] = x
        _dump(root / "MOSEI_HCF_FEATURES" / f"mosei_senti_hcf_{phase}.pkl", hcf)
    if not adopted:
        _dump(root / "MOSEI_RAW_PROCESSED" / "meta.pkl", meta)
    return root
