"""Build MM-IMDB's ``multimodal_imdb.hdf5`` (read by ``repro.data.mmimdb``) from the raw release.

MM-IMDB (Arevalo et al., "Gated Multimodal Units for Information Fusion", 2017; MFAS §4.2, Table 3).
The ready-made file is at http://lisi1.unal.edu.co/mmimdb/multimodal_imdb.hdf5; this script rebuilds it
from the raw release ``mmimdb.tar.gz`` (``dataset/<imdb_id>.json`` + ``dataset/<imdb_id>.jpeg`` and
``split.json`` with ``train``/``dev``/``test`` id lists), following johnarevalo/gmu-mmimdb
``make_dataset.py`` step by step:

- Movies: those with ``plot`` and ``genres`` in their json and a jpeg poster whose normalised plot is not
  empty (make_dataset's filter), split by ``split.json``, rows in split order train, dev, test (as in the
  released file). Within a split, rows follow ``split.json``'s list order; make_dataset ordered them by its
  own stratified sampling loop, so row i of a rebuilt file is not necessarily row i of the released one.
- Text (``features``, (N, 300) float32): the longest entry of ``plot`` (by characters), normalised by
  ``normalize_text`` (make_dataset's ``normalizeText``: lower case, ``<br />`` and ``~*+^`_#[]|`` → space,
  URLs at line start → ``L``, digit runs → ``N``, punctuation split off, whitespace split), then the mean
  of the word2vec vectors of the tokens found in the vectors file (repeats count, case-sensitive lookup of
  the lower-cased tokens, as make_dataset did). A plot with no known token gets zeros (make_dataset would
  write NaN); how many is recorded in the attribute ``text_rows_without_vectors``.
- Genres (``genres``, (N, 23) int32): Arevalo's 23 genres (``repro.data.mmimdb.GENRES``, most frequent
  first; attribute ``target_names`` as a JSON string like the released file). Other genres (e.g.
  Reality-TV, News, Adult) are dropped, and so are movies left with none of the 23 (make_dataset only
  split movies that carry one). ``--genres frequency`` derives the list instead as the 23 most frequent
  genres of the kept movies (make_dataset's rule; for other releases).
- Posters (``images``, (N, 3, 256, 160) int32, RGB 0..255): make_dataset's ``resize_and_crop_image`` with
  ``img_size`` [160, 256] (gmu.json), itself Caffe's ``resize_and_crop_images.py``: a NEAREST pre-shrink by
  powers of two while the image is more than twice the box (with Caffe's ``size[1] * 2`` quirk kept), a
  centred crop to the 160:256 aspect ratio, a high-quality (LANCZOS = Pillow's old ANTIALIAS) resize to
  160×256, RGB. Stored as pixels: the readers of the released file treat ``images`` as 0..255 pixels
  (Fuel's ``uint8_pixels_to_floatX`` in gmu-mmimdb's dataset.py; MultiBench); the Caffe BGR mean
  subtraction in gmu-mmimdb's vgg.py is the VGG input, which we do not bake in.
- ``vgg_features`` ((N, 4096) float32): VGG-16 fc7 (after its ReLU), as make_dataset's ``get_features``,
  computed only with ``--vgg-weights`` (a torchvision-layout VGG-16 state dict, e.g. ImageNet
  ``vgg16-397923af.pth``) on the poster resized-and-cropped to 224×224 with ImageNet mean/std. Arevalo
  used Caffe's VGG-16 converted to Blocks, so these are the same layer but not bit-identical values.
  Without ``--vgg-weights`` the rows are zeros and the dataset attribute ``computed`` is 0: the reader
  then refuses ``image_source: vgg_features``.
- ``imdb_ids`` ((N,) S7), root attributes ``split_ends`` [train_end, val_end, test_end] (the reader's
  ``train_end``/``val_end``/``test_end`` must match; the released file has 15552, 18160, 25959) and
  counts of skipped movies. ``sequences``/``three_grams``/``word_grams`` of the released file are not
  written: no model here reads them.

The file is written to ``<out>.tmp`` and renamed when complete, so an interrupted run leaves no partial
file behind. Rows are written one at a time (12.7 GB of posters never sit in memory).

Usage:
  python scripts/prepare_mmimdb.py --raw path/to/mmimdb --word2vec GoogleNews-vectors-negative300.bin.gz \\
      [--out data/mmimdb/multimodal_imdb.hdf5] [--vgg-weights vgg16-397923af.pth] [--limit N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro.data.base import DataError  # noqa: E402  (needs the sys.path entry above)
from repro.data.mmimdb import (  # noqa: E402
    FILENAME,
    GENRES,
    IMAGE_SHAPE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SPLIT_ENDS,
    SPLIT_ENDS_ATTR,
    TEXT_DIM,
    VGG_COMPUTED_ATTR,
    VGG_DIM,
)

PROG = "prepare_mmimdb"
RAW_HINT = ("download and extract the raw release mmimdb.tar.gz (http://lisi1.unal.edu.co/mmimdb/) and pass its "
            "folder as --raw")
W2V_HINT = ("pass the GoogleNews word2vec vectors (GoogleNews-vectors-negative300.bin[.gz]) or a word2vec text file "
            "as --word2vec")
SPLITS = (("train", "train"), ("dev", "val"), ("test", "test"))  # split.json key, reader split
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG_INPUT = (224, 224)  # VGGClassifier.resize_and_crop_image default box


# --- text -----------------------------------------------------------------------------------------------------

def normalize_text(text: str) -> list[str]:
    """gmu-mmimdb make_dataset.py `normalizeText`, rule for rule."""
    text = text.lower()
    text = re.sub(r"<br />", r" ", text).strip()
    text = re.sub(r"^https?:\/\/.*[\r\n]*", " L ", text, flags=re.MULTILINE)
    text = re.sub(r"[\~\*\+\^`_#\[\]|]", r" ", text).strip()
    text = re.sub(r"[0-9]+", r" N ", text).strip()
    text = re.sub(r"([/\'\-\.?!\(\)\",:;])", r" \1 ", text).strip()
    return text.split()


def _open_maybe_gzip(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def load_word2vec(path: Path, vocab: Iterable[str] | None = None, fmt: str = "auto",
                  progress=None) -> tuple[dict[str, np.ndarray], int]:
    """Read word2vec vectors (binary `.bin[.gz]` of the C tool / GoogleNews, or the text format).

    Only words in `vocab` are kept (GoogleNews holds 3M words × 300 floats = 3.6 GB; the plots use
    ~100k). Returns ({word: float32 vector}, dim).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing file {path}: expected word2vec vectors; fix: {W2V_HINT}")
    if fmt == "auto":
        fmt = "bin" if path.name.endswith((".bin", ".bin.gz")) else "text"
    if fmt not in ("bin", "text"):
        raise DataError(f"unknown --word2vec-format {fmt!r}; choose auto, bin or text")
    wanted = None if vocab is None else set(vocab)
    try:
        with _open_maybe_gzip(path) as f:
            if fmt == "bin":
                return _read_word2vec_bin(f, path, wanted, progress)
            return _read_word2vec_text(f, path, wanted)
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"cannot read {path} as word2vec {fmt} ({err}); fix: {W2V_HINT}") from None


