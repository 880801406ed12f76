"""MESM's audio input (mesm.txt §3.1 "acoustic features"; IMPLEMENTATION-NOTES §5.1): 128-mel power spectrograms
cut into 32-frame chunks, each chunk an "image" (1, 128, 32) for the audio CNN.

The authors call ``torchaudio.transforms.MelSpectrogram`` with its defaults except the window: a periodic Hann
window, ``center=True`` with reflect padding, power 2, no normalisation, an HTK mel scale without filter-bank norm,
f_min 0, f_max sr/2, 128 mels. IEMOCAP: ``win_length = sr/16000·400`` with the default ``n_fft = 400``; MOSEI:
``n_fft = win_length = sr/16000·400``; both ``hop = win_length // 2`` — at 16 kHz, n_fft 400 / win 400 / hop 200
for both. torchaudio cannot be installed here (ENVIRONMENT.md), so this module writes the same computation with
``torch.stft`` (tested against ``librosa.feature.melspectrogram(htk=True, norm=None)``).

The authors feed the **power** spectrogram itself to the CNN — no log, no dB (src/datasets.py builds it and
src/models/e2e.py passes it straight to the first convolution) — and so does this module.

Chunking (``cutSpecToPieces``): ceil(T / 32) pieces of 32 frames, the last right-zero-padded.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from repro.data.base import DataError

SAMPLE_RATE = 16000  # both datasets' prepared wavs (IEMOCAP's release and MOSEI's WAV_16000)
N_MELS = 128
CHUNK_FRAMES = 32
REFERENCE_WINDOW = 400  # samples at 16 kHz (25 ms); the authors scale it with the sample rate


def hz_to_mel_htk(freq: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel_to_hz_htk(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = N_MELS, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """(n_mels, n_fft//2 + 1) triangular HTK-mel filters, unnormalised (torchaudio's ``melscale_fbanks`` with
    ``norm=None, mel_scale='htk'``; librosa's ``mel(htk=True, norm=None)``): filter m rises from mel point m to
    m+1 and falls to m+2, the points evenly spaced in mel between f_min and f_max."""
    f_max = sample_rate / 2 if f_max is None else f_max
    bins = np.linspace(0.0, sample_rate // 2, n_fft // 2 + 1)
    points = mel_to_hz_htk(np.linspace(hz_to_mel_htk(f_min), hz_to_mel_htk(f_max), n_mels + 2))
    widths = np.diff(points)
    offsets = points[None, :] - bins[:, None]  # (bins, n_mels + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.from_numpy(np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32))


def stft_sizes(sample_rate: int, dataset: str) -> tuple[int, int, int]:
    """(n_fft, win_length, hop_length) as the authors' loaders set them for `dataset` (iemocap | mosei)."""
    win = int(float(sample_rate) / 16000 * REFERENCE_WINDOW)
    n_fft = REFERENCE_WINDOW if dataset == "iemocap" else win  # IEMOCAP keeps torchaudio's default n_fft
    return n_fft, win, win // 2


def mel_spectrogram(wave: torch.Tensor, sample_rate: int, n_fft: int, win_length: int, hop_length: int,
                    n_mels: int = N_MELS) -> torch.Tensor:
    """(n_mels, T) mel power spectrogram of a mono float waveform (T = 1 + len // hop, centred frames)."""
    if wave.ndim != 1:
        raise ValueError(f"mel_spectrogram wants a mono (samples,) waveform, got shape {tuple(wave.shape)}")
    wave = wave.float()
    if wave.numel() <= n_fft // 2:  # reflect padding needs more samples than the pad: zero-pad a very short clip
        wave = F.pad(wave, (0, n_fft // 2 + 1 - wave.numel()))
    window = torch.hann_window(win_length, periodic=True)
    spec = torch.stft(wave, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    power = spec.real.square() + spec.imag.square()
    return mel_filterbank(int(sample_rate), int(n_fft), int(n_mels)) @ power


def cut_chunks(spec: torch.Tensor, width: int = CHUNK_FRAMES) -> torch.Tensor:
    """(F, T) → (ceil(T / width), 1, F, width): consecutive pieces, the last right-padded with zeros."""
    pieces = max(1, math.ceil(spec.shape[-1] / width))
    padded = F.pad(spec, (0, pieces * width - spec.shape[-1]))
    return padded.reshape(spec.shape[0], pieces, width).permute(1, 0, 2).unsqueeze(1).contiguous()


def read_mono_wav(path: Path, sample_rate: int = SAMPLE_RATE, fix: str = "") -> torch.Tensor:
    """A mono wav as float32 in [-1, 1) (int16 / 32768, as torchaudio.load). A stereo file, another sample rate or
    an unreadable file is a one-line `DataError` naming it."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing audio file {path}: expected a mono {sample_rate} Hz wav; fix: {fix}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise DataError(f"cannot read {path} as a wav ({str(err).splitlines()[0]}): truncated or not audio; "
                        f"fix: {fix}") from None
    if data.shape[1] != 1:
        raise DataError(f"{path} has {data.shape[1]} channels, expected mono (1); fix: {fix}")
    if rate != sample_rate:
        raise DataError(f"{path} is sampled at {rate} Hz, expected {sample_rate} Hz; fix: {fix}")
    if data.shape[0] == 0:
        raise DataError(f"{path} holds no samples, expected the utterance's audio; fix: {fix}")
    return torch.from_numpy(data[:, 0].copy())


def wav_chunks(path: Path, dataset: str, sample_rate: int = SAMPLE_RATE, fix: str = "") -> torch.Tensor:
    """The audio CNN's input of one utterance: (chunks, 1, 128, 32) float32."""
    wave = read_mono_wav(path, sample_rate, fix)
    n_fft, win, hop = stft_sizes(sample_rate, dataset)
    return cut_chunks(mel_spectrogram(wave, sample_rate, n_fft, win, hop))
