"""MM-IMDB (MFAS §4.2): the reader against its SYNTHETIC hdf5 fixture, scripts/prepare_mmimdb.py end to end on
a SYNTHETIC raw release (raw → hdf5 → reader), and every bad-input error (one line, names the file)."""

from __future__ import annotations

import gzip
import json
import pickle

import h5py
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from repro.config import CONFIG_DIR
from repro.data.base import ArrayDataset, DataError, Scaling
from repro.data.datamodule import MultimodalDataModule
from repro.data.fixtures import (
    MMIMDB_FIXTURE_SIZES,
    mmimdb_split_overrides,
    write_mmimdb_hdf5,
    write_mmimdb_raw,
    write_word2vec,
)
from repro.data.mmimdb import FILENAME, GENRES, IMAGENET_MEAN, IMAGENET_STD, H5Rows, MMIMDBReader
from tests.conftest import load_script

ENDS = {"train_end": 24, "val_end": 32, "test_end": 40}  # the fixture's 24/8/8 rows


def load_prepare_script():
    return load_script("prepare_mmimdb")


prep = load_prepare_script()


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.fixture()
def mmimdb(tmp_path):
    return write_mmimdb_hdf5(tmp_path / "mmimdb")


@pytest.fixture()
def h5path(mmimdb):
    return mmimdb / FILENAME


def reader(root, **kw) -> MMIMDBReader:
    return MMIMDBReader(root, **{**ENDS, **kw})


def rewrite(path, key, data, attrs=None):
    """Replace one dataset of the fixture file (keeping its attributes unless given)."""
    with h5py.File(path, "a") as f:
        old = dict(f[key].attrs) if attrs is None else attrs
        del f[key]
        ds = f.create_dataset(key, data=data)
        ds.attrs.update(old)


# --- reader -------------------------------------------------------------------------------------------------

def test_splits_shapes_dtypes_labels_ids(mmimdb, h5path):
    r = reader(mmimdb)
    splits = r.load()
    assert {k: len(v) for k, v in splits.items()} == dict(zip(("train", "val", "test"), MMIMDB_FIXTURE_SIZES))
    s = splits["val"][2]
    assert set(s) == {"text", "image", "label", "id"}
    assert s["text"].shape == (300,) and s["text"].dtype == torch.float32
    assert s["image"].shape == (3, 256, 160) and s["image"].dtype == torch.float32
    assert s["label"].shape == (23,) and s["label"].dtype == torch.float32
    assert set(s["label"].unique().tolist()) <= {0.0, 1.0} and s["label"].sum() >= 1
    with h5py.File(h5path) as f:
        assert s["id"] == f["imdb_ids"][26].decode()  # val starts at train_end = 24
        assert np.array_equal(s["label"].numpy(), f["genres"][26])
        assert np.allclose(s["text"].numpy(), f["features"][26])
    assert r.class_names == list(GENRES) and r.synthetic
    assert splits["train"][0]["id"] == "9000000" and splits["test"][-1]["id"] == "9000039"


def test_image_is_imagenet_normalised_pixels(mmimdb, h5path):
    splits = reader(mmimdb).load()
    with h5py.File(h5path) as f:
        raw = f["images"][33].astype(np.float32)  # test row 1
    mean, std = np.array(IMAGENET_MEAN)[:, None, None], np.array(IMAGENET_STD)[:, None, None]
    assert np.allclose(splits["test"][1]["image"].numpy(), (raw / 255 - mean) / std, atol=1e-5)
    plain = reader(mmimdb, image_mean=None, image_std=None).load()
    assert np.allclose(plain["test"][1]["image"].numpy(), raw / 255, atol=1e-6)


def test_vgg_features_source(mmimdb, h5path):
    splits = reader(mmimdb, image_source="vgg_features").load()
    s = splits["train"][5]
    assert s["image"].shape == (4096,)
    with h5py.File(h5path) as f:
        assert np.allclose(s["image"].numpy(), f["vgg_features"][5])  # no scaling of features


