"""DAVIS-layout I/O: round trips, a real-DAVIS-shaped folder, and every rejected input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fsam2lib.videos.davis import (
    DAVIS_PALETTE,
    list_videos,
    read_descriptions,
    read_masks,
    read_video,
    write_descriptions,
    write_image_set,
    write_masks,
    write_video,
)
from fsam2lib.videos.video import Video


def make_video(name: str = "synth_0000", t: int = 4, h: int = 24, w: int = 32, seed: int = 0):
    """Smooth-ish frames (JPEG-friendly) with two moving squares and a void border strip."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    masks = np.zeros((t, h, w), dtype=np.uint8)
    base = rng.integers(40, 200, size=3)
    for i in range(t):
        frames[i] = (base + 20 * np.sin((xx + 2 * i)[..., None] / 7.0)).astype(np.uint8)
        masks[i, 4 + i : 12 + i, 3:11] = 1
        masks[i, 10:18, 16 + i : 26 + i] = 2
        masks[i, :, -1] = 255
        frames[i][masks[i] == 1] = (220, 30, 30)
        frames[i][masks[i] == 2] = (30, 30, 220)
    return Video(name, frames, masks, descriptions={1: "red square", 2: "large blue square"})


def frame_path(root, video, frame="00000", ext="jpg"):
    return root / "JPEGImages" / "480p" / video / f"{frame}.{ext}"


def mask_path(root, video, frame="00000"):
    return root / "Annotations" / "480p" / video / f"{frame}.png"


# ----------------------------------------------------------------------------- palette


def test_palette_is_the_davis_pascal_colour_map():
    assert DAVIS_PALETTE.shape == (256, 3) and DAVIS_PALETTE.dtype == np.uint8
    # Colours of real DAVIS 2017 annotation palettes (PASCAL VOC colour map).
    expected = {
        0: (0, 0, 0),
        1: (128, 0, 0),
        2: (0, 128, 0),
        3: (128, 128, 0),
        4: (0, 0, 128),
        5: (128, 0, 128),
        7: (128, 128, 128),
        8: (64, 0, 0),
        255: (224, 224, 192),
    }
    for index, rgb in expected.items():
        assert tuple(DAVIS_PALETTE[index]) == rgb
    assert len({tuple(c) for c in DAVIS_PALETTE}) == 256


# ----------------------------------------------------------------------------- round trips


def test_png_round_trip_is_exact(tmp_path):
    video = make_video()
    write_video(tmp_path, video, frame_format="png")
    back = read_video(tmp_path, video.name)
    assert frame_path(tmp_path, video.name, ext="png").is_file()
    np.testing.assert_array_equal(back.frames, video.frames)
    np.testing.assert_array_equal(back.masks, video.masks)
    assert back.descriptions == video.descriptions
    assert back.frame_names == video.frame_names
    assert back.annotated.tolist() == [True] * video.num_frames
    with Image.open(mask_path(tmp_path, video.name)) as image:
        assert image.mode == "P"
        palette = np.array(image.getpalette(), dtype=np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(palette, DAVIS_PALETTE)


def test_jpeg_round_trip_masks_exact_frames_close(tmp_path):
    video = make_video()
    write_video(tmp_path, video)  # default jpg, quality 95
    back = read_video(tmp_path, video.name)
    np.testing.assert_array_equal(back.masks, video.masks)
    assert back.descriptions == video.descriptions
    error = back.frames.astype(float) - video.frames.astype(float)
    psnr = 10 * np.log10(255**2 / np.mean(error**2))
    assert 35 < psnr < np.inf  # lossy, but close (sharp colour edges on a tiny frame)
    assert np.abs(error).max() <= 32


def test_sparse_first_frame_annotation_like_test_dev(tmp_path):
    video = make_video(t=3)
    video.annotated = np.array([True, False, False])
    video.masks[1:] = 0  # Video: masks of unannotated frames are all zeros
    write_video(tmp_path, video, frame_format="png")
    assert not mask_path(tmp_path, video.name, "00001").exists()
    back = read_video(tmp_path, video.name)
    assert back.annotated.tolist() == [True, False, False]
    np.testing.assert_array_equal(back.masks[0], video.masks[0])
    assert not back.masks[1:].any()


def test_reads_a_real_davis_shaped_folder_with_greyscale_annotations(tmp_path):
    """Written by hand with PIL, as DAVIS ships it: no descriptions file, 'L' or 'P' PNGs."""
    frames = np.random.default_rng(1).integers(0, 255, (3, 8, 10, 3), dtype=np.uint8)
    labels = np.zeros((3, 8, 10), dtype=np.uint8)
    labels[:, 2:5, 3:7] = 1
    labels[:, 6:, :2] = 3
    for t in range(3):
        frame_path(tmp_path, "bear").parent.mkdir(parents=True, exist_ok=True)
        mask_path(tmp_path, "bear").parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frames[t]).save(frame_path(tmp_path, "bear", f"{t:05d}"), quality=90)
        Image.fromarray(labels[t]).save(mask_path(tmp_path, "bear", f"{t:05d}"))  # mode L
    (tmp_path / "ImageSets" / "2017").mkdir(parents=True)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("bear\n")
    assert list_videos(tmp_path) == ["bear"]
    video = read_video(tmp_path, "bear")
    np.testing.assert_array_equal(video.masks, labels)
    assert video.descriptions == {} and video.object_ids == [1, 3]
    assert video.frames.shape == (3, 8, 10, 3)