def _header(line: bytes, path: Path) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise DataError(f"{path} does not start with a word2vec header line `<count> <dim>`; fix: {W2V_HINT}")
    return int(parts[0]), int(parts[1])


def _read_word2vec_bin(f, path: Path, wanted: set[str] | None, progress) -> tuple[dict[str, np.ndarray], int]:
    count, dim = _header(f.readline(), path)
    nbytes = 4 * dim
    wanted_b = None if wanted is None else {w.encode("utf-8") for w in wanted}
    out: dict[str, np.ndarray] = {}
    buf, pos = b"", 0
    for k in range(count):
        # Entry = word, one space, dim little-endian float32, (usually) a newline that the next word
        # then starts with. Read in 4 MB chunks: byte-at-a-time reads of 3M words take minutes.
        while True:
            sp = buf.find(b" ", pos)
            if sp >= 0 and len(buf) - sp - 1 >= nbytes:
                break
            chunk = f.read(1 << 22)
            if not chunk:
                raise DataError(f"{path} ends after {k} of {count} vectors; expected a complete word2vec binary "
                                f"file; fix: {W2V_HINT}")
            buf, pos = buf[pos:] + chunk, 0
        word = buf[pos:sp].lstrip(b"\n")
        if wanted_b is None or word in wanted_b:
            out.setdefault(word.decode("utf-8", errors="replace"),
                           np.frombuffer(buf, dtype="<f4", count=dim, offset=sp + 1).copy())
        pos = sp + 1 + nbytes
        if progress is not None and k % 100000 == 0:
            progress(k, count)
    return out, dim


