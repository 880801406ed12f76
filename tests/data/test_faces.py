"""MTCNN face crops (repro.data.faces): networks vs the facenet-pytorch 2.5.3 state dicts, NMS, the crop geometry,
the fallback crop, detection on a real photograph (scikit-image's astronaut), and facenet's own code as reference.

The weights come from the facenet-pytorch wheel (pip download, once per test session, or the wheel kept by an earlier
`scripts/fetch_mtcnn_weights.py` in `default_weights_dir()`); without a network those tests skip with the reason.
Images other than the astronaut photograph are SYNTHETIC (flat grey, noise, tiled copies).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import types
import zipfile

import numpy as np
import pytest
import torch

from repro.data.base import DataError
from repro.data.faces import (
    FaceCropper,
    ONet,
    PNet,
    RNet,
    batched_nms,
    fetch_weights,
    fixed_crop,
    fixed_crop_box,
    margin_window,
    resize_area_like_opencv,
)
from repro.data.faces_weights import (
    WEIGHT_FILES,
    WHEEL_NAME,
    WeightsFetchError,
    default_weights_dir,
    download_wheel,
    extract_weights,
)

# The astronaut's face in skimage.data.astronaut() (512×512), read off the image by eye: hairline-to-chin and
# ear-to-ear, x1, y1, x2, y2.
ASTRONAUT_FACE = (175.0, 55.0, 275.0, 170.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def facenet_wheel(tmp_path_factory):
    """The facenet-pytorch 2.5.3 wheel: the one kept in default_weights_dir(), else downloaded once (or skip)."""
    kept = default_weights_dir() / WHEEL_NAME
    if kept.is_file():
        return kept
    try:
        return download_wheel(tmp_path_factory.mktemp("facenet_wheel"))
    except WeightsFetchError as e:
        pytest.skip(f"no MTCNN weights: {e}")


@pytest.fixture(scope="module")
def weights_dir(facenet_wheel, tmp_path_factory):
    return fetch_weights(tmp_path_factory.mktemp("mtcnn"), wheel=facenet_wheel)


@pytest.fixture(scope="module")
def cropper(weights_dir):
    return FaceCropper.from_folder(weights_dir)


@pytest.fixture(scope="module")
def skimage_data():
    return pytest.importorskip("skimage.data", reason="scikit-image (the dev extra) ships the photos used here")


@pytest.fixture(scope="module")
def astronaut(skimage_data):
    return skimage_data.astronaut()


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# ------------------------------------------------------------------------------------------ weights and networks

def test_weights_folder_holds_the_three_files_and_the_licence(weights_dir):
    names = {p.name for p in weights_dir.iterdir()}
    assert set(WEIGHT_FILES) <= names and "LICENSE-facenet-pytorch.md" in names
    assert "MIT" in (weights_dir / "LICENSE-facenet-pytorch.md").read_text()


@pytest.mark.parametrize("name, net, n_params, n_keys", [
    # hand-counted: PNet conv 3→10→16→32 (3×3) + 1×1 heads 2 and 4, PReLU slopes 10+16+32
    ("pnet.pt", PNet, 280 + 10 + 1456 + 16 + 4640 + 32 + 66 + 132, 13),
    # RNet conv 3→28→48 (3×3) →64 (2×2), dense 576→128→2/4
    ("rnet.pt", RNet, 784 + 28 + 12144 + 48 + 12352 + 64 + 73856 + 128 + 258 + 516, 16),
    # ONet conv 3→32→64→64 (3×3) →128 (2×2), dense 1152→256→2/4/10
    ("onet.pt", ONet, 896 + 32 + 18496 + 64 + 36928 + 64 + 32896 + 128 + 295168 + 256 + 514 + 1028 + 2570, 21),
])
def test_networks_match_the_state_dicts(weights_dir, name, net, n_params, n_keys):
    state = torch.load(weights_dir / name, weights_only=True)
    module = net()
    assert len(state) == n_keys
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert sum(v.numel() for v in state.values()) == n_params


def test_network_output_shapes(cropper):
    offsets, prob = cropper.pnet(torch.zeros(2, 3, 12, 12))
    assert offsets.shape == (2, 4, 1, 1) and prob.shape == (2, 1, 1)
    offsets, prob = cropper.pnet(torch.zeros(1, 3, 30, 40))  # 12-px window, stride 2: (30−12)/2+1 × (40−12)/2+1
    assert offsets.shape == (1, 4, 10, 15) and prob.shape == (1, 10, 15)
    for net, size in [(cropper.rnet, 24), (cropper.onet, 48)]:
        offsets, prob = net(torch.zeros(3, 3, size, size))
        assert offsets.shape == (3, 4) and prob.shape == (3,)
        assert torch.all((prob >= 0) & (prob <= 1))
        assert net(torch.zeros(0, 3, size, size))[1].shape == (0,)  # no candidate left: an empty batch, no error


def test_missing_weights_is_a_one_line_error_naming_folder_and_script(tmp_path):
    with pytest.raises(DataError) as e:
        FaceCropper.from_folder(tmp_path)
    message = str(e.value)
    assert "\n" not in message and str(tmp_path) in message and "scripts/fetch_mtcnn_weights.py" in message


def test_fetch_is_idempotent_and_rejects_a_foreign_wheel(weights_dir, tmp_path):
    stamps = {n: (weights_dir / n).stat().st_mtime_ns for n in WEIGHT_FILES}
    assert fetch_weights(weights_dir) == weights_dir  # already there: nothing rewritten, no network
    assert stamps == {n: (weights_dir / n).stat().st_mtime_ns for n in WEIGHT_FILES}
    fake = tmp_path / WHEEL_NAME
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("something/else.py", "")
    with pytest.raises(WeightsFetchError, match="facenet_pytorch/data/pnet.pt"):
        extract_weights(fake, tmp_path / "out")


def test_a_damaged_file_is_named_and_a_fetch_repairs_it(weights_dir, facenet_wheel, tmp_path):
    for name in WEIGHT_FILES:
        (tmp_path / name).write_bytes((weights_dir / name).read_bytes())
    (tmp_path / "rnet.pt").write_bytes((weights_dir / "pnet.pt").read_bytes())  # right format, wrong network
    with pytest.raises(DataError, match=r"rnet.pt: expected .* keys or shapes differ"):
        FaceCropper.from_folder(tmp_path)
    fetch_weights(tmp_path, wheel=facenet_wheel)
    assert FaceCropper.from_folder(tmp_path).rnet.dense4.weight.shape == (128, 576)


def test_default_weights_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REPRO_MTCNN_DIR", str(tmp_path / "w"))
    assert default_weights_dir() == tmp_path / "w"
    monkeypatch.delenv("REPRO_MTCNN_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_weights_dir() == tmp_path / "repro" / "mtcnn"


# ------------------------------------------------------------------------------------------------------- NMS

# Hand-worked: A=[0,0,10,10] .9, B=[1,1,11,11] .8, C=[20,20,30,30] .7, D=[0,0,10,5] .95.
# IoU(D,A)=50/100=0.5 (not > 0.5: A stays), IoU(A,B)=81/119=0.68 (B goes), C overlaps nothing → D, A, C.
NMS_BOXES = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 5]], dtype=torch.float32)
NMS_SCORES = torch.tensor([0.9, 0.8, 0.7, 0.95])


def test_nms_union_hand_worked():
    keep = batched_nms(NMS_BOXES, NMS_SCORES, torch.zeros(4, dtype=torch.long), 0.5)
    assert keep.tolist() == [3, 0, 2]


def test_nms_only_suppresses_within_a_group():
    keep = batched_nms(NMS_BOXES, NMS_SCORES, torch.tensor([0, 1, 0, 0]), 0.5)
    assert keep.tolist() == [3, 0, 1, 2]


def test_nms_min_overlap_hand_worked():
    # +1 sizes: D is 11×6=66; D∩A = 66 → 66/66 = 1 > .7 (A goes); D∩B = 10×5 = 50 → 50/66 = .76 > .7 (B goes)
    keep = batched_nms(NMS_BOXES, NMS_SCORES, torch.zeros(4, dtype=torch.long), 0.7, overlap="min")
    assert keep.tolist() == [3, 2]


# ------------------------------------------------------------------------------------------- crop geometry

def test_margin_window_hand_computed():
    # a 46-px box grows by margin·46/(48−2) = 2 px, half on each side; clipped to the frame; truncated
    assert margin_window(np.array([100.0, 50.0, 146.0, 96.0]), 640, 480, 48, 2) == (99, 49, 147, 97)
    assert margin_window(np.array([0.5, 0.5, 46.5, 46.5]), 40, 40, 48, 2) == (0, 0, 40, 40)


def test_area_resize_hand_computed():
    column = np.array([0.0, 3.0, 6.0]).reshape(3, 1, 1)
    assert resize_area_like_opencv(column, 2, 1).ravel().tolist() == pytest.approx([1.0, 5.0])  # 2/3·0+1/3·3, …
    pair = np.array([0.0, 10.0]).reshape(2, 1, 1)
    assert resize_area_like_opencv(pair, 3, 1).ravel().tolist() == pytest.approx([0.0, 5.0, 10.0])
    assert resize_area_like_opencv(pair, 4, 1).ravel().tolist() == pytest.approx([0.0, 0.0, 10.0, 10.0])  # blocky
    block = np.arange(16.0).reshape(4, 4, 1)
    assert resize_area_like_opencv(block, 2, 2)[..., 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]


@pytest.mark.parametrize("src, dst", [((96, 96), (48, 48)), ((71, 53), (48, 48)), ((30, 22), (48, 48)),
                                      ((60, 40), (48, 48)), ((47, 49), (48, 48))])
def test_area_resize_equals_opencv(src, dst):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is the reference for INTER_AREA")
    image = np.random.default_rng(0).uniform(0, 255, (*src, 3)).astype(np.float32)
    expected = cv2.resize(image, dst[::-1], interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(resize_area_like_opencv(image, *dst), expected, atol=1e-3)


# ------------------------------------------------------------------------------------------------ fallback crop

@pytest.mark.parametrize("height, width, quirk, box", [
    (224, 224, False, (88, 88, 136, 136)),   # IEMOCAP frames: centred
    (224, 224, True, (64, 88, 112, 136)),    # authors: rows 88..136, columns 88−24..88+24
    (360, 360, False, (156, 156, 204, 204)),  # MOSEI frames
    (360, 360, True, (132, 156, 180, 204)),
    (100, 200, False, (76, 26, 124, 74)),
    (100, 200, True, (2, 26, 50, 74)),        # the height's offset reused for the columns
])
def test_fixed_crop_box_hand_computed(height, width, quirk, box):
    assert fixed_crop_box(height, width, 48, quirk=quirk) == box


def test_fixed_crop_cuts_that_window():
    image = np.arange(224 * 224 * 3, dtype=np.int64).reshape(224, 224, 3).astype(np.uint8)
    np.testing.assert_array_equal(fixed_crop(image), image[88:136, 88:136])
    np.testing.assert_array_equal(fixed_crop(image, quirk=True), image[88:136, 64:112])
    with pytest.raises(ValueError, match="quirk=False"):
        fixed_crop(np.zeros((60, 60, 3), np.uint8), quirk=True)  # their columns would start at −18


# --------------------------------------------------------------------------------------------------- detection

def test_finds_the_astronauts_face(cropper, astronaut):
    boxes, probs = cropper.detect(astronaut)
    assert boxes.shape == (1, 4) and probs[0] > 0.99
    assert iou(boxes[0], ASTRONAUT_FACE) > 0.5
    crop = cropper(astronaut)
    assert crop.shape == (48, 48, 3) and crop.dtype == np.uint8
    # the crop is the face: skin-toned (red > green > blue on average), unlike the white/grey background
    mean = crop.reshape(-1, 3).mean(0)
    assert mean[0] > mean[1] > mean[2]


def test_no_face_in_flat_grey_or_noise(cropper):
    grey = np.full((224, 224, 3), 128, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)  # SYNTHETIC
    assert cropper(grey) is None and cropper(noise) is None
    boxes, probs = cropper.detect(grey)
    assert boxes.shape == (0, 4) and probs.shape == (0,)


def test_largest_face_is_taken(cropper, astronaut):
    canvas = np.full((300, 480, 3), 90, np.uint8)  # SYNTHETIC: two copies of the photo, half and quarter size
    canvas[0:256, 0:256] = astronaut[::2, ::2]
    canvas[150:278, 320:448] = astronaut[::4, ::4]
    boxes, _ = cropper.detect(canvas)
    assert len(boxes) == 2
    assert boxes[0][0] < 256 and boxes[1][0] > 320  # the half-size face (≈45 px) before the quarter-size one


def test_batch_equals_one_by_one(cropper, astronaut):
    frames = [np.ascontiguousarray(astronaut[::2, ::2]), np.full((256, 256, 3), 128, np.uint8),
              np.ascontiguousarray(astronaut[::2, ::-2])]
    batch = cropper.detect_batch(frames)
    for frame, (boxes, probs) in zip(frames, batch):
        single_boxes, single_probs = cropper.detect(frame)
        assert boxes.shape == single_boxes.shape
        np.testing.assert_allclose(boxes, single_boxes, atol=1e-3)
        np.testing.assert_allclose(probs, single_probs, atol=1e-5)
    assert [c is None for c in cropper.crop_batch(frames)] == [False, True, False]


def test_crop_frames_falls_back_to_the_fixed_crop(cropper, astronaut):
    face = np.ascontiguousarray(astronaut[::2, ::2][16:240, 16:240])  # 224², face found
    grey = np.arange(224 * 224 * 3).reshape(224, 224, 3).astype(np.uint8) // 64 + 100  # SYNTHETIC, no face
    crops, found = cropper.crop_frames([face, grey])
    assert crops.shape == (2, 48, 48, 3) and crops.dtype == np.uint8 and found.tolist() == [True, False]
    np.testing.assert_array_equal(crops[0], cropper(face))
    np.testing.assert_array_equal(crops[1], grey[88:136, 88:136])
    np.testing.assert_array_equal(cropper.crop_frames([grey], fallback_quirk=True)[0][0], grey[88:136, 64:112])


def test_bad_frames_are_one_line_errors(cropper):
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        cropper(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="share a size"):
        cropper.detect_batch([np.zeros((64, 64, 3), np.uint8), np.zeros((32, 64, 3), np.uint8)])


# ------------------------------------------------------------------- facenet-pytorch 2.5.3's own code as reference

def _reference_batched_nms(boxes, scores, groups, threshold):
    """Stand-in for torchvision.ops.batched_nms (only in this test): greedy IoU NMS per group, in numpy."""
    b, s, g = boxes.double().numpy(), scores.numpy(), groups.numpy()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order, keep = np.argsort(-s, kind="stable"), []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        h = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        overlap = w * h / (area[i] + area[rest] - w * h)
        order = rest[(overlap <= threshold) | (g[rest] != g[i])]
    return torch.as_tensor(np.array(keep, dtype=np.int64))


def _stub_torchvision() -> dict[str, types.ModuleType]:
    """The two torchvision names facenet's detect_face imports (torchvision itself cannot be installed here)."""
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(2, 0, 1)))
    boxes = types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms = _reference_batched_nms
    transforms, ops = types.ModuleType("torchvision.transforms"), types.ModuleType("torchvision.ops")
    transforms.functional, ops.boxes = functional, boxes
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms, torchvision.ops = transforms, ops
    return {"torchvision": torchvision, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional, "torchvision.ops": ops, "torchvision.ops.boxes": boxes}