def test_images_are_read_lazily_one_row_at_a_time(mmimdb):
    splits = reader(mmimdb).load()
    view = splits["train"].arrays["image"]
    assert isinstance(view, H5Rows) and view.shape == (24, 3, 256, 160)
    assert not view.is_open  # load() reads no poster and leaves no handle open
    sub = splits["train"].subset(np.array([3, 7]))
    assert isinstance(sub.arrays["image"], H5Rows) and sub.arrays["image"].rows.tolist() == [3, 7]
    assert sub[1]["id"] == splits["train"][7]["id"]
    assert torch.equal(sub[1]["image"], splits["train"][7]["image"])
    assert isinstance(view[2:5], H5Rows) and view[2:5].rows.tolist() == [2, 3, 4]
    with pytest.raises(TypeError, match="lazy view"):
        np.asarray(view)  # would read every poster


def test_pickle_and_forked_workers(mmimdb):
    train = reader(mmimdb).load()["train"]
    first = train[0]  # opens the file in this process
    assert train.arrays["image"].is_open
    clone = pickle.loads(pickle.dumps(train))
    assert not clone.arrays["image"].is_open and torch.equal(clone[0]["image"], first["image"])
    # Workers fork after the parent opened the file: each must open its own handle.
    batches = list(DataLoader(train, batch_size=6, num_workers=2, multiprocessing_context="fork"))
    assert torch.equal(batches[0]["image"][0], first["image"])
    assert sum(len(b["id"]) for b in batches) == 24


def test_datamodule_batches(data_dir):
    # the session data_dir holds the same SYNTHETIC layout under mmimdb/
    dm = MultimodalDataModule(reader(data_dir / "mmimdb"), batch_size=4)
    batch = next(iter(dm.train_dataloader()))
    assert batch["label"].shape == (4, 23) and batch["label"].dtype == torch.float32
    assert batch["image"].shape == (4, 3, 256, 160) and batch["text"].shape == (4, 300)
    assert len(batch["id"]) == 4
    assert dm.split_sizes() == {"train": 24, "val": 8, "test": 8}


def test_config_instantiates_the_reader(data_dir):
    from hydra.utils import instantiate

    cfg = OmegaConf.load(CONFIG_DIR / "data" / "mmimdb.yaml")
    cfg.reader.root = str(data_dir / "mmimdb")
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([o.removeprefix("data.") for o in mmimdb_split_overrides()]))
    r = instantiate(cfg.reader)
    splits = r.load()
    assert len(splits["val"]) == 8 and cfg.num_classes == len(r.class_names) == 23
    assert list(cfg.modalities.image) == list(splits["val"][0]["image"].shape)
    assert cfg.task == "multilabel" and cfg.selection.metric == "f1_weighted"


def test_fixture_is_labelled_synthetic(mmimdb, h5path):
    assert "SYNTHETIC" in (mmimdb / "SYNTHETIC.txt").read_text()
    with h5py.File(h5path) as f:
        assert int(f.attrs["synthetic"]) == 1 and "SYNTHETIC" in f.attrs["note"]
        assert json.loads(f["genres"].attrs["target_names"]) == list(GENRES)
        assert f["images"].dtype == np.int32 and f["imdb_ids"].dtype == np.dtype("S7")


def test_nonfinite_text_rows_become_zeros(mmimdb, h5path):
    with h5py.File(h5path, "a") as f:
        f["features"][3] = np.nan  # make_dataset.py: a plot without known words averages to NaN
    s = reader(mmimdb).load()["train"][3]
    assert torch.equal(s["text"], torch.zeros(300))


def test_per_channel_scaling_and_default_long_labels():
    data = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    ds = ArrayDataset({"x": data}, np.array([1, 0]), scaling={"x": Scaling((1.0, 2.0, 3.0), (1.0, 2.0, 4.0))})
    x = ds[1]["x"].numpy()
    assert np.allclose(x, (data[1] - np.array([1, 2, 3])[:, None, None]) / np.array([1, 2, 4])[:, None, None])
    assert ds[0]["label"].dtype == torch.long  # the default is unchanged


