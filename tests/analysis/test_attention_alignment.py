"""MICA §4.4 analyses (repro.analysis.attention_alignment) on SYNTHETIC paired MulT pickles
(repro.data.fixtures_paired)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from repro.analysis import attention_alignment as alignment
from repro.analysis.attention_alignment import (
    attention_figure,
    correlation_accuracy,
    correlation_counts,
    proxy_a_distance,
    reverse_correlation_counts,
    spans_from_datasets,
    word_frame_spans,
)
from repro.data.base import DataError
from repro.data.cmu import MulTPickleReader, nonzero_mask
from repro.data.fixtures_cmu import FEATURE_DIMS
from repro.data.fixtures_paired import write_paired_mult_pickles


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    return write_paired_mult_pickles(tmp_path_factory.mktemp("paired"), dataset="mosi", seed=3)


def _load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


# -- fixture -----------------------------------------------------------------------------------------------
def test_paired_fixture_layout_and_means(paired):
    aligned, unaligned = _load(paired.aligned), _load(paired.unaligned)
    assert paired.aligned.name == "mosi_data.pkl" and paired.unaligned.name == "mosi_data_noalign.pkl"
    assert "SYNTHETIC" in aligned and "SYNTHETIC" in unaligned
    assert (paired.aligned.parent / "SYNTHETIC.txt").is_file()
    dim_a, dim_v = FEATURE_DIMS["mosi"]
    a, u = aligned["train"], unaligned["train"]
    assert a["text"].shape == (8, 6, 300) and a["vision"].shape == (8, 6, dim_v) and a["audio"].shape[2] == dim_a
    assert u["vision"].shape[1] > 6 and u["vision"].dtype == np.float32
    np.testing.assert_array_equal(a["text"], u["text"])
    np.testing.assert_array_equal(a["id"], u["id"])
    spans = paired.spans["train"]["vision"]
    for i in range(8):
        real = np.flatnonzero(spans[i, :, 0] >= 0)
        assert real[-1] == 5 and np.all(np.diff(real) == 1)  # words left-padded
        assert nonzero_mask(u["vision"][i])[-1]  # frames left-padded: the last step is real
        for w in real:
            start, end = spans[i, w]
            np.testing.assert_allclose(a["vision"][i, w], u["vision"][i, start:end].mean(0), rtol=1e-5, atol=1e-6)
        assert np.all(spans[i, real[1:], 0] > spans[i, real[:-1], 0])  # ordered spans
    # the fixture exercises shared boundary frames and gaps somewhere
    starts, ends = spans[..., 0], spans[..., 1]
    follow = (starts[:, 1:] >= 0) & (starts[:, :-1] >= 0)
    assert np.any((starts[:, 1:] < ends[:, :-1]) & follow) and np.any((starts[:, 1:] > ends[:, :-1]) & follow)


# -- spans ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("modality", ["vision", "audio"])
def test_spans_recovered_exactly_from_raw_pickles(paired, modality):
    aligned, unaligned = _load(paired.aligned), _load(paired.unaligned)
    for split, skey in (("train", "train"), ("val", "valid"), ("test", "test")):
        a, u = aligned[skey], unaligned[skey]
        for i in range(len(a["labels"])):
            spans = word_frame_spans(a[modality][i], u[modality][i], nonzero_mask(a["text"][i]),
                                     nonzero_mask(u[modality][i]))
            np.testing.assert_array_equal(spans, paired.spans[split][modality][i])


def test_spans_through_mult_reader(paired):
    root = paired.aligned.parent
    aligned = MulTPickleReader(root, dataset="mosi", aligned=True).load()
    unaligned = MulTPickleReader(root, dataset="mosi", aligned=False).load()
    for split in ("train", "val", "test"):
        spans, counts = spans_from_datasets(aligned[split], unaligned[split], "vision")
        np.testing.assert_array_equal(spans, paired.spans[split]["vision"])
        assert counts["recovered"] == counts["words"] == int(aligned[split].masks["text"].sum())


def test_unrecoverable_word_is_excluded_and_counted(paired, caplog):
    root = paired.aligned.parent
    aligned = MulTPickleReader(root, dataset="mosi", aligned=True).load()["test"]
    unaligned = MulTPickleReader(root, dataset="mosi", aligned=False).load()["test"]
    aligned.arrays["vision"] = aligned.arrays["vision"].copy()
    aligned.arrays["vision"][1, 5] += 0.5  # the last word of sample 1 no longer matches any frame interval
    spans, counts = spans_from_datasets(aligned, unaligned, "vision")
    expected = paired.spans["test"]["vision"].copy()
    expected[1, 5] = -1
    np.testing.assert_array_equal(spans, expected)
    assert counts["words"] - counts["recovered"] == 1
    assert "1 of" in caplog.text


def test_reprocessed_words_are_exactly_the_unrecovered_ones(paired, tmp_path):
    """fixtures_paired(reprocessed_words=k): the same files but for k words per split, none of them recoverable."""
    broken = write_paired_mult_pickles(tmp_path, dataset="mosi", seed=3, reprocessed_words=4)
    clean_a, broken_a = _load(paired.aligned), _load(broken.aligned)
    np.testing.assert_array_equal(_load(paired.unaligned)["test"]["vision"], _load(broken.unaligned)["test"]["vision"])
    aligned = MulTPickleReader(tmp_path, dataset="mosi", aligned=True).load()
    unaligned = MulTPickleReader(tmp_path, dataset="mosi", aligned=False).load()
    for split, skey in (("train", "train"), ("val", "valid"), ("test", "test")):
        mask = broken.reprocessed[split]
        assert mask.sum() == 4 and np.all(paired.spans[split]["vision"][mask] >= 0)  # real words only
        for modality in ("audio", "vision"):
            np.testing.assert_array_equal(broken_a[skey][modality][~mask], clean_a[skey][modality][~mask])
            spans, counts = spans_from_datasets(aligned[split], unaligned[split], modality)
            assert counts["words"] - counts["recovered"] == 4
            np.testing.assert_array_equal(spans, np.where(mask[..., None], -1, paired.spans[split][modality]))


def test_word_frame_spans_hand_made_gap_overlap_padding_and_ambiguity():
    frames = np.zeros((12, 2), dtype=np.float32)
    frames[2:] = np.arange(20, dtype=np.float32).reshape(10, 2) + 1  # 2 padding frames, then 10 real ones
    spans_true = [(2, 5), (4, 7), (9, 12)]  # shared frame 4, gap 7..8
    aligned = np.zeros((4, 2), dtype=np.float32)
    for w, (s, e) in enumerate(spans_true, start=1):
        aligned[w] = frames[s:e].mean(0)
    word_mask = np.array([False, True, True, True])
    spans = word_frame_spans(aligned, frames, word_mask, nonzero_mask(frames))
    np.testing.assert_array_equal(spans, [[-1, -1], *spans_true])
    # an all-zero frame inside the sequence (masked by the non-zero rule) still counts in its word's mean
    holed = frames.copy()
    holed[10] = 0.0
    aligned[3] = holed[9:12].mean(0)
    spans = word_frame_spans(aligned, holed, word_mask, nonzero_mask(holed))
    np.testing.assert_array_equal(spans, [[-1, -1], *spans_true])
    # a long silence (beyond the frame-by-frame starts) before the last word is found by the all-pairs screening
    long_frames = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    long_spans = [(0, 4), (4, 6), (30, 37)]
    long_aligned = np.stack([long_frames[s:e].mean(0) for s, e in long_spans])
    spans = word_frame_spans(long_aligned, long_frames, np.ones(3, bool), np.ones(40, bool))
    np.testing.assert_array_equal(spans, long_spans)
    # repeated frames: the span is ambiguous (several ends match) -> not recovered
    flat = np.ones((5, 2), dtype=np.float32)
    spans = word_frame_spans(np.ones((1, 2), np.float32), flat, np.ones(1, bool), np.ones(5, bool))
    np.testing.assert_array_equal(spans, [[-1, -1]])
    with pytest.raises(ValueError, match="one D"):
        word_frame_spans(aligned, frames[:, :1], word_mask, nonzero_mask(frames))


def test_spans_from_datasets_rejects_different_segments(paired):
    root = paired.aligned.parent
    aligned = MulTPickleReader(root, dataset="mosi", aligned=True).load()
    unaligned = MulTPickleReader(root, dataset="mosi", aligned=False).load()
    with pytest.raises(DataError, match="different segments"):
        spans_from_datasets(aligned["train"], unaligned["test"])


# -- Corr. Acc --------------------------------------------------------------------------------------------
SPANS = np.array([[0, 2], [2, 5], [-1, -1], [5, 6]])  # word 2 unrecovered


def _peaks(columns, frames=6):
    attention = np.full((len(columns), frames), 0.01)
    attention[np.arange(len(columns)), columns] = 1.0
    return attention


def test_correlation_accuracy_hand_made():
    assert correlation_accuracy(_peaks([1, 4, 0, 5]), SPANS) == 1.0  # word 2 excluded whatever it attends
    assert correlation_accuracy(_peaks([3, 0, 3, 0]), SPANS) == 0.0
    assert correlation_accuracy(_peaks([0, 5, 3, 5]), SPANS) == pytest.approx(2 / 3)
    assert correlation_accuracy(torch.tensor(_peaks([2, 2, 2, 2])), torch.tensor(SPANS)) == pytest.approx(1 / 3)
    assert np.isnan(correlation_accuracy(_peaks([0]), np.array([[-1, -1]])))
    # a key mask takes padded frames out of the argmax: word 0's peak on masked frame 3 gives way to frame 1
    attention = _peaks([3, 3, 3, 3])
    attention[0, 1] = 0.5
    mask = np.array([True, True, True, False, True, True])
    assert correlation_accuracy(attention, SPANS, key_mask=mask) == pytest.approx(1 / 3)


def test_correlation_counts_batched_and_reverse():
    attention = np.stack([_peaks([1, 4, 0, 5]), _peaks([3, 0, 3, 0])])
    assert correlation_counts(attention, np.stack([SPANS, SPANS])) == (3, 6)
    # reverse: frames 0..5 attend to words; frame m counted when some recovered span holds it (all six here)
    reverse = np.full((1, 6, 4), 0.01)
    for m, n in enumerate([0, 1, 1, 0, 2, 3]):  # correct: frames 0, 2 and 5
        reverse[0, m, n] = 1.0
    assert reverse_correlation_counts(reverse, SPANS[None]) == (3, 6)
    shared = np.array([[[0, 3], [2, 4]]])  # frame 2 belongs to both words; frames 4, 5 to none
    frames_to_words = np.zeros((1, 6, 2))
    frames_to_words[0, :, 1] = 1.0  # everything attends to word 1
    assert reverse_correlation_counts(frames_to_words, shared) == (2, 4)  # frames 2 and 3 correct of 0..3
    with pytest.raises(ValueError, match="do not match"):
        correlation_counts(attention, SPANS)


# -- proxy A-distance ---------------------------------------------------------------------------------------
def test_proxy_a_distance_extremes():
    rng = np.random.default_rng(0)
    same_q, same_k = rng.normal(size=(1500, 8)), rng.normal(size=(2000, 8))
    assert 0.0 <= proxy_a_distance(same_q, same_k, seed=1) < 0.25
    far_k = rng.normal(size=(1000, 8)) + 6.0
    assert proxy_a_distance(torch.tensor(same_q), torch.tensor(far_k)) > 1.95
    assert proxy_a_distance(same_q, far_k, seed=2) == proxy_a_distance(same_q, far_k, seed=2)
    with pytest.raises(ValueError, match="one d"):
        proxy_a_distance(same_q, far_k[:, :4])


# -- Fig. 4 ---------------------------------------------------------------------------------------------------
def test_attention_figure_written_with_synthetic_title(tmp_path, monkeypatch):
    titles = []
    real_save = alignment.save_figure

    def recording_save(fig, path):
        titles.append(fig.axes[0].get_title())
        return real_save(fig, path)

    monkeypatch.setattr(alignment, "save_figure", recording_save)
    out = attention_figure(_peaks([1, 4, 0, 5]), ["so", "happy", "sp", "today"], tmp_path / "fig4.png",
                           "MICA text<-vision, layer 4", synthetic=True, spans=SPANS)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "SYNTHETIC" in titles[0] and "layer 4" in titles[0]
    attention_figure(_peaks([1]), None, tmp_path / "real.png", "real", synthetic=False)
    assert "SYNTHETIC" not in titles[1]
    with pytest.raises(ValueError, match="2 words for 4"):
        attention_figure(_peaks([1, 4, 0, 5]), ["a", "b"], tmp_path / "x.png", "t", synthetic=True)
