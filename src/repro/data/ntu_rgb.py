"""NTU RGB+D 60 skeletons + RGB video reader (``data=ntu``; msaf.txt §5.3–5.4, mfas.txt §4; IMPLEMENTATION-NOTES
§1.4): samples ``video`` (T, 3, S, S) and ``skeleton`` (3, window, 25, 2), label = action − 1.

Layout under ``root`` (``${paths.data_dir}/ntu``): the release's ``nturgbd_skeletons/*.skeleton`` and the RGB videos
``nturgbd_rgb/avi_256x256_30/<stem>_rgb.avi``, 256×256 at 30 fps, as ``scripts/prepare_ntu.py``
(`repro.data.ntu_prepare`) writes them from the release's 1920×1080 ``nturgbd_rgb/*_rgb.avi`` (the authors' ffmpeg
resize). Decoding the prepared avi per sample is the default storage (docs/ntu.md: measured against a uint8
frame store, which would take ~205 GB for the release).

Pairing: RGB and skeleton files are matched by sample stem (``SsssCcccPpppRrrrAaaa``), never by sorted position (the
authors' loader builds the two lists independently and assumes they match). An RGB file without a skeleton file, or
a skeleton sample without its RGB file, is a one-line `DataError` naming the file. The samples with no skeleton
data (the release's 302) are excluded from both sides by default (``exclude_missing``), as the authors'
``--no_bad_skel``.

Skeleton side: exactly `repro.data.ntu.NTUSkeletonReader`'s samples (its cache, splits, origin subtraction, crop
and time resize; this reader wraps one). RGB side, as the authors' ``load_video`` + ``AugCrop`` + ``NormalizeLen``
(anita-hu/mfas ``datasets/ntu.py``):

1. the avi is decoded in order with PyAV (ENVIRONMENT.md "Video": seeking returns wrong frames) and 24 frames are
   kept. Default: the frames at ``round(linspace(0, n − 1, 24))`` — every kept frame is a real frame (a clip
   shorter than 24 frames repeats frames). QUIRK ``quirk_last_frame_zero``: the authors' indices
   ``linspace(0, n, 24).astype(int)``; their loop stores frame k when k is *in* that list, in order, into the next
   free slot, so the slots hold the distinct indices below n and the remaining slots stay zero: the last slot always
   (index n is never read), and more at the end for clips shorter than 24 frames (duplicate indices are stored once);
2. training only (``temporal_crop`` = their p_interval 0.5, null = off): a symmetric temporal crop,
   ratio = 1 − p·U[0, 1), begin = (24 − int(24·ratio)) // 2, the slots begin … 24 − begin (torch's RNG, as the
   skeleton crop);
3. ``NormalizeLen``: ``linspace(0, L − 1, frames).astype(int)`` of the L slots left (truncation, as theirs);
4. channels RGB; QUIRK ``quirk_bgr`` swaps them to BGR as the authors' OpenCV frames reached the network;
5. frames resized (bilinear, antialiased) to ``round(frame_size · 256 / 224)`` when they are not that size already,
   then the central ``frame_size`` box (the fork's VisualRandomCrop, always central, train and eval: start =
   side // 2 − frame_size // 2), so the crop keeps the authors' 224 of 256 at any size (the CPU smoke path: 8 × 32²).

The clip stays uint8 until the datamodule turns the sample into float; ImageNet normalisation (their /255, mean,
std in RGB order — applied to BGR data under the QUIRK) is ``data.transforms`` (configs/data/ntu.yaml); cropping
before the float conversion keeps the per-sample work at the 224² the network reads. A zero slot of
the QUIRK becomes −mean/std after it, as in the authors' code (they normalise after loading).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from repro.data.base import ArrayDataset, DataError, Reader
from repro.data.ntu import DOWNLOAD_HINT, WINDOW, NTUSkeletonReader
from repro.data.ntu_names import parse_ntu_name

log = logging.getLogger(__name__)

RGB_DIR = "nturgbd_rgb/avi_256x256_30"
RGB_SUFFIX = "_rgb.avi"
LOADED_FRAMES = 24  # the authors' load_video(vid_len=24)
PREPARED_SIZE = 256  # the authors' ffmpeg resize (avi_256x256_30)
CROP_SIZE = 224  # VisualRandomCrop(224) of the 256² frames
EMPTY = -1  # a slot the authors' loader never fills (stays zero)
PREPARE_HINT = ("python scripts/prepare_ntu.py --root <the NTU folder> [--src <folder with the release's *_rgb.avi>] "
                "(resumable; docs/ntu.md)")


def loaded_slots(num_frames: int, quirk_last_frame_zero: bool = False) -> np.ndarray:
    """The frame index each of the 24 loaded slots holds (`EMPTY`: stays zero), for a clip of `num_frames`."""
    if num_frames < 1:
        raise ValueError("a clip needs at least one frame")
    if not quirk_last_frame_zero:
        return np.round(np.linspace(0, num_frames - 1, LOADED_FRAMES)).astype(np.int64)
    taken = np.linspace(0, num_frames, LOADED_FRAMES).astype(int)
    read = np.unique(taken[taken < num_frames])  # `fr_idx in taken` over range(num_frames): each index once, in order
    slots = np.full(LOADED_FRAMES, EMPTY, dtype=np.int64)
    slots[:len(read)] = read
    return slots


def crop_slots(slots: np.ndarray, p_interval: float, u: float) -> np.ndarray:
    """The authors' AugCrop of the loaded frames: ratio = 1 − p·u, a symmetric window of the middle slots."""
    n = len(slots)
    ratio = 1.0 - p_interval * u
    begin = (n - int(n * ratio)) // 2
    return slots[begin:n - begin]