def _read_word2vec_text(f, path: Path, wanted: set[str] | None) -> tuple[dict[str, np.ndarray], int]:
    out: dict[str, np.ndarray] = {}
    dim = None
    for i, raw in enumerate(f):
        parts = raw.decode("utf-8").rstrip("\n").rstrip().split(" ")
        if i == 0 and len(parts) == 2 and all(p.isdigit() for p in parts):
            dim = int(parts[1])  # optional header `count dim`
            continue
        if len(parts) < 2:
            continue
        if dim is None:
            dim = len(parts) - 1
        if len(parts) - 1 != dim:
            raise DataError(f"{path} line {i + 1} has {len(parts) - 1} values, expected {dim}; fix: {W2V_HINT}")
        if wanted is None or parts[0] in wanted:
            out.setdefault(parts[0], np.asarray(parts[1:], dtype=np.float32))
    if dim is None:
        raise DataError(f"{path} holds no vectors; fix: {W2V_HINT}")
    return out, dim


def text_feature(tokens: list[str], vectors: dict[str, np.ndarray], dim: int) -> tuple[np.ndarray, bool]:
    """Mean vector of the tokens found in `vectors`; (zeros, False) when none is found."""
    found = [vectors[w] for w in tokens if w in vectors]
    if not found:
        return np.zeros(dim, dtype=np.float32), False
    return np.mean(found, axis=0).astype(np.float32), True


# --- images ---------------------------------------------------------------------------------------------------

def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise DataError("Pillow is not installed (needed to decode the posters); fix: pip install Pillow") from None
    return Image


def resize_and_crop(path: Path, box: tuple[int, int]) -> np.ndarray:
    """gmu-mmimdb `VGGClassifier.resize_and_crop_image` up to the pixel array: (height, width, 3) uint8 RGB.

    `box` is (width, height), as in make_dataset (img_size [160, 256] → 160 wide, 256 high).
    """
    Image = _pil()
    try:
        img = Image.open(path)
        img.load()
    except Exception as err:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError... for bad files
        raise DataError(f"cannot decode {path} as an image ({type(err).__name__}: {err}); expected a JPEG poster; "
                        f"fix: {RAW_HINT}") from None
    factor = 1
    # Caffe's pre-shrink test (sic: `size[1] * 2`), kept so that the same posters get the same pixels.
    while img.size[0] / factor > 2 * box[0] and img.size[1] * 2 / factor > 2 * box[1]:
        factor *= 2
    if factor > 1:
        img.thumbnail((img.size[0] / factor, img.size[1] / factor), Image.NEAREST)
    x1 = y1 = 0
    x2, y2 = img.size
    w_ratio, h_ratio = x2 / box[0], y2 / box[1]
    if h_ratio > w_ratio:
        y1, y2 = int(y2 / 2 - box[1] * w_ratio / 2), int(y2 / 2 + box[1] * w_ratio / 2)
    else:
        x1, x2 = int(x2 / 2 - box[0] * h_ratio / 2), int(x2 / 2 + box[0] * h_ratio / 2)
    img = img.crop((x1, y1, x2, y2)).resize(box, Image.LANCZOS).convert("RGB")
    return np.asarray(img, dtype=np.uint8)


# --- VGG-16 fc7 -----------------------------------------------------------------------------------------------