@pytest.fixture(scope="module")
def facenet_mtcnn(facenet_wheel, tmp_path_factory):
    """facenet-pytorch's MTCNN(image_size=48, margin=2, post_process=False), imported from the wheel's files."""
    pytest.importorskip("PIL", reason="facenet's detect_face imports Pillow")
    root = tmp_path_factory.mktemp("facenet_src")
    with zipfile.ZipFile(facenet_wheel) as z:
        z.extractall(root)
    packages = {}
    for name in ("facenet_pytorch", "facenet_pytorch.models", "facenet_pytorch.models.utils"):
        package = types.ModuleType(name)  # bypass facenet_pytorch/__init__.py (it imports the rest of the package)
        package.__path__ = [str(root.joinpath(*name.split(".")))]
        packages[name] = package
    stubs = {**packages, **_stub_torchvision()}
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        mtcnn = importlib.import_module("facenet_pytorch.models.mtcnn")
    finally:  # leave sys.modules as it was: no fake torchvision for other tests
        for name in [n for n in sys.modules if n.startswith("facenet_pytorch")] + list(stubs):
            if saved.get(name) is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = saved[name]
    return mtcnn.MTCNN(image_size=48, margin=2, post_process=False)


def _reference_images(astronaut, skimage_data):
    canvas = np.full((400, 640, 3), 90, np.uint8)  # SYNTHETIC tiling: faces of ≈ 45, 22 and 11 px
    canvas[10:266, 20:276] = astronaut[::2, ::2]
    canvas[200:328, 400:528] = astronaut[::4, ::4]
    canvas[300:364, 100:164] = astronaut[::8, ::8]
    # 48 of LFW's 25×25 grey faces (shipped in scikit-image) enlarged to 40 px (bicubic) and tiled 6×8: 47 faces,
    # among them two O-Net candidates cut from the same pixel window (equal scores), so facenet's tie-break counts
    lfw = torch.as_tensor(skimage_data.lfw_subset()[:48] * 255.0, dtype=torch.float32)[:, None]
    faces = torch.nn.functional.interpolate(lfw, size=(40, 40), mode="bicubic").clamp(0, 255).round().byte()
    grid = faces[:, 0].numpy().reshape(6, 8, 40, 40).transpose(0, 2, 1, 3).reshape(240, 320)
    return {"astronaut": astronaut, "flipped": np.ascontiguousarray(astronaut[:, ::-1]),
            "lfw_grid": np.ascontiguousarray(np.repeat(grid[..., None], 3, axis=2)),
            "half": np.ascontiguousarray(astronaut[::2, ::2]), "quarter": np.ascontiguousarray(astronaut[::4, ::4]),
            "tiled": canvas}