# --- reader errors: one line each, naming the file ------------------------------------------------------------

def test_error_missing_file(tmp_path):
    with pytest.raises(DataError) as err:
        reader(tmp_path / "nowhere").load()
    text = one_line(err)
    assert "missing file" in text and FILENAME in text and "prepare_mmimdb.py" in text


def test_error_not_hdf5(mmimdb, h5path):
    h5path.write_bytes(b"this is not an HDF5 file" * 10)
    with pytest.raises(DataError) as err:
        reader(mmimdb).load()
    assert "cannot open" in one_line(err) and str(h5path) in str(err.value)


def test_error_truncated_hdf5(mmimdb, h5path):
    h5path.write_bytes(h5path.read_bytes()[:4096])
    with pytest.raises(DataError) as err:
        reader(mmimdb).load()
    assert "corrupt" in one_line(err) and str(h5path) in str(err.value)


def test_error_missing_key(mmimdb, h5path):
    with h5py.File(h5path, "a") as f:
        del f["genres"]
    with pytest.raises(DataError) as err:
        reader(mmimdb).load()
    text = one_line(err)
    assert "'genres'" in text and "present: [" in text and "'features'" in text and str(h5path) in text


def test_error_wrong_shape(mmimdb, h5path):
    rewrite(h5path, "features", np.zeros((40, 299), np.float32))
    with pytest.raises(DataError) as err:
        reader(mmimdb).load()
    assert "features has shape (40, 299), expected (N, 300)" in one_line(err)


def test_error_wrong_image_shape(mmimdb, h5path):
    rewrite(h5path, "images", np.zeros((40, 3, 224, 224), np.int32))
    with pytest.raises(DataError) as err:
        reader(mmimdb).load()
    assert "expected (N, 3, 256, 160)" in one_line(err) and str(h5path) in str(err.value)


def test_error_unequal_rows(mmimdb, h5path):
    rewrite(h5path, "features", np.zeros((39, 300), np.float32))
    with pytest.raises(DataError) as err:
        reader(mmimdb).load()
    assert "unequal row counts" in one_line(err)


def test_error_too_few_rows_for_default_ranges(mmimdb):
    with pytest.raises(DataError) as err:
        MMIMDBReader(mmimdb).load()  # the real file's ranges need 25959 rows
    text = one_line(err)
    assert "has 40 rows but the split ranges need 25959" in text and "data.reader.train_end" in text


def test_error_split_ends_disagree_with_file(mmimdb):
    with pytest.raises(DataError) as err:
        reader(mmimdb, train_end=20).load()
    assert "records split ends [24, 32, 40]" in one_line(err) and "data.reader.train_end=24" in str(err.value)


def test_error_bad_range_order(mmimdb):
    with pytest.raises(DataError) as err:
        reader(mmimdb, train_end=32, val_end=24).load()
    assert "0 < train_end < val_end < test_end" in one_line(err)


def test_error_genres_not_binary(mmimdb, h5path):
    with h5py.File(h5path, "a") as f:
        f["genres"][5, 2] = 2
    with pytest.raises(DataError) as err:
        reader(mmimdb).load()
    assert "genres has values [2], expected a 0/1 multi-hot" in one_line(err) and str(h5path) in str(err.value)


def test_error_target_names_count(mmimdb, h5path):
    with h5py.File(h5path, "a") as f:
        f["genres"].attrs["target_names"] = json.dumps(list(GENRES[:20]))
    with pytest.raises(DataError) as err:
        reader(mmimdb).load()
    assert "lists 20 genres, expected 23" in one_line(err)


def test_error_vgg_features_not_computed(tmp_path):
    root = write_mmimdb_hdf5(tmp_path / "m", vgg_computed=False)
    with pytest.raises(DataError) as err:
        reader(root, image_source="vgg_features").load()
    assert "holds zeros" in one_line(err) and "--vgg-weights" in str(err.value)
    assert len(reader(root).load()["train"]) == 24  # posters still readable