def build_vgg16_fc7(weights: Path, device: str = "cpu"):
    """VGG-16 (torchvision key layout `features.N.*`, `classifier.N.*`) up to fc7 + ReLU, in eval mode.

    Layer widths are taken from the state dict, so any VGG-16-shaped checkpoint loads; fc7 must give
    4096 values (the `vgg_features` width).
    """
    import torch
    from torch import nn

    if not Path(weights).is_file():
        raise DataError(f"missing file {weights}: expected VGG-16 weights; fix: pass a torchvision VGG-16 state dict "
                        f"(e.g. vgg16-397923af.pth) as --vgg-weights, or leave it out")
    try:
        sd = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"cannot load {weights} as a torch state dict ({type(err).__name__}); fix: pass a "
                        f"torchvision VGG-16 state dict as --vgg-weights") from None
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    layers: list[nn.Module] = []
    try:
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            w = sd[f"features.{len(layers)}.weight"]
            layers += [nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1), nn.ReLU(inplace=True)]
        fc6, fc7 = sd["classifier.0.weight"], sd["classifier.3.weight"]
    except KeyError as err:
        raise DataError(f"{weights} lacks VGG-16 parameter {err.args[0]!r}; expected the torchvision VGG-16 "
                        f"layout; fix: pass a torchvision VGG-16 state dict as --vgg-weights") from None
    if fc7.shape[0] != VGG_DIM:
        raise DataError(f"{weights}: fc7 gives {fc7.shape[0]} features, expected {VGG_DIM}; fix: use VGG-16 weights")
    model = nn.Sequential(
        nn.Sequential(*layers),
        nn.AdaptiveAvgPool2d((7, 7)),
        nn.Flatten(),
        nn.Linear(fc6.shape[1], fc6.shape[0]), nn.ReLU(inplace=True),
        nn.Linear(fc7.shape[1], fc7.shape[0]), nn.ReLU(inplace=True),
    )
    mapped = {}
    for k, v in sd.items():
        if k.startswith("features."):
            mapped["0." + k.removeprefix("features.")] = v
        elif k.startswith(("classifier.0.", "classifier.3.")):
            idx, rest = k.removeprefix("classifier.").split(".", 1)
            mapped[f"{3 if idx == '0' else 5}.{rest}"] = v
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        raise DataError(f"{weights} does not fit VGG-16 ({str(err).splitlines()[0]}); fix: pass a torchvision "
                        f"VGG-16 state dict as --vgg-weights") from None
    return model.eval().to(device)


def vgg_input(path: Path) -> np.ndarray:
    """(3, 224, 224) float32: the 224×224 resize-and-crop, /255, ImageNet mean/std (torchvision weights)."""
    x = resize_and_crop(path, VGG_INPUT).astype(np.float32) / 255.0
    x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


# --- the build ------------------------------------------------------------------------------------------------

def read_split(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise DataError(f"missing file {path}: expected the release's split.json; fix: {RAW_HINT}")
    try:
        split = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"cannot parse {path} as JSON ({err}); fix: {RAW_HINT}") from None
    missing = [k for k, _ in SPLITS if not isinstance(split, dict) or not isinstance(split.get(k), list)]
    if missing:
        raise DataError(f"{path} has no id list {missing[0]!r}; expected keys train, dev, test; fix: {RAW_HINT}")
    return {k: [str(i) for i in split[k]] for k, _ in SPLITS}


def read_movie(folder: Path, imdb_id: str) -> tuple[dict | None, str]:
    """(movie, "") or (None, reason it is skipped): make_dataset's filter."""
    js, jpeg = folder / f"{imdb_id}.json", folder / f"{imdb_id}.jpeg"
    if not js.is_file():
        return None, "no json"
    try:
        data = json.loads(js.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"cannot parse {js} as JSON ({err}); fix: {RAW_HINT}") from None
    if not all(k in data for k in ("genres", "plot")):
        return None, "no plot or genres"
    if not jpeg.is_file():
        return None, "no poster"
    plots = data["plot"] if isinstance(data["plot"], list) else [data["plot"]]
    if not plots:
        return None, "empty plot"
    tokens = normalize_text(max(plots, key=len))  # the longest plot (first on ties, like numpy argmax)
    if not tokens:
        return None, "empty plot"
    return {"id": imdb_id, "tokens": tokens, "genres": list(data["genres"]), "jpeg": jpeg}, ""


def _progress(quiet: bool):
    """A rich progress bar (rich is a dependency); a no-op when quiet."""
    if quiet:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=False)


def _track(progress, items, description: str, total: int | None = None):
    if progress is None:
        yield from items
        return
    task = progress.add_task(description, total=total if total is not None else len(items))
    for item in items:
        yield item
        progress.advance(task)