def normalize_len(slots: np.ndarray, frames: int) -> np.ndarray:
    """The authors' NormalizeLen for RGB: the slots at ``linspace(0, L − 1, frames).astype(int)``."""
    return slots[np.linspace(0, len(slots) - 1, frames).astype(int)]


def resized_size(frame_size: int) -> int:
    """The side the decoded frames get so that a centre crop of `frame_size` keeps the authors' 224/256."""
    return int(round(frame_size * PREPARED_SIZE / CROP_SIZE))


def av_reason(err: Exception) -> str:
    """A PyAV error's first line without the file name (the DataError names the file itself)."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text.replace(str(getattr(err, "filename", "") or "\0"), "").strip(" :;'") or type(err).__name__


def decode_avi(path: Path) -> list:
    """Every frame of the avi's first video stream, decoded in order (PyAV frames, not yet converted)."""
    import av

    fix = f"fix: prepare it again ({PREPARE_HINT}; delete the file first: the preparation skips files that exist)"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"cannot decode {path} (no video stream): expected a 256×256 avi video; {fix}")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1  # one thread per DataLoader worker: workers give the parallelism
            frames = list(container.decode(stream))
    except DataError:
        raise
    except (av.FFmpegError, OSError, ValueError) as err:
        raise DataError(f"cannot decode {path} ({av_reason(err)}): expected a readable avi video; {fix}") from None
    if not frames:
        raise DataError(f"{path} holds no video frames; expected a clip of the release (>= 1 frame); {fix}")
    return frames


