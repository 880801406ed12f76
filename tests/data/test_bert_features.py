"""BERT feature extraction for MSAF's CMU-MOSEI layout (IMPLEMENTATION-NOTES §1.3), offline with a tiny random
BERT saved in tmp_path: shapes, the attention mask, truncation to 50 wordpieces, batch-size invariance (MSAF
used batch 1), padding not leaking into real positions, atomic outputs, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from repro.data.base import DataError

transformers = pytest.importorskip("transformers", reason="transformers is not installed (optional extra 'text')")

from repro.data import bert_features as bf  # noqa: E402
from tests.conftest import load_script  # noqa: E402

HIDDEN = 32
WORDS = ["the", "movie", "was", "great", "bad", "i", "really", "liked", "it", "not", "very", "good", "and", "so",
         "play", "##ing", "##ed", "un", "##like", "a", "boring", "fun", "sp", "um", "uh"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_bert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = specials + WORDS + [w for w in letters if w not in WORDS] + [f"##{c}" for c in letters]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=HIDDEN, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert(model_dir):
    return bf.load_bert(model_dir)


def texts_file(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"split": s, "id": f"{s}{i}", "text": t}) + "\n"
                            for i, (s, t) in enumerate(rows)))
    return path


LONG = " ".join(["really"] * 80)
ROWS = [("train", "the movie was great"), ("val", "i did not like it"), ("train", "playing unlike"),
        ("test", "so boring"), ("train", LONG), ("train", "um"), ("train", "fun and good and great")]


def test_encode_cls_sep_pad_and_truncation(bert):
    tokenizer, _ = bert
    ids, mask = bf.encode(tokenizer, ["playing unlike", LONG])
    assert ids.shape == mask.shape == (2, 50) and ids.dtype == np.int64 and mask.dtype == bool
    expected = tokenizer.convert_tokens_to_ids(["[CLS]", "play", "##ing", "un", "##like", "[SEP]"])
    assert ids[0, :6].tolist() == expected and (ids[0, 6:] == 0).all()
    assert mask[0].tolist() == [True] * 6 + [False] * 44
    # 80 words -> [CLS] + 48 wordpieces + [SEP]
    assert mask[1].all() and ids[1, 0] == tokenizer.cls_token_id and ids[1, -1] == tokenizer.sep_token_id
    assert (ids[1, 1:49] == tokenizer.convert_tokens_to_ids("really")).all()


def test_run_writes_layout_in_file_order(tmp_path, model_dir):
    texts = texts_file(tmp_path / "texts.jsonl", ROWS)
    counts = bf.run(texts, tmp_path / "out", model_dir, batch_size=3)
    assert counts == {"train": 5, "val": 1, "test": 1}
    feats = np.load(tmp_path / "out" / "train" / "bert50.npy")
    mask = np.load(tmp_path / "out" / "train" / "bert50_mask.npy")
    assert feats.shape == (5, 50, HIDDEN) and feats.dtype == np.float32 and np.isfinite(feats).all()
    assert mask.dtype == bool and mask.sum(1).tolist() == [6, 6, 50, 3, 7]  # file order kept, 80 words truncated
    assert np.load(tmp_path / "out" / "val" / "bert50.npy").shape == (1, 50, HIDDEN)
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == ["bert50.npy", "bert50_mask.npy"]


def test_batch_size_invariance_and_padding_does_not_leak(bert):
    tokenizer, model = bert
    texts = [t for _, t in ROWS]
    ids, mask = bf.encode(tokenizer, texts)
    one = bf.extract(model, ids, mask, batch_size=1)
    many = bf.extract(model, ids, mask, batch_size=4)
    np.testing.assert_allclose(one, many, atol=1e-5)
    # real positions equal BERT run on the unpadded sequence alone
    n = int(mask[0].sum())
    with torch.inference_mode():
        alone = model(input_ids=torch.from_numpy(ids[:1, :n])).last_hidden_state[0].numpy()
    np.testing.assert_allclose(one[0, :n], alone, atol=1e-5)
    assert not np.allclose(one[0, n], 0)  # QUIRK kept: [PAD] positions hold BERT outputs, not zeros


def test_script_main(tmp_path, model_dir):
    script = load_script("extract_bert")
    texts = texts_file(tmp_path / "t.jsonl", ROWS[:2])
    assert script.main(["--texts", str(texts), "--out", str(tmp_path / "o"), "--model", str(model_dir),
                        "--device", "cpu", "--batch-size", "2"]) == {"train": 1, "val": 1}
    assert np.load(tmp_path / "o" / "val" / "bert50_mask.npy").shape == (1, 50)
    with pytest.raises(SystemExit, match="missing model folder"):
        script.main(["--texts", str(texts), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "nope")])


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("{not json", r"t.jsonl:2 is not valid JSON"),
        ('{"split": "dev", "id": 1, "text": "x"}', r"t.jsonl:2 has split 'dev', expected one of"),
        ('{"split": "train", "id": 1}', r"t.jsonl:2 needs a string 'text' and an 'id'"),
        ("[1, 2]", r"t.jsonl:2 holds a list, expected an object"),
    ],
)
def test_bad_jsonl_lines(tmp_path, line, pattern):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"split": "train", "id": "a", "text": "fine"}) + "\n" + line + "\n")
    with pytest.raises(DataError, match=pattern) as err:
        bf.read_texts(path)
    assert "\n" not in str(err.value) and "prepare_cmu.py" in str(err.value)


def test_missing_inputs(tmp_path, model_dir):
    with pytest.raises(DataError, match=r"missing file .*nope.jsonl"):
        bf.read_texts(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match=r"missing model folder .*absent"):
        bf.load_bert(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"cannot load BERT from .*empty") as err:
        bf.load_bert(empty)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="batch_size"):
        bf.extract(None, np.zeros((1, 50), np.int64), np.ones((1, 50), bool), batch_size=0)