def prepare(
    raw: Path, word2vec: Path, out: Path, split_file: Path | None = None, word2vec_format: str = "auto",
    vgg_weights: Path | None = None, device: str = "cpu", batch_size: int = 32, genres: str = "arevalo",
    limit: int | None = None, force: bool = False, quiet: bool = False,
) -> dict:
    """Build `out` from the raw release at `raw`. Returns a summary dict (also stored as attributes)."""
    import h5py

    folder = raw / "dataset"
    if not folder.is_dir():
        raise DataError(f"missing folder {folder}: expected the release's dataset/<imdb_id>.json|jpeg; fix: {RAW_HINT}")
    split = read_split(split_file or raw / "split.json")
    if out.exists() and not force:
        raise DataError(f"{out} already exists; expected a new output path; fix: pass --force to replace it")
    if limit is not None:
        split = {k: ids[:limit] for k, ids in split.items()}

    progress = _progress(quiet)
    if progress is not None:
        progress.start()
    tmp = out.with_name(out.name + ".tmp")
    try:
        movies: dict[str, list[dict]] = {}
        skipped: Counter = Counter()
        all_ids = [(k, i) for k, _ in SPLITS for i in split[k]]
        kept: list[tuple[str, dict]] = []
        for k, imdb_id in _track(progress, all_ids, "reading json"):
            movie, reason = read_movie(folder, imdb_id)
            if movie is None:
                skipped[reason] += 1
            else:
                kept.append((k, movie))
        if genres == "arevalo":
            names = list(GENRES)
        elif genres == "frequency":
            names = [g for g, _ in Counter(g for _, m in kept for g in m["genres"]).most_common(len(GENRES))]
        else:
            raise DataError(f"unknown --genres {genres!r}; choose arevalo or frequency")
        column = {g: j for j, g in enumerate(names)}
        for k, _ in SPLITS:
            movies[k] = []
        for k, m in kept:
            m["y"] = np.zeros(len(names), dtype=np.int32)
            for g in m["genres"]:
                if g in column:
                    m["y"][column[g]] = 1
            if m["y"].any():
                movies[k].append(m)
            else:
                skipped["none of the genres"] += 1
        sizes = [len(movies[k]) for k, _ in SPLITS]
        empty = [k for (k, _), s in zip(SPLITS, sizes) if s == 0]
        if empty:
            raise DataError(f"{raw}: split {empty[0]!r} has no usable movie (skipped: {dict(skipped)}); "
                            f"fix: {RAW_HINT}")
        rows = [m for k, _ in SPLITS for m in movies[k]]
        n = len(rows)
        id_len = max(7, max(len(m["id"]) for m in rows))

        need = n * (TEXT_DIM + VGG_DIM + len(names) + int(np.prod(IMAGE_SHAPE))) * 4
        out.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(out.parent).free
        if free < need:
            raise DataError(f"{out.parent} has {free / 1e9:.1f} GB free but the file needs {need / 1e9:.1f} GB; "
                            f"fix: free space or pass another --out")

        vocab = {w for m in rows for w in m["tokens"]}
        w2v_task = progress.add_task("reading word2vec", total=None) if progress is not None else None

        def w2v_progress(k, count):
            if progress is not None:
                progress.update(w2v_task, completed=k, total=count)

        vectors, dim = load_word2vec(word2vec, vocab, word2vec_format, w2v_progress)
        if progress is not None:
            progress.update(w2v_task, completed=len(vectors), total=len(vocab),
                            description=f"word2vec: {len(vectors)} of {len(vocab)} plot words found")
        if dim != TEXT_DIM:
            raise DataError(f"{word2vec} has {dim}-d vectors, expected {TEXT_DIM} (GoogleNews word2vec); "
                            f"fix: {W2V_HINT}")
        vgg = build_vgg16_fc7(vgg_weights, device) if vgg_weights is not None else None

        no_vectors = 0
        with h5py.File(tmp, "w") as f:
            features = f.create_dataset("features", (n, TEXT_DIM), dtype="float32")
            vgg_ds = f.create_dataset("vgg_features", (n, VGG_DIM), dtype="float32")  # zeros unless computed
            # One chunk per poster: the reader fetches single rows.
            images = f.create_dataset("images", (n, *IMAGE_SHAPE), dtype="int32", chunks=(1, *IMAGE_SHAPE))
            g = f.create_dataset("genres", data=np.stack([m["y"] for m in rows]))
            g.attrs["target_names"] = json.dumps(names)
            f.create_dataset("imdb_ids", data=np.array([m["id"] for m in rows], dtype=f"S{id_len}"))

            text = np.zeros((n, TEXT_DIM), dtype=np.float32)
            for i, m in enumerate(rows):
                text[i], ok = text_feature(m["tokens"], vectors, TEXT_DIM)
                no_vectors += not ok
            features[...] = text
            del vectors

            box = (IMAGE_SHAPE[2], IMAGE_SHAPE[1])  # (width 160, height 256)
            batch: list[tuple[int, np.ndarray]] = []
            for i, m in _track(progress, list(enumerate(rows)), "posters"):
                images[i] = resize_and_crop(m["jpeg"], box).transpose(2, 0, 1).astype(np.int32)
                if vgg is not None:
                    batch.append((i, vgg_input(m["jpeg"])))
                    if len(batch) == batch_size or i == n - 1:
                        _vgg_batch(vgg, batch, vgg_ds, device)
                        batch = []
            vgg_ds.attrs[VGG_COMPUTED_ATTR] = int(vgg is not None)

            ends = np.cumsum(sizes).astype(np.int64)
            summary = {
                "rows": n,
                "split_sizes": dict(zip([r for _, r in SPLITS], sizes)),
                "split_ends": ends.tolist(),
                "skipped": dict(skipped),
                "text_rows_without_vectors": no_vectors,
                "vgg_features_computed": vgg is not None,
            }
            f.attrs[SPLIT_ENDS_ATTR] = ends
            f.attrs["text_rows_without_vectors"] = no_vectors
            f.attrs["skipped"] = json.dumps(dict(skipped))
            f.attrs["source"] = (f"built by scripts/prepare_mmimdb.py from the raw MM-IMDb release; word2vec: "
                                 f"{Path(word2vec).name}; genres: {genres}")
        os.replace(tmp, out)  # atomic on one file system: readers never see a partial file
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if progress is not None:
            progress.stop()
    return summary


