"""Fixture writers: tiny SYNTHETIC datasets in each reader's exact on-disk format, for tests and `SMOKE=1`.

Nothing written here is real data and no number computed on it is a reproduction. Each writer creates
the same file names, keys, shapes and dtypes as the real release, with class-dependent patterns so that a
model can learn something in a few steps (which lets tests check that training actually moves).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from repro.data.avmnist import LAYOUT_IMAGE_DIR

SYNTHETIC_NOTE = "SYNTHETIC fixture data written by repro.data.fixtures - not a real dataset"


def _class_patterns(rng: np.random.Generator, num_classes: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0, 255, size=(num_classes, *shape))


def _noisy(rng, patterns, labels, noise: float) -> np.ndarray:
    x = patterns[labels] + rng.normal(0, noise, size=(len(labels), *patterns.shape[1:]))
    return np.clip(x, 0, 255).astype(np.uint8)


def write_avmnist(
    root: str | Path, layout: str = "multibench", n_train: int = 80, n_test: int = 40, seed: int = 0,
    num_classes: int = 10, noise: float = 90.0,
) -> Path:
    """Write a tiny AV-MNIST in the MultiBench (`image/`) or MFAS (`images/`) layout. Returns `root`."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    image_patterns = _class_patterns(rng, num_classes, (784,))
    audio_patterns = _class_patterns(rng, num_classes, (112, 112))
    (root / LAYOUT_IMAGE_DIR[layout]).mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        # The real release stores float arrays in 0..255; mimic that dtype.
        np.save(root / LAYOUT_IMAGE_DIR[layout] / f"{split}_data.npy",
                _noisy(rng, image_patterns, labels, noise).astype(np.float32))
        np.save(root / "audio" / f"{split}_data.npy", _noisy(rng, audio_patterns, labels, noise).astype(np.float32))
        np.save(root / f"{split}_labels.npy", labels.astype(np.int64))
    (root / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return root


def write_avdigits(root: str | Path, sizes: tuple[int, int, int] = (40, 10, 20), seed: int = 0,
                   num_classes: int = 10) -> Path:
    """Write a tiny SYNTHETIC AV-Digits variant in `scripts/make_avdigits.py`'s folder format. Returns `root`.

    ``avdigits.npz`` holds the same ingredients as the real build (`repro.data.avdigits`): a PCA basis and
    per-image coefficients (a class-dependent direction + noise), mu-law "utterances" (one tone per digit, its pitch
    set by the digit) and one noise clip, per-sample mixing (offset, SNR, shift); ``manifest.json`` lists its sha256.
    `load_avdigits(data_dir=root)` derives (N, 784) images and (N, 112, 112) spectrograms from them as it does for
    the real set. No MNIST digit or recorded voice is in it.
    """
    from repro.data import avdigits as av

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    k = num_classes
    t = np.arange(av.CLIP_LEN // 2) / av.SAMPLE_RATE  # half-second tones
    tones = [0.5 * np.sin(2 * np.pi * (300 + 150 * d) * t) * np.hanning(len(t)) for d in range(k)]
    noise = rng.normal(0, 0.3, 2 * av.CLIP_LEN)
    z: dict[str, np.ndarray] = {
        "pca_mean": np.full(784, 0.2, dtype=np.float32),
        "pca_components": rng.normal(0, 0.05, (k, 784)).astype(np.float32),
        "mulaw_table": av.mulaw_table(),
        "utt_data": np.concatenate([av.mulaw_encode(x) for x in tones]),
        "utt_offsets": np.arange(k + 1, dtype=np.int64) * len(t),
        "utt_voice": np.zeros(k, dtype=np.int64),
        "voice_names": np.array(["synthetic-tone"]),
        "noise_data": av.mulaw_encode(noise),
        "noise_offsets": np.array([0, len(noise)], dtype=np.int64),
    }
    for split, n in zip(av.SPLITS, sizes):
        labels = np.arange(n) % k
        rng.shuffle(labels)
        z[f"{split}_label"] = labels.astype(np.int64)
        z[f"{split}_coef"] = (3.0 * np.eye(k)[labels] + rng.normal(0, 0.5, (n, k))).astype(np.float32)
        z[f"{split}_utt"] = labels.astype(np.int64)  # utterance d is digit d's tone
        z[f"{split}_noise"] = np.zeros(n, dtype=np.int64)
        z[f"{split}_noise_offset"] = rng.integers(0, av.CLIP_LEN, n)
        z[f"{split}_snr_db"] = rng.uniform(3, 15, n).astype(np.float32)
        z[f"{split}_shift"] = rng.integers(0, av.CLIP_LEN - len(t), n)
    np.savez_compressed(root / av.DATA_FILE, **z)
    path = root / av.DATA_FILE
    manifest = {"name": "AV-Digits (SYNTHETIC)", "note": SYNTHETIC_NOTE,
                "sizes": dict(zip(av.SPLITS, sizes)),
                "files": {av.DATA_FILE: {"sha256": av.sha256_file(path), "bytes": path.stat().st_size}}}
    (root / av.MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    (root / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return root


def write_folds(root: str | Path, n_groups: int = 6, per_group: int = 12, num_classes: int = 4, seed: int = 0) -> Path:
    """Write the SYNTHETIC grouped dataset read by `repro.data.synthetic.GroupFoldReader`.

    Layout: ``image.npy`` (N,1,28,28) uint8, ``audio.npy`` (N,1,112,112) uint8 (both class patterns plus
    noise), ``label.npy`` (N,), ``group.npy`` (N,) the group (think: actor) of each sample.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(per_group) % num_classes, n_groups)
    groups = np.repeat(np.arange(n_groups), per_group)
    np.save(root / "image.npy", _noisy(rng, _class_patterns(rng, num_classes, (1, 28, 28)), labels, 90.0))
    np.save(root / "audio.npy", _noisy(rng, _class_patterns(rng, num_classes, (1, 112, 112)), labels, 90.0))
    np.save(root / "label.npy", labels.astype(np.int64))
    np.save(root / "group.npy", groups.astype(np.int64))
    (root / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return root


# --- MM-IMDB (repro.data.mmimdb; MFAS §4.2) ------------------------------------------------------------------

MMIMDB_FIXTURE_SIZES = (24, 8, 8)  # train, val, test rows written by default by write_mmimdb_hdf5


def mmimdb_split_overrides(n_train: int = 24, n_val: int = 8, n_test: int = 8) -> list[str]:
    """The Hydra overrides that make `data=mmimdb` read a fixture file of the given split sizes."""
    return [
        f"data.reader.train_end={n_train}",
        f"data.reader.val_end={n_train + n_val}",
        f"data.reader.test_end={n_train + n_val + n_test}",
    ]


def _mmimdb_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    """Multi-hot rows with 1-3 genres each (every row has at least one, as in the real file)."""
    y = np.zeros((n, num_classes), dtype=np.int32)
    for i in range(n):
        y[i, rng.choice(num_classes, size=rng.integers(1, 4), replace=False)] = 1
    return y


def write_mmimdb_hdf5(
    root: str | Path, n_train: int = 24, n_val: int = 8, n_test: int = 8, seed: int = 0,
    vgg_computed: bool = True, noise: float = 0.3,
) -> Path:
    """Write a tiny SYNTHETIC ``<root>/multimodal_imdb.hdf5`` in Arevalo's exact layout. Returns `root`.

    Same dataset names, shapes (images keep (3, 256, 160)), dtypes and attributes as the released file
    (``genres.attrs['target_names']`` as a JSON string), plus small ``sequences``/``three_grams``/
    ``word_grams``. Every modality is a noisy function of the genres (text and VGG features: a sum of
    per-genre directions; images: a sum of per-genre low-resolution colour patterns), so the labels are
    learnable from each. Root attributes: ``synthetic=1``, ``note``, ``split_ends`` (read with
    ``mmimdb_split_overrides(n_train, n_val, n_test)``). ``vgg_computed=False`` writes zero VGG features
    marked as not computed, as ``scripts/prepare_mmimdb.py`` does without ``--vgg-weights``.
    """
    import h5py

    from repro.data.mmimdb import FILENAME, GENRES, IMAGE_SHAPE, SPLIT_ENDS_ATTR, TEXT_DIM, VGG_COMPUTED_ATTR, VGG_DIM

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    k = len(GENRES)
    y = _mmimdb_labels(rng, n, k)
    yf = y.astype(np.float32)
    text = yf @ rng.normal(0, 1, (k, TEXT_DIM)) / 2 + rng.normal(0, noise, (n, TEXT_DIM))
    vgg = np.maximum(yf @ rng.uniform(0, 2, (k, VGG_DIM)) + rng.normal(0, noise, (n, VGG_DIM)), 0)
    c, h, w = IMAGE_SHAPE
    patterns = rng.uniform(-60, 60, (k, c, 8, 5))  # upsampled ×32 to (3, 256, 160)
    low = (128 + yf @ patterns.reshape(k, -1) / 2).astype(np.float32).reshape(n, c, 8, 1, 5, 1)
    images = np.broadcast_to(low, (n, c, 8, h // 8, 5, w // 5)).reshape(n, c, h, w)
    images = images + rng.standard_normal(images.shape, dtype=np.float32) * 25
    images = np.clip(images, 0, 255).astype(np.int32)
    words = [rng.integers(1, 50, size=rng.integers(3, 12)).astype(np.int32) for _ in range(n)]
    with h5py.File(root / FILENAME, "w") as f:
        f.create_dataset("features", data=text.astype(np.float32))
        ds = f.create_dataset("vgg_features", data=(vgg if vgg_computed else np.zeros_like(vgg)).astype(np.float32))
        if not vgg_computed:
            ds.attrs[VGG_COMPUTED_ATTR] = 0
        f.create_dataset("images", data=images, chunks=(1, *IMAGE_SHAPE))
        g = f.create_dataset("genres", data=y)
        g.attrs["target_names"] = json.dumps(list(GENRES))  # a JSON string, as make_dataset.py writes it
        f.create_dataset("imdb_ids", data=np.array([f"{9000000 + i:07d}" for i in range(n)], dtype="S7"))
        seqs = f.create_dataset("sequences", (n,), dtype=h5py.vlen_dtype(np.dtype("int32")))
        for i, s in enumerate(words):
            seqs[i] = s
        f.create_dataset("three_grams", data=rng.uniform(0, 1, (n, 16)).astype(np.float32))
        f.create_dataset("word_grams", data=rng.uniform(0, 1, (n, 8)).astype(np.float32))
        f.attrs["synthetic"] = 1
        f.attrs["note"] = SYNTHETIC_NOTE
        f.attrs[SPLIT_ENDS_ATTR] = np.array([n_train, n_train + n_val, n], dtype=np.int64)
    (root / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return root


# Words of the SYNTHETIC raw release: each genre has two cue words; filler words carry no signal.
_MMIMDB_FILLER = ("the", "a", "film", "story", "man", "woman", "city", "life", "new", "old", "young", "finds")


def _genre_words(genre: str) -> tuple[str, str]:
    g = genre.lower().replace("-", "")
    return f"{g}cue", f"{g}plot"


def write_word2vec(path: str | Path, vectors: dict[str, np.ndarray], binary: bool = False) -> Path:
    """Write `vectors` in the word2vec text format (header `count dim`, one `word v1 ... vd` line each) or
    the original C tool's binary format (header line, then `word<space>` + dim float32 + newline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dim = len(next(iter(vectors.values())))
    if binary:
        with open(path, "wb") as f:
            f.write(f"{len(vectors)} {dim}\n".encode())
            for word, v in vectors.items():
                f.write(word.encode() + b" " + np.asarray(v, dtype="<f4").tobytes() + b"\n")
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"{len(vectors)} {dim}\n")
            for word, v in vectors.items():
                f.write(word + " " + " ".join(f"{x:.6f}" for x in v) + "\n")
    return path


def write_mmimdb_raw(
    root: str | Path, n_train: int = 8, n_dev: int = 3, n_test: int = 3, seed: int = 0,
    word2vec_binary: bool = False, dim: int = 300,
) -> Path:
    """Write a tiny SYNTHETIC raw MM-IMDb release under `root`, plus a tiny word2vec file. Returns `root`.

    Layout as in ``mmimdb.tar.gz``: ``dataset/<imdb_id>.json`` (keys ``plot`` — a list of plot texts, the
    longest is used — ``genres``, ``title``, ...), ``dataset/<imdb_id>.jpeg`` (posters of varying sizes,
    colour set by the genres), ``split.json`` (``train``/``dev``/``test`` id lists). The vectors file is
    ``word2vec.txt`` (or ``word2vec.bin`` with `word2vec_binary`); some plot words are deliberately missing
    from it, and some genres outside Arevalo's 23 occur (both are dropped by the prepare script).
    """
    from PIL import Image

    from repro.data.mmimdb import GENRES

    root = Path(root)
    (root / "dataset").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = n_train + n_dev + n_test
    y = _mmimdb_labels(rng, n, len(GENRES))
    colours = rng.uniform(0, 255, (len(GENRES), 3))
    ids = [f"{1000000 + 37 * i:07d}" for i in range(n)]
    sizes = [(182, 268), (300, 450), (140, 209), (640, 400)]  # (width, height): tall, taller, small, wide
    for i, imdb_id in enumerate(ids):
        genres = [GENRES[j] for j in np.flatnonzero(y[i])]
        cues = [w for g in genres for w in _genre_words(g)]
        words = list(rng.choice(_MMIMDB_FILLER, size=6)) + cues + ["zzoutofvocab"]
        rng.shuffle(words)
        plot = " ".join(words).capitalize() + ". It was made in 1999!"
        extra = ["Reality-TV"] if i % 5 == 0 else []  # not one of the 23: dropped
        meta = {"title": f"SYNTHETIC movie {i}", "plot": ["Short outline.", plot], "genres": genres + extra}
        (root / "dataset" / f"{imdb_id}.json").write_text(json.dumps(meta))
        w, h = sizes[i % len(sizes)]
        colour = colours[np.flatnonzero(y[i])].mean(axis=0)
        pixels = np.clip(colour + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "dataset" / f"{imdb_id}.jpeg", quality=90)
    split = {"train": ids[:n_train], "dev": ids[n_train:n_train + n_dev], "test": ids[n_train + n_dev:]}
    (root / "split.json").write_text(json.dumps(split))
    vocab = list(_MMIMDB_FILLER) + [w for g in GENRES for w in _genre_words(g)] + [".", "!", "it", "was", "made", "in"]
    vectors = {word: rng.normal(0, 1, dim).astype(np.float32) for word in vocab}
    write_word2vec(root / ("word2vec.bin" if word2vec_binary else "word2vec.txt"), vectors, binary=word2vec_binary)
    (root / "SYNTHETIC.txt").write_text(SYNTHETIC_NOTE + "\n")
    return root