def test_error_unknown_image_source(mmimdb):
    with pytest.raises(DataError) as err:
        reader(mmimdb, image_source="posters")
    assert "image_source" in one_line(err)


# --- prepare script ----------------------------------------------------------------------------------------

@pytest.fixture()
def raw(tmp_path):
    return write_mmimdb_raw(tmp_path / "raw")


def run_prepare(raw, out, *extra):
    return prep.main(["--raw", str(raw), "--word2vec", str(raw / "word2vec.txt"), "--out", str(out), "--quiet",
                      *extra])


def test_prepare_end_to_end(raw, tmp_path):
    out = tmp_path / "data" / "mmimdb" / FILENAME
    summary = run_prepare(raw, out)
    assert summary["split_sizes"] == {"train": 8, "val": 3, "test": 3} and summary["skipped"] == {}
    assert not out.with_name(out.name + ".tmp").exists()
    r = MMIMDBReader(out.parent, train_end=8, val_end=11, test_end=14)
    splits = r.load()
    assert r.class_names == list(GENRES) and not r.synthetic  # the prepare script does not know it is synthetic
    split = json.loads((raw / "split.json").read_text())
    assert [s["id"] for s in splits["val"]] == split["dev"]
    vectors, _ = prep.load_word2vec(raw / "word2vec.txt")
    for name, rows in (("train", split["train"]), ("test", split["test"])):
        for i in (0, len(rows) - 1):
            meta = json.loads((raw / "dataset" / f"{rows[i]}.json").read_text())
            s = splits[name][i]
            assert s["id"] == rows[i]
            # labels: the movie's genres among the 23 (Reality-TV dropped)
            assert [GENRES[j] for j in np.flatnonzero(s["label"].numpy())] == sorted(
                (g for g in meta["genres"] if g in GENRES), key=GENRES.index)
            # text: the mean vector of the longest plot's known tokens
            tokens = prep.normalize_text(max(meta["plot"], key=len))
            expected = np.mean([vectors[t] for t in tokens if t in vectors], axis=0)
            assert np.allclose(s["text"].numpy(), expected, atol=1e-5)
    with h5py.File(out) as f:
        assert f["images"].shape == (14, 3, 256, 160) and f["images"].dtype == np.int32
        poster = f["images"][0]
        assert 0 <= poster.min() and poster.max() <= 255
        expected = prep.resize_and_crop(raw / "dataset" / f"{split['train'][0]}.jpeg", (160, 256))
        assert np.array_equal(poster, expected.transpose(2, 0, 1))
        assert int(f["vgg_features"].attrs["computed"]) == 0 and not f["vgg_features"][:].any()
    with pytest.raises(DataError, match="holds zeros"):
        MMIMDBReader(out.parent, image_source="vgg_features", train_end=8, val_end=11, test_end=14).load()


def test_prepare_skips_like_make_dataset(raw, tmp_path, capsys):
    split = json.loads((raw / "split.json").read_text())
    (raw / "dataset" / f"{split['train'][1]}.jpeg").unlink()  # no poster
    meta_path = raw / "dataset" / f"{split['dev'][0]}.json"
    meta = json.loads(meta_path.read_text())
    meta["plot"] = ["?? ?"]  # normalises to "?" tokens: kept, but no known word → zeros
    meta_path.write_text(json.dumps(meta))
    meta_path = raw / "dataset" / f"{split['test'][0]}.json"
    meta = json.loads(meta_path.read_text())
    meta["genres"] = ["Reality-TV"]  # none of the 23
    meta_path.write_text(json.dumps(meta))
    out = tmp_path / "out.hdf5"
    summary = run_prepare(raw, out)
    assert summary["skipped"] == {"no poster": 1, "none of the genres": 1}
    assert summary["split_ends"] == [7, 10, 12] and summary["text_rows_without_vectors"] == 1
    assert "data.reader.train_end=7 data.reader.val_end=10 data.reader.test_end=12" in capsys.readouterr().out
    with h5py.File(out) as f:
        assert not f["features"][7].any()