class NTUClips:
    """A lazy array-like of RGB clips: ``view[i]`` = uint8 (frames, 3, S, S) decoded from its avi (steps 1–5 of the
    module docstring); ``view[index]`` another view (nothing read)."""

    dtype = np.dtype(np.uint8)

    def __init__(self, paths: list[Path], frames: int, frame_size: int, crop: float | None = None,
                 quirk_last_frame_zero: bool = False, bgr: bool = False):
        self.paths = list(paths)
        self.frames, self.frame_size = int(frames), int(frame_size)
        self.crop = None if crop is None else float(crop)
        self.quirk_last_frame_zero, self.bgr = bool(quirk_last_frame_zero), bool(bgr)

    @property
    def side(self) -> int:
        return resized_size(self.frame_size)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), self.frames, 3, self.frame_size, self.frame_size)

    def __len__(self) -> int:
        return len(self.paths)

    def picked(self, num_frames: int) -> np.ndarray:
        """The decoded frame index of each output frame (`EMPTY` = a zero frame), crop drawn from torch's RNG."""
        slots = loaded_slots(num_frames, self.quirk_last_frame_zero)
        if self.crop is not None:
            slots = crop_slots(slots, self.crop, float(torch.rand(())))
        return normalize_len(slots, self.frames)

    def read(self, path: Path) -> np.ndarray:
        decoded = decode_avi(path)
        picked = self.picked(len(decoded))
        first = decoded[0]
        clip = np.zeros((len(picked), first.height, first.width, 3), dtype=np.uint8)
        for k in np.unique(picked[picked != EMPTY]):
            clip[picked == k] = decoded[k].to_ndarray(format="rgb24")
        x = torch.from_numpy(clip).permute(0, 3, 1, 2)  # (T, 3, H, W)
        if self.bgr:
            x = x.flip(1)
        if x.shape[-2:] != (self.side, self.side):
            from repro.data.transforms import _resize

            x = _resize(x.contiguous(), (self.side, self.side))
        start = self.side // 2 - self.frame_size // 2  # VisualRandomCrop's central box (orig // 2 − crop // 2)
        x = x[..., start:start + self.frame_size, start:start + self.frame_size]
        return np.ascontiguousarray(x.numpy())

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return self.read(self.paths[int(i)])
        index = np.arange(len(self.paths))[i] if isinstance(i, slice) else np.asarray(i)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return NTUClips([self.paths[k] for k in index], self.frames, self.frame_size, self.crop,
                        self.quirk_last_frame_zero, self.bgr)

    def __array__(self, *args, **kwargs):
        raise TypeError("NTUClips is a lazy view of per-sample avi files; read clips one at a time")

    def __repr__(self) -> str:
        return f"NTUClips({len(self)} clips, frames={self.frames}, size={self.side}, crop={self.crop})"


def rgb_by_stem(paths: list[Path]) -> dict[str, Path]:
    """Sample stem → RGB file (any listing order); a foreign name or a sample present twice is a DataError."""
    out: dict[str, Path] = {}
    for p in paths:
        stem = parse_ntu_name(p).stem
        if stem in out:
            raise DataError(f"{p}: sample {stem} has two RGB files ({out[stem].name} and {p.name}); expected one per "
                            "sample — remove one")
        out[stem] = p
    return out


def pair_by_stem(rgb: dict[str, Path], skeleton_names: list[str], excluded: set[str], rgb_folder: Path,
                 skeleton_folder: Path) -> dict[str, Path]:
    """The RGB file of every skeleton sample kept; an unpaired file on either side is a one-line DataError.

    `excluded`: skeleton stems left out (no skeleton data); their RGB files are skipped, not errors."""
    skeleton_stems = {parse_ntu_name(n).stem for n in skeleton_names}
    orphans = sorted(set(rgb) - skeleton_stems)
    if orphans:
        raise DataError(f"{rgb[orphans[0]]} has no skeleton partner ({skeleton_folder / (orphans[0] + '.skeleton')} "
                        f"is missing; {len(orphans)} RGB files without skeletons in all); expected the same samples "
                        f"on both sides; fix: add the skeleton files of the release ({DOWNLOAD_HINT}) or move those "
                        "RGB files out")
    missing = sorted(skeleton_stems - excluded - set(rgb))
    if missing:
        expected = rgb_folder / (missing[0] + RGB_SUFFIX)
        raise DataError(f"{skeleton_folder / (missing[0] + '.skeleton')} has no RGB video ({expected} is missing; "
                        f"{len(missing)} samples without video in all); fix: {PREPARE_HINT}, or move those "
                        "skeleton files out")
    return {s: rgb[s] for s in skeleton_stems - excluded}


