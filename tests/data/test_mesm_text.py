"""MESM's text input (repro.data.text_tokens): the SYNTHETIC byte tokeniser's ids, truncation and mask, and the
transformers path on a local tokenizer folder (padding to max_length, truncation, mask), offline."""

from __future__ import annotations

import numpy as np
import pytest

from repro.data.base import DataError
from repro.data.text_tokens import BYTE_VOCAB, CLS, PAD, SEP, tokenize


def test_byte_tokeniser_ids_truncation_and_mask():
    ids, mask = tokenize(["hi", "héllo world"], max_length=6, tiny=True)
    assert ids.dtype == np.int64 and mask.dtype == bool and ids.shape == (2, 6)
    assert ids[0].tolist() == [CLS, 4 + ord("h"), 4 + ord("i"), SEP, PAD, PAD]
    assert mask[0].tolist() == [True] * 4 + [False] * 2
    # truncated to 4 bytes (é is two UTF-8 bytes), [CLS] and [SEP] kept
    assert ids[1].tolist() == [CLS, 4 + ord("h"), 4 + 0xC3, 4 + 0xA9, 4 + ord("l"), SEP] and mask[1].all()
    assert ids.max() < BYTE_VOCAB
    with pytest.raises(DataError, match="max_length=1"):
        tokenize(["x"], max_length=1, tiny=True)


def test_local_tokenizer_folder_is_loaded_offline(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "[CLS]": 2, "[SEP]": 3, "<unk>": 1, "hello": 4, "world": 5, "again": 6}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", cls_token="[CLS]",
                            sep_token="[SEP]").save_pretrained(tmp_path / "tok")
    ids, mask = tokenize(["hello world", "hello again world hello world"], max_length=5, model_dir=tmp_path / "tok")
    assert ids.tolist() == [[2, 4, 5, 3, 0], [2, 4, 6, 5, 3]]
    assert mask.tolist() == [[True] * 4 + [False], [True] * 5]
    with pytest.raises(DataError, match="data.text.model_dir is not set"):
        tokenize(["x"], max_length=5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as err:
        tokenize(["x"], max_length=5, model_dir=tmp_path / "empty")
    assert f"cannot load a tokenizer from {tmp_path / 'empty'}" in str(err.value) and "\n" not in str(err.value)