def test_prepare_binary_gzip_word2vec_and_vgg_weights(tmp_path):
    raw = write_mmimdb_raw(tmp_path / "raw", n_train=3, n_dev=1, n_test=1, word2vec_binary=True)
    gz = tmp_path / "vectors.bin.gz"
    gz.write_bytes(gzip.compress((raw / "word2vec.bin").read_bytes()))
    # A VGG-16-shaped state dict with 2-channel convolutions (fc7 must give 4096 features).
    gen = torch.Generator().manual_seed(0)
    sd, c_in, idx = {}, 3, 0
    for v in prep.VGG16_CFG:
        if v == "M":
            idx += 1
            continue
        sd[f"features.{idx}.weight"] = torch.randn(2, c_in, 3, 3, generator=gen) * 0.5
        sd[f"features.{idx}.bias"] = torch.zeros(2)
        c_in, idx = 2, idx + 2
    sd["classifier.0.weight"], sd["classifier.0.bias"] = torch.randn(4096, 2 * 49, generator=gen), torch.zeros(4096)
    sd["classifier.3.weight"] = torch.randn(4096, 4096, generator=gen) / 64
    sd["classifier.3.bias"] = torch.zeros(4096)
    sd["classifier.6.weight"], sd["classifier.6.bias"] = torch.zeros(10, 4096), torch.zeros(10)
    torch.save(sd, tmp_path / "vgg16.pth")
    out = tmp_path / "m" / FILENAME
    prep.main(["--raw", str(raw), "--word2vec", str(gz), "--out", str(out), "--quiet",
               "--vgg-weights", str(tmp_path / "vgg16.pth"), "--batch-size", "2"])
    splits = MMIMDBReader(out.parent, image_source="vgg_features", train_end=3, val_end=4, test_end=5).load()
    feats = torch.stack([splits["train"][i]["image"] for i in range(3)])
    assert feats.shape == (3, 4096) and (feats >= 0).all() and feats.abs().sum() > 0
    # text from the binary file equals text from the same vectors in text format
    text_vectors, dim = prep.load_word2vec(raw / "word2vec.bin")
    gz_vectors, _ = prep.load_word2vec(gz, vocab=["drama" + "cue", "film"])
    assert dim == 300 and set(gz_vectors) == {"dramacue", "film"}
    assert np.array_equal(gz_vectors["film"], text_vectors["film"])


def test_word2vec_text_and_binary_agree(tmp_path):
    rng = np.random.default_rng(0)
    vecs = {w: rng.normal(size=300).astype(np.float32) for w in ("a", "b", "ünï", "N")}
    t, _ = prep.load_word2vec(write_word2vec(tmp_path / "v.txt", vecs))
    b, _ = prep.load_word2vec(write_word2vec(tmp_path / "v.bin", vecs, binary=True))
    assert set(t) == set(b) == set(vecs)
    for w in vecs:
        assert np.array_equal(b[w], vecs[w]) and np.allclose(t[w], vecs[w], atol=1e-6)


def test_normalize_text_follows_make_dataset():
    assert prep.normalize_text("Hello, World! <br />It's 1999-2000 [sic] (a_b).") == [
        "hello", ",", "world", "!", "it", "'", "s", "N", "-", "N", "sic", "(", "a", "b", ")", "."]
    assert prep.normalize_text("http://x.y/z\nA man.") == ["L", "a", "man", "."]