def test_boxes_and_crops_equal_facenet_pytorch(cropper, facenet_mtcnn, astronaut, skimage_data):
    worst_box, worst_crop = 0.0, 0.0
    for name, image in _reference_images(astronaut, skimage_data).items():
        ref_boxes, ref_probs = facenet_mtcnn.detect(image)
        boxes, probs = cropper.detect(image)
        assert ref_boxes is not None and boxes.shape == ref_boxes.shape, name
        worst_box = max(worst_box, float(np.abs(boxes - ref_boxes.astype(np.float32)).max()))
        np.testing.assert_allclose(probs, ref_probs.astype(np.float32), atol=1e-6, err_msg=name)
        if importlib.util.find_spec("cv2") is not None:
            # the authors hand float32 frames to MTCNN: facenet's crop is then cv2.resize(INTER_AREA) in float
            ref_crop = facenet_mtcnn(image.astype(np.float32)).permute(1, 2, 0).numpy()
            worst_crop = max(worst_crop, float(np.abs(cropper(image) - ref_crop).max()))
    assert worst_box <= 1e-3  # measured: ≤ 3.1e-5 px
    assert worst_crop <= 0.5 + 1e-3  # ours is facenet's float crop rounded to uint8


def test_no_face_agrees_with_facenet_pytorch(cropper, facenet_mtcnn):
    noise = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)  # SYNTHETIC
    assert facenet_mtcnn.detect(noise)[0] is None and len(cropper.detect(noise)[0]) == 0


def test_a_224_frame_takes_under_a_second(cropper, astronaut):
    frame = np.ascontiguousarray(astronaut[::2, ::2][16:240, 16:240])
    cropper(frame)  # warm-up
    start = time.perf_counter()
    cropper(frame)
    assert time.perf_counter() - start < 1.0  # ~0.05 s on one shared core; generous for CI noise
