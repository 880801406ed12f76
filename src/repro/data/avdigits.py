"""AV-Digits: the small embedded audio-visual digit set (a stand-in for AV-MNIST, *not* AV-MNIST).

Each sample pairs a PCA-degraded MNIST digit (28×28, uint8) with a noisy spoken digit of the same
label rendered as a 112×112 log-magnitude spectrogram (uint8, 0..255, like the AV-MNIST release that
MultiBench divides by 255). How the set is built, from which sources and under which licences, is
documented in `scripts/make_avdigits.py` and `avdigits/ATTRIBUTION.md`.

Only compact ingredients are stored in the package (`avdigits/avdigits.npz`, < 25 MB): the unique
clean utterances and the noise clips as 8-bit mu-law, the PCA mean/basis and per-image PCA
coefficients, and per sample the utterance index, noise index, noise offset, SNR and time shift.
`load_avdigits` derives the model inputs from them:

- image  = clip(mean + coef @ components, 0, 1) · 255, rounded → uint8 (N, 784)
- audio  = utterance placed at `shift` in a silent clip of `CLIP_LEN` samples (8 kHz), plus the noise
  segment `noise[offset : offset + CLIP_LEN]` scaled to the sample's SNR (powers: mean square of the
  utterance and of the segment); STFT (periodic Hann, n_fft 224, hop 72, centred with zero padding,
  112 frames; the Nyquist bin is dropped → 112 bins); dB = 20·log10(max(|X|, 1e-5)); per sample the
  range [max − 80 dB, max] is mapped linearly to 0..255 and rounded → uint8 (N, 112, 112), rows =
  frequency (row 0 = DC), columns = time.

The derivation is deterministic (no randomness at load time; every random choice was made and stored
by the build script, seed in the manifest). It runs once (a few seconds) and is cached as .npy files
under `cache_dir/<hash of the package files>/`, written atomically (temp file + os.replace); later
loads memory-map the cache. Float32 FFTs on a different CPU/BLAS may move a rare value by ±1.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from repro.files import atomic_save_npy

AVDIGITS_DIR = Path(__file__).parent / "avdigits"
DATA_FILE = "avdigits.npz"
MANIFEST_FILE = "manifest.json"
SPLITS = ("train", "val", "test")
FIX = "rebuild it with `python scripts/make_avdigits.py`"

# Spectrogram parameters (shared with scripts/make_avdigits.py, which imports them).
SAMPLE_RATE = 8000
N_FFT = 224
HOP = 72
N_FRAMES = 112
N_BINS = 112
CLIP_LEN = HOP * (N_FRAMES - 1)  # 7992 samples ≈ 1 s: centred STFT then yields exactly 112 frames
TOP_DB = 80.0
AMIN = 1e-5
# Bump when the derivation below changes, so stale caches are not reused.
DERIVE_VERSION = "1"
_CHUNK = 512  # samples per STFT batch: bounds peak memory (~60 MB) for the 70k-sample variant


def _default_cache_dir() -> Path:
    return Path("outputs") / "cache" / "avdigits"


def mulaw_encode(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1] → uint8 code (continuous mu-law, mu = 255, 256 uniform levels)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(255.0 * np.abs(x)) / np.log(256.0)
    return np.round((y + 1.0) * 127.5).astype(np.uint8)


def mulaw_table() -> np.ndarray:
    """Decode table: uint8 code → float32 sample (the npz stores its own copy, which is used)."""
    y = np.arange(256, dtype=np.float64) / 127.5 - 1.0
    return (np.sign(y) * np.expm1(np.abs(y) * np.log(256.0)) / 255.0).astype(np.float32)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def decode_images(mean: np.ndarray, components: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """PCA reconstruction → uint8 (N, 784)."""
    rec = mean.astype(np.float64) + coef.astype(np.float64) @ components.astype(np.float64)
    return np.round(np.clip(rec, 0.0, 1.0) * 255.0).astype(np.uint8)


def spectrogram_u8(waves) -> np.ndarray:
    """(B, CLIP_LEN) float waveforms → uint8 (B, 112, 112) log-magnitude spectrograms."""
    import torch

    x = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float32)
    spec = torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    mag = spec.abs()[:, :N_BINS, :]  # drop the Nyquist bin: 113 → 112 rows
    db = 20.0 * torch.log10(torch.clamp(mag, min=AMIN))
    ref = db.amax(dim=(1, 2), keepdim=True)
    scaled = torch.clamp((db - ref + TOP_DB) / TOP_DB, 0.0, 1.0) * 255.0
    return torch.round(scaled).to(torch.uint8).numpy()


def mix_waves(
    z: dict, utt: np.ndarray, noise: np.ndarray, offset: np.ndarray, snr_db: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """Clean utterance at `shift` + noise segment scaled to `snr_db` → (B, CLIP_LEN) float64."""
    table = z["mulaw_table"].astype(np.float64)
    u_data, u_off = z["utt_data"], z["utt_offsets"]
    n_data, n_off = z["noise_data"], z["noise_offsets"]
    out = np.zeros((len(utt), CLIP_LEN), dtype=np.float64)
    for i in range(len(utt)):
        s = table[u_data[u_off[utt[i]] : u_off[utt[i] + 1]]][:CLIP_LEN]
        start = int(shift[i])
        out[i, start : start + len(s)] = s
        p_speech = float(np.mean(s * s))
        base = n_off[noise[i]] + int(offset[i])
        seg = table[n_data[base : base + CLIP_LEN]]
        p_noise = float(np.mean(seg * seg)) + 1e-12
        out[i] += seg * np.sqrt(p_speech / (p_noise * 10.0 ** (float(snr_db[i]) / 10.0)))
    return out


def derive_split(z: dict, split: str) -> dict[str, np.ndarray]:
    """All model inputs of one split from the stored ingredients (see the module docstring)."""
    image = decode_images(z["pca_mean"], z["pca_components"], z[f"{split}_coef"])
    n = len(image)
    audio = np.empty((n, N_BINS, N_FRAMES), dtype=np.uint8)
    for a in range(0, n, _CHUNK):
        b = min(a + _CHUNK, n)
        waves = mix_waves(
            z,
            z[f"{split}_utt"][a:b],
            z[f"{split}_noise"][a:b],
            z[f"{split}_noise_offset"][a:b],
            z[f"{split}_snr_db"][a:b],
            z[f"{split}_shift"][a:b],
        )
        audio[a:b] = spectrogram_u8(waves)
    voice_names = z["voice_names"]
    voice = voice_names[z["utt_voice"][z[f"{split}_utt"]]]
    return {
        "image": image,
        "audio": audio,
        "label": z[f"{split}_label"].astype(np.int64),
        "voice": voice.astype(voice_names.dtype),
    }


def _fail_missing(path: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(f"AV-Digits: {path} is missing (expected {what}); {FIX}")


def _read_manifest(data_dir: Path) -> dict:
    path = data_dir / MANIFEST_FILE
    if not path.is_file():
        raise _fail_missing(path, "the AV-Digits manifest")
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        _ = files[DATA_FILE]["sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"AV-Digits: {path} is not a valid manifest (expected JSON with files.{DATA_FILE}.sha256: {err}); {FIX}"
        ) from None
    return manifest


def check_files(data_dir: Path) -> dict:
    """Manifest of `data_dir` after checking every listed file against its sha256."""
    manifest = _read_manifest(data_dir)
    for name, info in manifest["files"].items():
        path = data_dir / name
        if not path.is_file():
            raise _fail_missing(path, f"a file of sha256 {info['sha256'][:12]}…")
        digest = sha256_file(path)
        if digest != info["sha256"]:
            raise ValueError(
                f"AV-Digits: {path} is corrupt (sha256 {digest[:12]}…, manifest expects {info['sha256'][:12]}…); {FIX}"
            )
    return manifest


def load_avdigits(
    cache_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Load AV-Digits: {"train"|"val"|"test": {"image", "audio", "label", "voice"}}.

    image uint8 (N, 784); audio uint8 (N, 112, 112); label int64 (N,); voice str ids (N,).
    Arrays are memory-mapped from the cache (read-only). `data_dir` defaults to the embedded set
    (`AVDIGITS_DIR`); pass the `--out` folder of `make_avdigits.py` for a locally built larger variant.
    """
    data_dir = Path(data_dir) if data_dir is not None else AVDIGITS_DIR
    cache_root = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    manifest = check_files(data_dir)
    key = hashlib.sha256((json.dumps(manifest["files"], sort_keys=True) + DERIVE_VERSION).encode()).hexdigest()[:16]
    cdir = cache_root / key
    marker = cdir / "complete.json"
    fields = ("image", "audio", "label", "voice")
    if not marker.is_file():
        cdir.mkdir(parents=True, exist_ok=True)
        data_path = data_dir / DATA_FILE
        try:
            with np.load(data_path, allow_pickle=False) as npz:
                z = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as err:
            raise ValueError(f"AV-Digits: cannot read {data_path} ({err}); {FIX}") from None
        for split in SPLITS:
            if f"{split}_coef" not in z:
                raise ValueError(f"AV-Digits: {data_path} lacks split {split!r}; {FIX}")
            arrays = derive_split(z, split)
            for field in fields:
                atomic_save_npy(cdir / f"{split}_{field}.npy", arrays[field])
        tmp = cdir / "complete.json.tmp"
        tmp.write_text(json.dumps({"files": manifest["files"], "derive_version": DERIVE_VERSION}))
        os.replace(tmp, marker)
    out: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLITS:
        out[split] = {}
        for field in fields:
            path = cdir / f"{split}_{field}.npy"
            try:
                out[split][field] = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as err:
                raise ValueError(
                    f"AV-Digits: cached file {path} is unreadable ({err}); delete {cdir} and reload"
                ) from None
    return out