def test_resize_and_crop_keeps_the_centre(tmp_path):
    # 160×512 (w×h): the 160:256 centre crop is rows 128..384, the green band only.
    pixels = np.zeros((512, 160, 3), np.uint8)
    pixels[:128, :, 0] = 255
    pixels[128:384, :, 1] = 255
    pixels[384:, :, 2] = 255
    Image.fromarray(pixels).save(tmp_path / "p.png")
    out = prep.resize_and_crop(tmp_path / "p.png", (160, 256))
    assert out.shape == (256, 160, 3) and out.dtype == np.uint8
    assert (out[..., 1] > 250).all() and (out[..., 0] < 5).all() and (out[..., 2] < 5).all()
    # a large wide poster is pre-shrunk, cropped in width, and still comes out 256×160
    Image.fromarray(np.full((400, 1400, 3), 90, np.uint8)).save(tmp_path / "w.jpeg")
    assert prep.resize_and_crop(tmp_path / "w.jpeg", (160, 256)).shape == (256, 160, 3)


# --- prepare errors: exit status 2, one line on stderr naming the file -----------------------------------------

def prepare_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        prep.main([*argv, "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prepare_mmimdb: error: ") and "\n" not in err
    return err


def test_prepare_errors(raw, tmp_path, capsys):
    w2v = str(raw / "word2vec.txt")
    out = tmp_path / "o" / FILENAME
    err = prepare_error(capsys, ["--raw", str(tmp_path / "none"), "--word2vec", w2v, "--out", str(out)])
    assert "dataset" in err and "mmimdb.tar.gz" in err
    err = prepare_error(capsys, ["--raw", str(raw), "--word2vec", str(tmp_path / "nope.bin"), "--out", str(out)])
    assert "nope.bin" in err and "GoogleNews" in err
    err = prepare_error(capsys, ["--raw", str(raw), "--split", str(tmp_path / "s.json"), "--word2vec", w2v,
                                 "--out", str(out)])
    assert "s.json" in err and "split.json" in err
    small = write_word2vec(tmp_path / "small.txt", {"a": np.zeros(50, np.float32)})
    err = prepare_error(capsys, ["--raw", str(raw), "--word2vec", str(small), "--out", str(out)])
    assert "small.txt has 50-d vectors, expected 300" in err
    full = write_word2vec(tmp_path / "full.bin", {"a": np.ones(300), "b": np.ones(300)}, binary=True)
    truncated = tmp_path / "t.bin"
    truncated.write_bytes(full.read_bytes()[:1400])  # header 6 B + one entry 1203 B + part of the second
    err = prepare_error(capsys, ["--raw", str(raw), "--word2vec", str(truncated), "--out", str(out)])
    assert "t.bin ends after 1 of 2 vectors" in err
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"old")
    err = prepare_error(capsys, ["--raw", str(raw), "--word2vec", w2v, "--out", str(out)])
    assert "already exists" in err and "--force" in err
    split = json.loads((raw / "split.json").read_text())
    jpeg = raw / "dataset" / f"{split['test'][1]}.jpeg"
    jpeg.write_bytes(b"not a jpeg")
    err = prepare_error(capsys, ["--raw", str(raw), "--word2vec", w2v, "--out", str(out), "--force"])
    assert str(jpeg) in err and "cannot decode" in err
    assert out.read_bytes() == b"old" and not out.with_name(out.name + ".tmp").exists()  # atomic: old file kept
    (raw / "split.json").write_text(json.dumps({"train": split["train"], "dev": [], "test": split["test"]}))
    err = prepare_error(capsys, ["--raw", str(raw), "--word2vec", w2v, "--out", str(out), "--force"])
    assert "split 'dev' has no usable movie" in err
    weights = tmp_path / "w.pth"
    torch.save({"features.0.weight": torch.zeros(2, 3, 3, 3)}, weights)
    (raw / "split.json").write_text(json.dumps(split))
    jpeg.unlink()
    err = prepare_error(capsys, ["--raw", str(raw), "--word2vec", w2v, "--out", str(out), "--force",
                                 "--vgg-weights", str(weights)])
    assert "w.pth lacks VGG-16 parameter" in err


def test_prepare_help(capsys):
    with pytest.raises(SystemExit) as exc:
        prep.main(["--help"])
    assert exc.value.code == 0 and "--word2vec" in capsys.readouterr().out
