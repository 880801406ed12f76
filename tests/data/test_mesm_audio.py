"""MESM's audio input (repro.data.mesm_audio): the torch.stft mel spectrogram equals librosa's (torchaudio's
MelSpectrogram defaults: HTK mel, no norm, centred reflect-padded frames, power 2), the authors' STFT sizes, and
the 32-frame chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repro.data.base import DataError
from repro.data.mesm_audio import cut_chunks, mel_filterbank, mel_spectrogram, read_mono_wav, stft_sizes

torch.set_num_threads(1)


def test_stft_sizes_follow_the_authors():
    assert stft_sizes(16000, "iemocap") == (400, 400, 200) and stft_sizes(16000, "mosei") == (400, 400, 200)
    assert stft_sizes(48000, "iemocap") == (400, 1200, 600)  # IEMOCAP keeps torchaudio's default n_fft (QUIRK-ish)
    assert stft_sizes(48000, "mosei") == (1200, 1200, 600)


def test_mel_spectrogram_matches_librosa():
    import warnings

    import librosa

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2 + 123) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns that the top mel filters of 128 over 201 bins are empty
        reference = librosa.feature.melspectrogram(
            y=wave, sr=16000, n_fft=400, hop_length=200, win_length=400, window="hann", center=True,
            pad_mode="reflect", power=2.0, n_mels=128, htk=True, norm=None, fmin=0.0, fmax=8000.0)
        bank = librosa.filters.mel(sr=16000, n_fft=400, n_mels=128, htk=True, norm=None)
    assert np.abs(mel_filterbank(16000, 400).numpy() - bank).max() < 1e-6
    ours = mel_spectrogram(torch.from_numpy(wave), 16000, 400, 400, 200).numpy()
    assert ours.shape == reference.shape == (128, 1 + wave.size // 200)
    peak = reference.max()
    assert np.abs(ours - reference).max() < 1e-5 * peak  # float32 FFTs: ~4e-7 of the peak seen
    loud = reference > 1e-3 * peak
    assert (np.abs(ours - reference)[loud] / reference[loud]).max() < 1e-4


def test_chunks_are_consecutive_and_the_last_is_zero_padded():
    spec = torch.arange(128 * 70, dtype=torch.float32).reshape(128, 70)
    chunks = cut_chunks(spec)
    assert chunks.shape == (3, 1, 128, 32)
    assert torch.equal(chunks[1, 0], spec[:, 32:64]) and torch.equal(chunks[2, 0, :, :6], spec[:, 64:])
    assert chunks[2, 0, :, 6:].abs().sum() == 0
    assert cut_chunks(spec[:, :32]).shape == (1, 1, 128, 32)


def test_read_mono_wav_scales_like_torchaudio(tmp_path):
    from scipy.io import wavfile

    data = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    wavfile.write(tmp_path / "a.wav", 16000, data)
    assert torch.equal(read_mono_wav(tmp_path / "a.wav"), torch.tensor([0.0, 0.5, -1.0, 32767 / 32768]))
    (tmp_path / "b.wav").write_bytes(b"RIFF not really")
    with pytest.raises(DataError, match=r"cannot read .*b\.wav as a wav"):
        read_mono_wav(tmp_path / "b.wav")
    with pytest.raises(DataError, match=r"missing audio file .*c\.wav"):
        read_mono_wav(tmp_path / "c.wav")