def _vgg_batch(model, batch, dataset, device) -> None:
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.stack([b for _, b in batch])).to(device)
        feats = model(x).cpu().numpy()
    for (i, _), v in zip(batch, feats):
        dataset[i] = v


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        prog="prepare_mmimdb.py",
        description="Build MM-IMDB's multimodal_imdb.hdf5 (Arevalo et al. 2017 layout) from the raw mmimdb.tar.gz "
                    "release, for repro.data.mmimdb.MMIMDBReader.",
    )
    p.add_argument("--raw", type=Path, required=True,
                   help="the extracted release folder (holds dataset/ and split.json)")
    p.add_argument("--word2vec", type=Path, required=True,
                   help="word2vec vectors: GoogleNews-vectors-negative300.bin[.gz] or the word2vec text format")
    p.add_argument("--word2vec-format", choices=("auto", "bin", "text"), default="auto",
                   help="auto: .bin/.bin.gz → binary, else text (default: auto)")
    default_out = Path(os.environ.get("REPRO_DATA_DIR", "data")) / "mmimdb" / FILENAME
    p.add_argument("--out", type=Path, default=default_out,
                   help=f"output file (default: {default_out}, where data=mmimdb looks)")
    p.add_argument("--split", type=Path, default=None, help="split file (default: <raw>/split.json)")
    p.add_argument("--vgg-weights", type=Path, default=None,
                   help="torchvision VGG-16 state dict for vgg_features (default: none → zeros, marked not computed)")
    p.add_argument("--device", default="cpu", help="torch device for the VGG features (default: cpu)")
    p.add_argument("--batch-size", type=int, default=32, help="VGG batch size (default: 32)")
    p.add_argument("--genres", choices=("arevalo", "frequency"), default="arevalo",
                   help="arevalo: the released file's 23 genres; frequency: the 23 most frequent (default: arevalo)")
    p.add_argument("--limit", type=int, default=None, help="keep only the first N ids of each split (a trial build)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:
        summary = prepare(
            args.raw, args.word2vec, args.out, args.split, args.word2vec_format, args.vgg_weights, args.device,
            args.batch_size, args.genres, args.limit, args.force, args.quiet,
        )
    except DataError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    t, v, e = summary["split_ends"]
    print(f"{PROG}: wrote {args.out}: {summary['rows']} movies {summary['split_sizes']}, "
          f"skipped {summary['skipped'] or 'none'}, {summary['text_rows_without_vectors']} plots without vectors, "
          f"vgg_features {'computed' if summary['vgg_features_computed'] else 'NOT computed (zeros)'}")
    overrides = f"data=mmimdb data.reader.root={args.out.parent}"
    if args.out.name != FILENAME:
        overrides += f" data.reader.filename={args.out.name}"
    if (t, v, e) != SPLIT_ENDS:
        overrides += f" data.reader.train_end={t} data.reader.val_end={v} data.reader.test_end={e}"
    print(f"{PROG}: read it with: python train.py {overrides}")
    return summary


if __name__ == "__main__":
    main()