def test_descriptions_merge_across_videos(tmp_path):
    first, second = make_video("a"), make_video("b", seed=1)
    second.descriptions = {1: "green circle"}
    write_video(tmp_path, first, frame_format="png")
    write_video(tmp_path, second, frame_format="png")
    assert read_descriptions(tmp_path) == {
        "a": {1: "red square", 2: "large blue square"},
        "b": {1: "green circle"},
    }
    raw = json.loads((tmp_path / "descriptions.json").read_text())
    assert raw["b"] == {"1": "green circle"}


def test_descriptions_missing_file_is_empty_and_bad_content_is_an_error(tmp_path):
    assert read_descriptions(tmp_path) == {}
    write_descriptions(tmp_path, {"v": {2: "blue star"}})
    assert read_descriptions(tmp_path) == {"v": {2: "blue star"}}
    (tmp_path / "descriptions.json").write_text("{not json")
    with pytest.raises(ValueError, match="descriptions.json"):
        read_descriptions(tmp_path)
    (tmp_path / "descriptions.json").write_text('{"v": {"one": "red circle"}}')
    with pytest.raises(ValueError, match="'one'"):
        read_descriptions(tmp_path)
    with pytest.raises(ValueError, match="1..254"):
        write_descriptions(tmp_path, {"v": {255: "void"}})


def test_image_sets(tmp_path):
    write_image_set(tmp_path, ["b", "a"], split="train")
    write_image_set(tmp_path, ["c"], split="test-dev")
    assert list_videos(tmp_path, "train") == ["b", "a"]
    assert list_videos(tmp_path, "test-dev") == ["c"]
    with pytest.raises(FileNotFoundError, match=r"val\.txt.*2017/test-dev, 2017/train"):
        list_videos(tmp_path, "val")
    with pytest.raises(ValueError, match="duplicated"):
        write_image_set(tmp_path, ["a", "a"])


def test_prediction_masks_round_trip(tmp_path):
    masks = np.random.default_rng(2).integers(0, 4, (3, 6, 7), dtype=np.uint8)
    masks[0, 0, 0] = 255
    write_masks(tmp_path, "v", masks, ["00000", "00001", "00002"])
    back, names = read_masks(tmp_path, "v")
    np.testing.assert_array_equal(back, masks)
    assert names == ["00000", "00001", "00002"]
    with Image.open(tmp_path / "v" / "00001.png") as image:
        assert image.mode == "P"


def test_overwrite_replaces_stale_frames(tmp_path):
    write_video(tmp_path, make_video(t=4), frame_format="png")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_video(tmp_path, make_video(t=3))
    write_video(tmp_path, make_video(t=3), frame_format="png", overwrite=True)
    assert read_video(tmp_path, "synth_0000").num_frames == 3