class NTUReader(Reader):
    """``<root>/nturgbd_skeletons/*.skeleton`` + ``<root>/nturgbd_rgb/avi_256x256_30/*_rgb.avi``: modalities
    ``video`` and ``skeleton``; the cross-subject splits of `repro.data.ntu_names`."""

    name = "ntu"
    num_folds = 0
    prepare_hint = PREPARE_HINT
    data_format = ("NTU RGB+D 60: nturgbd_skeletons/SsssCcccPpppRrrrAaaa.skeleton + nturgbd_rgb/avi_256x256_30/"
                   "<stem>_rgb.avi (256x256, 30 fps; scripts/prepare_ntu.py), paired by sample name; cross-subject")
    synthetic_mark = "a SYNTHETIC.txt file in the dataset folder (beside nturgbd_skeletons/ and nturgbd_rgb/)"
    path_key = "data.reader.root"
    # the fixture's 64 short clips: 8 frames of 32² through I3D + HCN take seconds per epoch on CPU
    fixture_run_overrides = ("data.reader.frames=8", "data.reader.frame_size=32", "data.batch_size=4",
                             "data.num_workers=0")

    @classmethod
    def write_fixture(cls, folder: Path, **options) -> Path:
        from repro.data.fixtures_ntu import write_ntu

        return write_ntu(folder)

    def __init__(self, root: str | Path, protocol: str = "mfas", frames: int = 32, frame_size: int = CROP_SIZE,
                 window: int = WINDOW, temporal_crop: float | None = 0.5, quirk_last_frame_zero: bool = False,
                 quirk_bgr: bool = False, quirk_absent_body_minus_origin: bool = False, exclude_missing: bool = True,
                 parse_workers: int | None = None, rgb_dir: str = RGB_DIR):
        self.root = Path(root)
        if int(frames) < 1:
            raise DataError(f"data.reader.frames={frames}: expected a positive number of frames (I3D 32, inflated "
                            "ResNet-50 8)")
        if int(frame_size) < 1:
            raise DataError(f"data.reader.frame_size={frame_size}: expected a positive crop size in pixels (224)")
        self.frames, self.frame_size = int(frames), int(frame_size)
        self.quirk_last_frame_zero, self.quirk_bgr = bool(quirk_last_frame_zero), bool(quirk_bgr)
        self.rgb_folder = self.root / rgb_dir
        self.skeletons = NTUSkeletonReader(self.root, protocol, window, quirk_absent_body_minus_origin,
                                           exclude_missing, temporal_crop, parse_workers)
        self.temporal_crop = self.skeletons.temporal_crop  # one p_interval for both, as the authors' AugCrop

    def rgb_files(self) -> dict[str, Path]:
        if not self.rgb_folder.is_dir():
            raise DataError(f"missing folder {self.rgb_folder}: expected the prepared 256×256 avi files "
                            f"(<stem>{RGB_SUFFIX}); "
                            f"fix: {PREPARE_HINT}, or {self.point_at(self.root, 'the NTU folder')}")
        # hidden names are the temporary files of an interrupted preparation (renamed only when complete)
        files = sorted(p for p in self.rgb_folder.glob("*.avi") if not p.name.startswith("."))
        if not files:
            raise DataError(f"{self.rgb_folder} holds no .avi files; fix: {PREPARE_HINT}")
        return rgb_by_stem(files)

    def load(self, fold: int | None = None) -> dict[str, ArrayDataset]:
        self.check_fold(fold)
        rgb = self.rgb_files()
        self.skeletons.folder_key = self.folder_key
        splits = self.skeletons.load()
        self.synthetic = self.skeletons.synthetic
        cache = splits["train"].arrays["skeleton"].cache
        excluded = {parse_ntu_name(n).stem for n in cache.index["empty"]} if self.skeletons.exclude_missing else set()
        paired = pair_by_stem(rgb, cache.names, excluded, self.rgb_folder, self.root / "nturgbd_skeletons")
        skipped = len(set(rgb) & excluded)
        if skipped:
            log.info("NTU RGB: %d RGB files of samples without skeleton data are skipped", skipped)
        return {split: self._with_video(split, data, paired) for split, data in splits.items()}

    def _with_video(self, split: str, data: ArrayDataset, paired: dict[str, Path]) -> ArrayDataset:
        arrays = {}
        if self.reads("video"):
            crop = self.temporal_crop if split == "train" else None
            arrays["video"] = NTUClips([paired[str(s)] for s in data.ids], self.frames, self.frame_size, crop,
                                       self.quirk_last_frame_zero, self.quirk_bgr)
        if self.reads("skeleton"):
            arrays["skeleton"] = data.arrays["skeleton"]
        return ArrayDataset(arrays, data.labels, data.ids)