# ----------------------------------------------------------------------------- bad input


@pytest.fixture
def written(tmp_path):
    video = make_video(t=3)
    write_video(tmp_path, video)
    return tmp_path, video.name


def test_missing_video_folder(written):
    root, _ = written
    with pytest.raises(FileNotFoundError, match="nope"):
        read_video(root, "nope")


def test_empty_frame_folder(tmp_path):
    frame_path(tmp_path, "v").parent.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no frames"):
        read_video(tmp_path, "v")


def test_corrupt_jpeg_names_the_file(written):
    root, name = written
    path = frame_path(root, name, "00001")
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match="00001.jpg"):
        read_video(root, name)
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="00001.jpg"):
        read_video(root, name)


def test_mask_size_differs_from_frame(written):
    root, name = written
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(mask_path(root, name, "00002"))
    with pytest.raises(ValueError, match="00002.png.*differs"):
        read_video(root, name)


def test_missing_first_annotation(written):
    root, name = written
    mask_path(root, name, "00000").unlink()
    with pytest.raises(ValueError, match="first frame '00000' has no annotation"):
        read_video(root, name)


def test_annotation_gap(written):
    root, name = written
    mask_path(root, name, "00001").unlink()
    with pytest.raises(ValueError, match="'00001' has none.*'00002'"):
        read_video(root, name)


def test_missing_frame_in_the_middle(written):
    root, name = written
    frame_path(root, name, "00001").unlink()
    mask_path(root, name, "00001").unlink()
    with pytest.raises(ValueError, match="not consecutive.*'00002' follows '00000'"):
        read_video(root, name)


def test_annotation_without_frame(written):
    root, name = written
    Image.fromarray(np.zeros((24, 32), dtype=np.uint8)).save(mask_path(root, name, "00007"))
    with pytest.raises(ValueError, match="00007"):
        read_video(root, name)


def test_frame_in_two_formats(written):
    root, name = written
    Image.fromarray(np.zeros((24, 32, 3), dtype=np.uint8)).save(
        frame_path(root, name, "00001", "png")
    )
    with pytest.raises(ValueError, match="more than one format"):
        read_video(root, name)


def test_rgb_annotation_rejected(written):
    root, name = written
    Image.fromarray(np.zeros((24, 32, 3), dtype=np.uint8)).save(mask_path(root, name, "00001"))
    with pytest.raises(ValueError, match="00001.png.*mode 'RGB'"):
        read_video(root, name)


def test_write_masks_rejects_non_uint8_and_bad_names(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_masks(tmp_path, "v", np.full((1, 4, 4), 300, dtype=np.int32), ["00000"])
    with pytest.raises(ValueError, match="uint8"):
        write_masks(tmp_path, "v", np.zeros((1, 4, 4), dtype=bool), ["00000"])
    with pytest.raises(ValueError, match="2 frame names for 1 masks"):
        write_masks(tmp_path, "v", np.zeros((1, 4, 4), dtype=np.uint8), ["00000", "00001"])
    with pytest.raises(ValueError, match="video name"):
        write_masks(tmp_path, "a/b", np.zeros((1, 4, 4), dtype=np.uint8), ["00000"])


def test_write_video_rejects_unreadable_layouts(tmp_path):
    video = make_video(t=3)
    video.annotated = np.array([True, False, True])
    with pytest.raises(ValueError, match="not consecutive"):
        write_video(tmp_path, video)
    video.annotated = np.array([True, True, False])
    with pytest.raises(ValueError, match="not annotated have non-zero masks"):
        write_video(tmp_path, video)
    video = make_video(t=2)
    video.frame_names = ["a", "b"]
    with pytest.raises(ValueError, match="not a number"):
        write_video(tmp_path, video)
    with pytest.raises(ValueError, match="frame_format"):
        write_video(tmp_path, make_video(), frame_format="bmp")


def test_read_masks_missing_folder_and_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="'v'"):
        read_masks(tmp_path, "v")
    (tmp_path / "v").mkdir()
    with pytest.raises(FileNotFoundError, match="no .png"):
        read_masks(tmp_path, "v")
